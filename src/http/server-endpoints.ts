/**
 * The server's own endpoints. They live below `/.ratchet/`, a path no repository can have (repo
 * path components may not start with a dot), so they never collide with a repository:
 * `/.ratchet/health` (liveness), `/.ratchet/ready` (readiness: storage takes a durable write; one
 * probe's answer is shared by every caller for a second, so the endpoint cannot load the disk) and
 * `/.ratchet/metrics`. With --prometheus, `/metrics` answers too, as in rest-server; GET on a
 * repository root is not a protocol request, so a repository named `metrics` still works.
 * Health answers without authentication and says nothing about users or repositories. The
 * trash's endpoints are in trash-endpoints.ts.
 *
 * Every endpoint declares what it asks of the requester (`EndpointAccess`), decided in one place
 * (endpoint-access.ts) as the protocol decides.
 */
import { RatchetError } from '../errors.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { HardeningLimits } from './hardening-limits.ts';
import type { Storage } from '../storage/storage.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import type { ClientAddress } from './client-address.ts';
import { authorizeEndpoint } from './endpoint-access.ts';
import type { EndpointAccess } from './endpoint-access.ts';
import { isTrashEndpoint, serveTrash } from './trash-endpoints.ts';
import type { TrashEndpointOptions } from './trash-endpoints.ts';
import { isWebViewPath, serveWebView } from './web-view.ts';
import type { WebViewOptions } from './web-view.ts';

export interface EndpointOptions extends TrashEndpointOptions, WebViewOptions {
  readonly metrics: Metrics | undefined;
  readonly metricsNeedAuth: boolean;
  readonly hardening: Pick<HardeningLimits, 'readyCacheMs'>;
  /** Readiness: resolves when the server can take uploads (storage, and the shared state with --state). */
  readonly ready: () => Promise<void>;
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
export function probeReadiness(storage: Storage, cacheMs: number): Promise<void> {
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
  if (isTrashEndpoint(path)) {
    const query = new URLSearchParams(queryOf(req.url));
    const document = await serveTrash(path, req, query, options, client, onUser);
    return send(req, res, 'application/json; charset=utf-8', `${JSON.stringify(document)}\n`);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new RatchetError('METHOD_NOT_ALLOWED', `method ${req.method ?? ''} not allowed here`, {
      headers: { Allow: 'GET, HEAD' },
    });
  }
  if (isWebViewPath(path)) {
    const answer = await serveWebView(path, req, options, client, onUser);
    for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
    return send(req, res, answer.contentType, answer.body);
  }
  switch (path) {
    case '/.ratchet/health':
      await authorizeEndpoint(anyone, req, client, options, onUser);
      return send(req, res, 'text/plain; charset=utf-8', 'ok\n');
    case '/.ratchet/ready':
      await authorizeEndpoint(anyone, req, client, options, onUser);
      await options.ready();
      return send(req, res, 'text/plain; charset=utf-8', 'ready\n');
    case '/metrics':
    case '/.ratchet/metrics': {
      const metrics = options.metrics;
      if (metrics === undefined)
        throw new RatchetError('NOT_FOUND', 'metrics are off (start with --prometheus)');
      await authorizeEndpoint(options.metricsNeedAuth ? readRoot : anyone, req, client, options, onUser);
      return send(req, res, metrics.registry.contentType, await metrics.render());
    }
    default:
      throw new RatchetError('NOT_FOUND', 'not found');
  }
}

function queryOf(url: string | undefined): string {
  const at = url?.indexOf('?') ?? -1;
  return at < 0 || url === undefined ? '' : url.slice(at + 1);
}

function send(req: HttpRequest, res: HttpResponse, contentType: string, body: string): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
