/**
 * The request pipeline: identify the user → route → method → access decision → handler, with
 * every failure sent through the one error-response mapping.
 */
import type { Logger } from 'pino';
import type { AccessControl } from '../access/access-control.ts';
import { capRole, decide } from '../access/policy.ts';
import type { Role } from '../access/policy.ts';
import { RatchetError } from '../errors.ts';
import type { AccessLog } from '../log/access-log.ts';
import { handleOperation } from '../protocol/handlers.ts';
import { operationFor, resourceOf } from '../protocol/operations.ts';
import { parseRoute } from '../protocol/route.ts';
import type { Storage } from '../storage/storage.ts';
import { sendError } from './error-response.ts';
import { responseIncomplete } from './http-types.ts';
import type { HttpRequest, HttpResponse } from './http-types.ts';

/** Who sent the request: a user name, undefined when authentication is off, or UNAUTHORIZED. */
export type Identify = (req: HttpRequest) => Promise<string | undefined>;

export interface PipelineOptions {
  readonly storage: Storage;
  readonly logger: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly verifyUploads: boolean;
  readonly maxRepoDepth: number;
  readonly identify: Identify;
  readonly access: AccessControl;
  /** The most any request on this listener may do (the seed's public vs admin vhost). */
  readonly maxRole: Role;
}

export type RequestListener = (req: HttpRequest, res: HttpResponse) => void;

/** Builds the listener that serves the restic REST protocol. */
export function createRequestHandler(options: PipelineOptions): RequestListener {
  return (req, res) => {
    const controller = new AbortController();
    const exchange = { user: undefined as string | undefined };
    // Read now: an HTTP/2 request's socket view is gone once its stream has closed.
    const remoteAddress = req.socket.remoteAddress;
    res.once('close', () => {
      if (responseIncomplete(res)) controller.abort();
      options.accessLog?.record(req, res, exchange.user, new Date(), remoteAddress);
    });
    serve(options, req, res, controller.signal, exchange).catch((err: unknown) => {
      sendError(req, res, err, options.logger, exchange.user);
    });
  };
}

async function serve(
  options: PipelineOptions,
  req: HttpRequest,
  res: HttpResponse,
  signal: AbortSignal,
  exchange: { user: string | undefined },
): Promise<void> {
  const user = await options.identify(req);
  exchange.user = user;

  const url = req.url ?? '/';
  const queryStart = url.indexOf('?');
  const route = parseRoute(queryStart < 0 ? url : url.slice(0, queryStart), options.maxRepoDepth);
  if (route === undefined) throw new RatchetError('NOT_FOUND', 'not found');
  const operation = operationFor(req.method ?? 'GET', route);

  const granted = options.access.roleFor(user, route.repo);
  if (granted === undefined) throw new RatchetError('FORBIDDEN', 'no access to this repository');
  const decision = decide(capRole(granted, options.maxRole), operation, resourceOf(route));
  if (!decision.allowed) throw new RatchetError('FORBIDDEN', decision.reason);

  const query = new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart + 1));
  await handleOperation(options, operation, { req, res, route, query, signal });
}
