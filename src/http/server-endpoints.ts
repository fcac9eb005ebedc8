/**
 * The server's own endpoints. They live below `/.ratchet/`, a path no repository can have (repo
 * path components may not start with a dot), so they never collide with a repository:
 * `/.ratchet/health` (liveness), `/.ratchet/ready` (readiness: storage takes a durable write; one
 * probe's answer is shared by every caller for a second, so the endpoint cannot load the disk) and
 * `/.ratchet/metrics`. With --prometheus, `/metrics` answers too, as in rest-server; GET on a
 * repository root is not a protocol request, so a repository named `metrics` still works.
 * Health answers without authentication and says nothing about users or repositories.
 *
 * Every endpoint declares what it asks of the requester (`EndpointAccess`), and one function
 * decides it as the protocol decides: the user's grants, capped by the listener's ceiling, and
 * the per-user limits. Later endpoints (trash, the web view) declare their operation and get the
 * same treatment, so an append-only listener can never be used to empty a trash.
 */
import type { AccessControl } from '../access/access-control.ts';
import type { Operation, Resource, Role } from '../access/policy.ts';
import { RatchetError } from '../errors.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { UserLimits } from '../limits/user-limits.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { HardeningLimits } from './hardening-limits.ts';
import type { Storage } from '../storage/storage.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import { authorize } from './authorize.ts';
import type { ClientAddress } from './client-address.ts';
import type { Identify } from './identify.ts';

export interface EndpointOptions {
  readonly storage: Storage;
  readonly identify: Identify;
  readonly access: AccessControl;
  /** The listener's ceiling: the most any request on it may do. */
  readonly maxRole: Role;
  readonly limits: UserLimits<boolean>;
  readonly metrics: Metrics | undefined;
  readonly metricsNeedAuth: boolean;
  readonly hardening: Pick<HardeningLimits, 'readyCacheMs'>;
}

/**
 * What an endpoint asks of the requester: nothing (it says nothing about users or
 * repositories), or the right to perform an operation on a resource of the repository at
 * `repo` (the root `[]` for server-wide views: only users whose grants reach the root).
 */
export type EndpointAccess =
  | { readonly kind: 'anyone' }
  | {
      readonly kind: 'operation';
      readonly operation: Operation;
      readonly resource: Resource;
      readonly repo: RepoPath;
    };

/** Who the requester is, once the endpoint's access is granted (undefined: anyone, or no-auth). */
export async function authorizeEndpoint(
  access: EndpointAccess,
  req: HttpRequest,
  client: ClientAddress,
  options: Pick<EndpointOptions, 'identify' | 'access' | 'maxRole' | 'limits'>,
  onUser: (user: string | undefined) => void,
): Promise<string | undefined> {
  if (access.kind === 'anyone') return undefined;
  const user = await options.identify(req, client);
  onUser(user);
  if (options.limits.active) await options.limits.admit(user);
  authorize(options, user, access.repo, access.operation, access.resource, 'this endpoint');
  return user;
}

// Metrics name every repository: the right to read the root, as a listing of it would need.
const readRoot: EndpointAccess = { kind: 'operation', operation: 'read', resource: 'repo', repo: [] };
const anyone: EndpointAccess = { kind: 'anyone' };

/** A probe in flight (settledAt undefined) or recently answered. */
interface ProbeAnswer {
  settledAt: number | undefined;
  readonly answer: Promise<void>;
}

// Per storage, so that the listeners of one server share their probes.
const probes = new WeakMap<Storage, ProbeAnswer>();

/**
 * The storage's readiness: callers share the probe in flight, and its answer (a failure too) for
 * cacheMs after it settled.
 */
function probeReadiness(storage: Storage, cacheMs: number): Promise<void> {
  const last = probes.get(storage);
  if (last !== undefined && (last.settledAt === undefined || Date.now() - last.settledAt < cacheMs))
    return last.answer;
  const answer = storage.probe();
  const entry: ProbeAnswer = { settledAt: undefined, answer };
  const settled = (): void => {
    entry.settledAt = Date.now();
  };
  answer.then(settled, settled);
  probes.set(storage, entry);
  return answer;
}

/** True when the path is one of the server's endpoints (so the protocol does not handle it). */
export function isServerEndpoint(path: string, metricsEnabled: boolean): boolean {
  return path.startsWith('/.ratchet/') || (metricsEnabled && path === '/metrics');
}

/** Answers a server endpoint request. */
export async function serveEndpoint(
  path: string,
  req: HttpRequest,
  res: HttpResponse,
  options: EndpointOptions,
  client: ClientAddress,
  onUser: (user: string | undefined) => void,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new RatchetError('METHOD_NOT_ALLOWED', `method ${req.method ?? ''} not allowed here`, {
      headers: { Allow: 'GET, HEAD' },
    });
  }
  switch (path) {
    case '/.ratchet/health':
      await authorizeEndpoint(anyone, req, client, options, onUser);
      return send(req, res, 'text/plain; charset=utf-8', 'ok\n');
    case '/.ratchet/ready':
      await authorizeEndpoint(anyone, req, client, options, onUser);
      await probeReadiness(options.storage, options.hardening.readyCacheMs);
      return send(req, res, 'text/plain; charset=utf-8', 'ready\n');
    case '/metrics':
    case '/.ratchet/metrics': {
      const metrics = options.metrics;
      if (metrics === undefined)
        throw new RatchetError('NOT_FOUND', 'metrics are off (start with --prometheus)');
      await authorizeEndpoint(options.metricsNeedAuth ? readRoot : anyone, req, client, options, onUser);
      return send(req, res, metrics.registry.contentType, await metrics.registry.metrics());
    }
    default:
      throw new RatchetError('NOT_FOUND', 'not found');
  }
}

function send(req: HttpRequest, res: HttpResponse, contentType: string, body: string): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
