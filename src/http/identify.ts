/** Turns a request into a user name: Basic credentials, a trusted proxy header, or nobody (no-auth). */
import type { IncomingMessage } from 'node:http';
import { RatchetError } from '../errors.ts';
import type { Identify } from './request-handler.ts';

/** Checks Basic credentials; implemented by the htpasswd authenticator. */
export interface CredentialChecker {
  /** The user name the credentials prove, or throws UNAUTHORIZED / TOO_MANY_REQUESTS. */
  authenticate(authorization: string | undefined, remoteAddress: string): Promise<string>;
}

export interface IdentifyOptions {
  readonly noAuth: boolean;
  /** Header a reverse proxy sets to the authenticated user name (rest-server's --proxy-auth-username). */
  readonly proxyHeader: string | undefined;
  readonly checker: CredentialChecker | undefined;
}

/** Builds the identification step of the pipeline. */
export function createIdentify(options: IdentifyOptions): Identify {
  if (options.noAuth) return () => Promise.resolve(undefined);
  const proxyHeader = options.proxyHeader?.toLowerCase();
  const checker = options.checker;
  if (checker === undefined) throw new Error('authentication is on but no credential checker was configured');
  return (req: IncomingMessage) => {
    if (proxyHeader !== undefined) {
      const value = req.headers[proxyHeader];
      if (typeof value === 'string' && value !== '') return Promise.resolve(value);
    }
    return checker.authenticate(req.headers.authorization, req.socket.remoteAddress ?? '');
  };
}

/** The 401 every unauthenticated request gets. */
export function unauthorized(message = 'authentication required'): RatchetError {
  return new RatchetError('UNAUTHORIZED', message, {
    headers: { 'WWW-Authenticate': 'Basic realm="restic"' },
  });
}
