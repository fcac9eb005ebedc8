/**
 * Turns a request into a user name: a verified TLS client certificate, a proxy's user header
 * (only from a peer allowed to assert users: client-address.ts), Basic credentials, or nobody
 * (no-auth).
 */
import { TLSSocket } from 'node:tls';
import { RatchetError } from '../errors.ts';
import { isHttp2Request } from '../util/http-types.ts';
import type { HttpRequest } from '../util/http-types.ts';
import type { ClientAddress } from './client-address.ts';

/** Who sent the request: a user name, undefined when authentication is off, or UNAUTHORIZED. */
export type Identify = (req: HttpRequest, client: ClientAddress) => Promise<string | undefined>;

/** Checks Basic credentials; implemented by the htpasswd authenticator. */
export interface CredentialChecker {
  /**
   * The user name the credentials prove, or throws UNAUTHORIZED / TOO_MANY_REQUESTS. The client
   * address (undefined: a unix socket) is what failed logins are throttled under.
   */
  authenticate(authorization: string | undefined, clientAddress: string | undefined): Promise<string>;
}

export interface IdentifyOptions {
  readonly noAuth: boolean;
  /**
   * Header a reverse proxy sets to the authenticated user name (rest-server's
   * --proxy-auth-username); ignored from peers that may not assert users.
   */
  readonly proxyHeader: string | undefined;
  readonly checker: CredentialChecker | undefined;
  /**
   * Accept a client certificate that the TLS layer verified against --tls-client-ca: its subject
   * common name is the user, and Basic credentials are not asked for (rest-server issue 73).
   */
  readonly clientCertificates?: boolean;
}

/** Builds the identification step of the pipeline. */
export function createIdentify(options: IdentifyOptions): Identify {
  if (options.noAuth) return () => Promise.resolve(undefined);
  const proxyHeader = options.proxyHeader?.toLowerCase();
  const checker = options.checker;
  if (checker === undefined) throw new Error('authentication is on but no credential checker was configured');
  const clientCertificates = options.clientCertificates === true;
  return (req, client) => {
    if (clientCertificates) {
      const user = certificateUser(req);
      if (user !== undefined) return Promise.resolve(user);
    }
    if (proxyHeader !== undefined && client.mayAssertUser) {
      const value = req.headers[proxyHeader];
      if (typeof value === 'string' && value !== '') return Promise.resolve(value);
    }
    return checker.authenticate(req.headers.authorization, client.address);
  };
}

/** The common name of the client certificate the request's TLS connection verified, if any. */
function certificateUser(req: HttpRequest): string | undefined {
  // For HTTP/2, req.socket is a proxy for the stream; the TLS socket belongs to the session.
  const socket: unknown = isHttp2Request(req) ? req.stream.session?.socket : req.socket;
  // `authorized` is true only when the chain checked out against the configured client CA.
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const name: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** The 401 every unauthenticated request gets. */
export function unauthorized(message = 'authentication required'): RatchetError {
  return new RatchetError('UNAUTHORIZED', message, {
    headers: { 'WWW-Authenticate': 'Basic realm="restic"' },
  });
}
