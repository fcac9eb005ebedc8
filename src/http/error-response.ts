/**
 * The one place where failures become HTTP responses. Catalogue errors get their status and
 * client-safe message; anything else is a 500 whose detail goes to the log only.
 */
import type { Logger } from 'pino';
import { errnoCode, errorStatus, RatchetError } from '../errors.ts';
import { abortResponse, bodyPending, continuePending, refuseUnreadBody } from '../util/http-types.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import { RangeNotSatisfiable } from '../domain/byte-range.ts';
import { discardBody } from './body-guard.ts';
import { defaultHardeningLimits } from './hardening-limits.ts';
import type { HardeningLimits } from './hardening-limits.ts';
import { loggableError, redactUrl } from '../log/redact.ts';

// Errors that only mean the client went away while a response was being streamed.
const clientGoneCodes = new Set([
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNRESET',
  'EPIPE',
  'ERR_STREAM_DESTROYED',
]);

// Expected outcomes of normal restic use that are not worth an operator's attention.
const quietCodes = new Set(['NOT_FOUND', 'RANGE_NOT_SATISFIABLE', 'UNAUTHORIZED']);

/** What the error answer knows of the exchange besides the request itself. */
export interface ErrorContext {
  readonly user?: string;
  /** The client's address, resolved when the request arrived (req.socket is null once destroyed). */
  readonly client?: string;
  /** The listener's limits, for discarding a refused body (default: the built-in ones). */
  readonly limits?: Pick<HardeningLimits, 'drainLimitBytes' | 'drainDeadlineMs'>;
}

/** Answers the request with the status that the error maps to, and logs it for the operator. */
export function sendError(
  req: HttpRequest,
  res: HttpResponse,
  err: unknown,
  logger: Logger,
  exchange: ErrorContext = {},
): void {
  const known = err instanceof RatchetError ? err : undefined;
  const status = known ? errorStatus[known.code] : 500;
  const url = req.url === undefined ? undefined : redactUrl(req.url);
  const client = 'client' in exchange ? exchange.client : req.socket?.remoteAddress;
  const context = { method: req.method, url, status, user: exchange.user, client };
  if (!known && res.headersSent && clientGoneCodes.has(errnoCode(err) ?? '')) {
    logger.debug({ ...context, err: String(err) }, 'client went away during the response');
  } else if (!known && isAbortError(err)) {
    // The request's signal fired: the client closed the connection before the answer.
    logger.debug({ ...context, err: String(err) }, 'client went away during the request');
  } else if (!known) {
    logger.error({ ...context, error: loggableError(err) }, 'request failed');
  } else if (known.code === 'QUOTA_EXCEEDED' || known.code === 'NO_SPACE') {
    // Expected when a limit or the disk is reached: worth a warning, not a stack trace.
    // The cause, when there is one, carries what only the operator may see (the total's numbers).
    const detail = known.cause instanceof Error ? known.cause.message : undefined;
    logger.warn({ ...context, code: known.code, detail }, known.message);
  } else if (known.code === 'UNAVAILABLE' && known.cause === undefined) {
    // A state the message names (still counting, a folder that cannot be made): no stack to show.
    logger.warn({ ...context, code: known.code }, known.message);
  } else if (status >= 500) {
    logger.error({ ...context, code: known.code, error: loggableError(known.cause ?? known) }, known.message);
  } else if (!quietCodes.has(known.code)) {
    logger.info({ ...context, code: known.code }, known.message);
  } else {
    logger.debug({ ...context, code: known.code }, known.message);
  }

  if (res.headersSent) {
    // Part of the body is out already: only cutting the exchange tells the client it failed.
    abortResponse(res);
    return;
  }
  const body = `${known ? known.message : 'internal server error'}\n`;
  res.statusCode = status;
  for (const [name, value] of Object.entries(known?.headers ?? {})) res.setHeader(name, value);
  if (known instanceof RangeNotSatisfiable) res.setHeader('Content-Range', `bytes */${known.size}`);
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (bodyPending(req)) settleUnreadBody(req, res, exchange.limits ?? defaultHardeningLimits);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/**
 * A rejected request's body is still coming. A small one (up to the drain limit) is read and
 * discarded until the drain deadline, so the client reads the status instead of a broken pipe;
 * a larger one, a chunked one, or one the client holds back until `100 Continue` is not waited
 * for: the connection closes (the HTTP/2 stream is reset) after the response.
 */
function settleUnreadBody(
  req: HttpRequest,
  res: HttpResponse,
  { drainLimitBytes, drainDeadlineMs }: NonNullable<ErrorContext['limits']>,
): void {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared <= drainLimitBytes && !continuePending(res)) {
    discardBody(req, drainDeadlineMs);
  } else {
    refuseUnreadBody(req, res);
  }
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
