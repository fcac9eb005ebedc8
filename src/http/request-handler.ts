/**
 * The request pipeline: identify the user → route → method → access decision → handler, with
 * every failure sent through the one error-response mapping.
 */
import type { Logger } from 'pino';
import type { AccessControl } from '../access/access-control.ts';
import type { Operation, Role } from '../access/policy.ts';
import { RatchetError } from '../errors.ts';
import type { AccessLog } from '../log/access-log.ts';
import { handleOperation } from '../protocol/handlers.ts';
import type { Exchange } from '../protocol/handlers.ts';
import type { AuditLog } from '../log/audit-log.ts';
import { isChange, watchChange } from './change-audit.ts';
import { operationFor, resourceOf } from '../protocol/operations.ts';
import { checkRepoDepth, placeUnderRoot } from '../protocol/repo-root.ts';
import type { RepoRoot } from '../protocol/repo-root.ts';
import { parseRoute } from '../protocol/route.ts';
import type { UserLimits } from '../limits/user-limits.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { QuotaManager } from '../quota/quota-manager.ts';
import type { TrashKeeper } from '../trash/trash-keeper.ts';
import type { RepoReportSources } from '../view/repo-report.ts';
import type { Storage } from '../storage/storage.ts';
import type { HardeningLimits } from './hardening-limits.ts';
import { loggableError } from '../log/redact.ts';
import { authorize } from './authorize.ts';
import { guardBody } from './body-guard.ts';
import { resolveClient } from './client-address.ts';
import type { ClientAddress, TrustedPeers } from './client-address.ts';
import { sendError } from './error-response.ts';
import { isServerEndpoint, serveEndpoint } from './server-endpoints.ts';
import { responseIncomplete } from '../util/http-types.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import type { Identify } from './identify.ts';

export interface PipelineOptions {
  readonly storage: Storage;
  readonly logger: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly verifyUploads: boolean;
  /** With --delete-grace: deleted objects go to the trash; undefined: deletes are final. */
  readonly trash: TrashKeeper | undefined;
  readonly maxRepoDepth: number;
  readonly identify: Identify;
  readonly access: AccessControl;
  /** The most any request on this listener may do (the seed's public vs admin vhost). */
  readonly maxRole: Role;
  /** The folder `/` names on this listener (e.g. /{user}); undefined: the data folder. */
  readonly root: RepoRoot | undefined;
  readonly quota: QuotaManager;
  readonly limits: UserLimits<boolean>;
  /** Undefined unless --prometheus. */
  readonly metrics: Metrics | undefined;
  readonly metricsNeedAuth: boolean;
  /** Body idle timeout, drain limits, readiness cache (see src/http/hardening-limits.ts). */
  readonly hardening: HardeningLimits;
  /** The proxies whose X-Forwarded-For and user header count (--trusted-proxy). */
  readonly trustedPeers: TrustedPeers;
  /** What the web view reports per repository (and the refused changes it counts). */
  readonly view: RepoReportSources;
  /** The audit trail (--audit-log); undefined when off. */
  readonly audit: AuditLog | undefined;
  /** This listener, as `127.0.0.1:8000`, for the audit trail (known once bound). */
  readonly listenerName: () => string;
  /** Readiness (/.ratchet/ready): the storage's probe, and the shared state's with --state. */
  readonly ready: () => Promise<void>;
}

/** What the pipeline learns about a request as it goes, for logs and metrics. */
interface ExchangeState {
  /** Resolved once when the request arrives: the throttle, the logs and the audit use it. */
  readonly client: ClientAddress;
  user: string | undefined;
  operation: string;
  /** Set for a change request watched by change-audit.ts: hears of its failure. */
  onFailure?: (err: unknown) => void;
}

export type RequestListener = (req: HttpRequest, res: HttpResponse) => void;

/**
 * Aborts a request's work when its client goes away. The AbortController is made on first use:
 * only uploads watch it, and making one for every GET and HEAD was a measurable share of their cost.
 */
class LazyAbort {
  private controller: AbortController | undefined;
  private aborted = false;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }
}

/** Builds the listener that serves the restic REST protocol. */
export function createRequestHandler(pipelineOptions: PipelineOptions): RequestListener {
  // With metrics on, refused identifications are counted: for the protocol and the endpoints.
  const options = withCountedIdentify(pipelineOptions);
  return (req, res) => {
    const abort = new LazyAbort();
    // Resolved now: an HTTP/2 request's socket view is gone once its stream has closed.
    const client = resolveClient(req, options.trustedPeers);
    const exchange: ExchangeState = { client, user: undefined, operation: 'none' };
    const timer = options.metrics?.startRequest(req.method ?? 'GET');
    guardBody(req, res, options.hardening, options.logger, client.address);
    res.once('close', () => {
      if (responseIncomplete(res)) abort.abort();
      options.accessLog?.record(req, res, exchange.user, new Date(), client.address);
      timer?.(exchange.operation, res.statusCode);
    });
    serve(options, req, res, abort, exchange).catch((err: unknown) => {
      try {
        exchange.onFailure?.(err);
        sendError(req, res, err, options.logger, {
          user: exchange.user,
          client: client.address,
          limits: options.hardening,
        });
      } catch (failure) {
        options.logger.error(
          { error: loggableError(failure), cause: loggableError(err) },
          'answering a failed request failed',
        );
        res.destroy();
      }
    });
  };
}

async function serve(
  options: PipelineOptions,
  req: HttpRequest,
  res: HttpResponse,
  abort: LazyAbort,
  exchange: ExchangeState,
): Promise<void> {
  const url = req.url ?? '/';
  const queryStart = url.indexOf('?');
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  if (isServerEndpoint(path, options.metrics !== undefined)) {
    exchange.operation = 'server';
    return serveEndpoint(path, req, res, options, exchange.client, (user) => (exchange.user = user));
  }

  const user = await options.identify(req, exchange.client);
  exchange.user = user;
  if (options.limits.active) await options.limits.admit(user);

  const parsed = parseRoute(path);
  if (parsed === undefined) throw new RatchetError('NOT_FOUND', 'not found');
  const route = options.root === undefined ? parsed : placeUnderRoot(options.root, user, parsed);
  checkRepoDepth(route.repo, options.maxRepoDepth);
  const operation = operationFor(req.method ?? 'GET', route);
  exchange.operation = operation;

  const query = new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart + 1));
  const handling: Exchange = {
    req,
    res,
    route,
    query,
    get signal() {
      return abort.signal;
    },
    user,
  };
  if (isChange(operation)) exchange.onFailure = watchChangeOf(options, exchange, handling, operation);
  authorize(options, user, route.repo, operation, resourceOf(route), 'this repository');
  await handleOperation(options, operation, handling);
}

/**
 * Starts the audit and metrics watch of a change request. A function of its own, not a closure
 * in serve(): a closure there over `handling` made V8 keep every request's state in a context
 * that outlived it, and 100k HEADs promoted 225 MB to the old generation instead of 17 MB.
 */
function watchChangeOf(
  options: PipelineOptions,
  exchange: ExchangeState,
  handling: Exchange,
  operation: Operation,
): (err: unknown) => void {
  const watch = {
    audit: options.audit,
    storage: options.storage,
    metrics: options.metrics,
    refusals: options.view.refusals,
    logger: options.logger,
    listener: options.listenerName,
  };
  return watchChange(watch, {
    req: handling.req,
    res: handling.res,
    route: handling.route,
    operation,
    user: handling.user,
    client: exchange.client.address,
    changedBytes: () => handling.changedBytes,
  });
}

/** The options with an identify that counts refusals in the metrics (unchanged without metrics). */
function withCountedIdentify(options: PipelineOptions): PipelineOptions {
  const { metrics, identify } = options;
  if (metrics === undefined) return options;
  const counted: Identify = async (req, client) => {
    try {
      return await identify(req, client);
    } catch (err) {
      if (err instanceof RatchetError) {
        if (err.code === 'UNAUTHORIZED') metrics.authFailure('unauthorized');
        if (err.code === 'TOO_MANY_REQUESTS') metrics.authFailure('throttled');
      }
      throw err;
    }
  };
  return { ...options, identify: counted };
}
