/**
 * What happens to a change request (repository creation, upload, delete) beyond its answer: one
 * line in the audit trail (--audit-log), written before the answer leaves, and, for a refused
 * change, a count in `ratchet_refused_changes_total{repo,user,reason}`; refused deletes and
 * overwrites are also logged at warn level, since they are the signature of a compromised host.
 */
import type { Logger } from 'pino';
import type { Operation } from '../access/policy.ts';
import { repoDisplay, repoKey } from '../domain/repo-path.ts';
import { errorStatus, RatchetError } from '../errors.ts';
import type { AuditLog } from '../log/audit-log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { RecentRefusals } from '../view/recent-refusals.ts';
import type { Route } from '../protocol/route.ts';
import type { Storage } from '../storage/storage.ts';
import { isAbortError } from './error-response.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';

export interface ChangeWatch {
  readonly audit: AuditLog | undefined;
  /** To label refused changes by repository only where one exists (bounded label values). */
  readonly storage: Storage;
  readonly metrics: Metrics | undefined;
  /** Refused changes per repository over the last day (the web view). */
  readonly refusals: RecentRefusals;
  readonly logger: Logger;
  /** The listener the request came through, as `127.0.0.1:8000` (known once it is bound). */
  readonly listener: () => string;
}

export interface ChangeRequest {
  readonly req: HttpRequest;
  readonly res: HttpResponse;
  readonly route: Route;
  readonly operation: Operation;
  readonly user: string | undefined;
  readonly client: string | undefined;
  /** Bytes stored or removed, once the handler knows them. */
  readonly changedBytes: () => number | undefined;
}

export function isChange(operation: Operation): boolean {
  return operation === 'write' || operation === 'delete' || operation === 'create-repo';
}

/**
 * Starts watching a change request; returns what the error path calls with the failure. The
 * success path is seen through the response's writeHead, before any byte of it is sent.
 */
export function watchChange(watch: ChangeWatch, change: ChangeRequest): (err: unknown) => void {
  let recorded = false;
  const record = (status: number, err?: unknown): void => {
    if (recorded) return;
    recorded = true;
    recordChange(watch, change, status, err);
  };
  const failed = (err: unknown): void =>
    record(err instanceof RatchetError ? errorStatus[err.code] : 500, err);
  // Only the trail records successes: without it, an upload's answer is left unwrapped.
  if (watch.audit === undefined) return failed;
  // Seen through writeHead (every success answer goes through it), without touching its types.
  const res = change.res as unknown as { writeHead: (...args: unknown[]) => unknown; statusCode: number };
  const writeHead = res.writeHead;
  res.writeHead = function (this: unknown, ...args: unknown[]): unknown {
    record(typeof args[0] === 'number' ? args[0] : res.statusCode);
    return writeHead.apply(this, args);
  };
  return failed;
}

function recordChange(watch: ChangeWatch, change: ChangeRequest, status: number, err: unknown): void {
  const { route, operation, user, client, req } = change;
  const repo = repoKey(route.repo);
  const known = err instanceof RatchetError ? err : undefined;
  // A client that went away got no answer: 499, as nginx records it.
  const gone = err !== undefined && known === undefined && (isAbortError(err) || req.destroyed);
  const answered = gone ? 499 : status;
  const reason =
    err === undefined
      ? undefined
      : gone
        ? 'the client went away before the answer'
        : (known?.message ?? 'internal server error');
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  const size =
    change.changedBytes() ?? (operation === 'write' && Number.isSafeInteger(declared) ? declared : undefined);
  watch.audit?.record({
    action: operation === 'create-repo' ? 'create-repo' : operation === 'write' ? 'write' : 'delete',
    user,
    client,
    listener: watch.listener(),
    method: req.method,
    repo: repoDisplay(route.repo),
    type: route.kind === 'object' ? route.type : route.kind === 'config' ? 'config' : undefined,
    name: route.kind === 'object' ? route.name : undefined,
    size,
    status: answered,
    reason,
  });
  if (known === undefined || (status !== 403 && status !== 507)) return;
  const { metrics, refusals } = watch;
  // Any path can be refused; only existing repositories become label values and view rows.
  const reasonLabel = known.code.toLowerCase();
  const counted = (exists: boolean): void => {
    metrics?.refusedChange(exists ? repo : '(no repository)', user, reasonLabel);
    if (exists) refusals.record(repo);
  };
  void watch.storage.repoExists(route.repo).then(counted, () => counted(false));
  if (status === 403 && operation !== 'create-repo') {
    watch.logger.warn(
      { user, client, repo: repoDisplay(route.repo), method: req.method, url: req.url, code: known.code },
      `refused ${operation === 'delete' ? 'delete' : 'overwrite or upload'}: ${known.message}`,
    );
  }
}
