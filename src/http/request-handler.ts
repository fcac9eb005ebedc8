/**
 * The request pipeline: route → method → access decision → handler, with every failure sent
 * through the one error-response mapping. Authentication joins at the marked step.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { decide } from '../access/policy.ts';
import type { Role } from '../access/policy.ts';
import { RatchetError } from '../errors.ts';
import type { AccessLog } from '../log/access-log.ts';
import { handleOperation } from '../protocol/handlers.ts';
import { operationFor, resourceOf } from '../protocol/operations.ts';
import { parseRoute } from '../protocol/route.ts';
import type { Storage } from '../storage/storage.ts';
import { sendError } from './error-response.ts';

export interface PipelineOptions {
  readonly storage: Storage;
  readonly logger: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly verifyUploads: boolean;
  readonly maxRepoDepth: number;
  /** The most any request may do (append-only mode caps everyone at 'append-only'). */
  readonly roleCeiling: Role;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** Builds the listener that serves the restic REST protocol. */
export function createRequestHandler(options: PipelineOptions): RequestListener {
  return (req, res) => {
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
      options.accessLog?.record(req, res, undefined, new Date());
    });
    serve(options, req, res, controller.signal).catch((err: unknown) => {
      sendError(req, res, err, options.logger);
    });
  };
}

async function serve(
  options: PipelineOptions,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const url = req.url ?? '/';
  const queryStart = url.indexOf('?');
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  const route = parseRoute(path, options.maxRepoDepth);
  if (route === undefined) throw new RatchetError('NOT_FOUND', 'not found');
  const operation = operationFor(req.method ?? 'GET', route);

  // Authentication and per-user roles come here; until then everyone has the ceiling role.
  const role = options.roleCeiling;
  const decision = decide(role, operation, resourceOf(route));
  if (!decision.allowed) throw new RatchetError('FORBIDDEN', decision.reason);

  const query = new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart + 1));
  await handleOperation(options, operation, { req, res, route, query, signal });
}
