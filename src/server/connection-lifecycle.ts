/**
 * What the plain and the TLS listeners do alike with their connections: answer a malformed
 * request, and drain on shutdown (requests in flight finish, idle connections close as soon as
 * they are idle, whatever is left is cut at the deadline).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { loggableError } from '../log/redact.ts';

/** A clientError handler: 400 and close when the socket can still take it, else destroy it. */
export function answerClientError(logger: Logger): (err: Error, socket: Duplex) => void {
  return (err, socket) => {
    // Never the error object itself: a parse error's rawPacket is the raw request, credentials too.
    logger.debug({ error: loggableError(err) }, 'client error');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  };
}

export interface DrainOptions {
  readonly deadlineMs: number;
  readonly logger: Logger;
  /** Closes the connections that have no request in flight. */
  readonly closeIdle: () => void;
  /** Cuts every remaining connection (the deadline passed). */
  readonly cutAll: () => void;
}

/** Stops accepting and resolves once every connection is gone. */
export async function drainConnections(
  server: { close(callback: () => void): unknown },
  { deadlineMs, logger, closeIdle, cutAll }: DrainOptions,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  closeIdle();
  // Connections that finish a request while shutting down are closed right after it.
  const idleSweep = setInterval(closeIdle, 100);
  const deadline = setTimeout(() => {
    logger.warn('shutdown deadline reached, closing remaining connections');
    cutAll();
  }, deadlineMs);
  await closed;
  clearTimeout(deadline);
  clearInterval(idleSweep);
}
