/**
 * Guards on request bodies: `100 Continue` only once a handler is about to read the body, a
 * body idle timeout that does not count the time the server itself held the body back, and a
 * bounded discard of a refused body.
 */
import { constants as http2Constants } from 'node:http2';
import type { Logger } from 'pino';
import type { HardeningLimits } from './hardening-limits.ts';
import { redactUrl } from '../log/redact.ts';
import { bodyPending, continuePending, isHttp2Request } from '../util/http-types.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';

/** Watches the body of a request that just arrived, if it has one, for the idle timeout. */
export function guardBody(
  req: HttpRequest,
  res: HttpResponse,
  limits: HardeningLimits,
  logger: Logger,
  client: string | undefined,
): void {
  if (bodyPending(req)) watchBodyIdle(req, res, limits.bodyIdleTimeoutMs, logger, client);
}

/** The bytes the request's connection has received so far (for HTTP/2, the whole session's). */
function bytesReceived(req: HttpRequest): number {
  const socket = isHttp2Request(req) ? req.stream.session?.socket : req.socket;
  return socket?.bytesRead ?? 0;
}

/** Ends the request's body: HTTP/1.1 closes the connection, HTTP/2 cancels the stream. */
function cutBody(req: HttpRequest): void {
  if (isHttp2Request(req)) {
    if (!req.stream.closed) req.stream.close(http2Constants.NGHTTP2_CANCEL);
  } else {
    req.socket.destroy();
  }
}

/**
 * Cuts off a body from which nothing arrived for idleMs while the server was ready to take it.
 * Data that arrived but was not read yet (held back by a bandwidth limit or a slow disk) means the
 * server is the one waiting, so that time is not counted; nor is time before the `100 Continue`
 * a client waits for. Stops when the body is complete or the
 * response closed.
 */
function watchBodyIdle(
  req: HttpRequest,
  res: HttpResponse,
  idleMs: number,
  logger: Logger,
  client: string | undefined,
): void {
  let seen = bytesReceived(req);
  let lastProgress = Date.now();
  const timer = setInterval(
    () => {
      if (req.complete || req.destroyed) return stop();
      const now = Date.now();
      const received = bytesReceived(req);
      if (received !== seen || req.readableLength > 0 || continuePending(res)) {
        seen = received;
        lastProgress = now;
      } else if (now - lastProgress >= idleMs) {
        stop();
        logger.info(
          { method: req.method, url: redactUrl(req.url ?? ''), client, idleMs },
          'request body idle: cut off',
        );
        cutBody(req);
      }
    },
    Math.max(25, Math.floor(idleMs / 4)),
  );
  timer.unref();
  const stop = (): void => {
    clearInterval(timer);
    res.off('close', stop);
  };
  res.once('close', stop);
}

/**
 * Discards what is left of a refused body, but only until the deadline: a client that trickles
 * it is cut off then.
 */
export function discardBody(req: HttpRequest, deadlineMs: number): void {
  req.resume();
  if (req.complete) return;
  const timer = setTimeout(() => {
    if (!req.complete) cutBody(req);
  }, deadlineMs);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
}
