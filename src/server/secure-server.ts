/**
 * The TLS listener: HTTP/2 negotiated by ALPN (what restic speaks over TLS), with HTTP/1.1 on the
 * same port for clients that do not offer h2 (curl --http1.1, older tools). Both go through the
 * same request pipeline.
 *
 * HTTP/2 differs from the plain server in what has to be set up by hand: the HTTP/1.1 fallback
 * does not take http.createServer's timeout options, flow-control windows default to 64 KiB
 * (a few MB/s on a long link), and shutdown must send every session a GOAWAY, as
 * closeIdleConnections only knows HTTP/1.1 connections.
 */
import { constants as http2Constants, createSecureServer } from 'node:http2';
import type { Http2SecureServer, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/server-config.ts';
import type { RequestListener } from '../http/request-handler.ts';
import { secureContextOptions } from './tls-material.ts';
import type { TlsMaterial } from './tls-material.ts';
import { answerClientError, drainConnections } from './connection-lifecycle.ts';
import { loggableError } from '../log/redact.ts';
import { headersTimeoutMs, idleTimeoutMs, keepAliveTimeoutMs } from './timeouts.ts';
import { defaultHardeningLimits } from '../http/hardening-limits.ts';
import type { HardeningLimits } from '../http/hardening-limits.ts';

// Flow-control windows: restic sends up to 5 uploads of 4-128 MiB on one connection. 1 MiB per
// stream and 8 MiB per connection fill a 100 ms link at ~80 MB/s; unread data stays bounded by them.
const streamWindowBytes = 1 << 20;
const sessionWindowBytes = 8 << 20;
// Node refuses new streams when a session holds more than this (MB), counting buffered data.
const maxSessionMemoryMb = 32;

/** A TLS listener and the means to update its certificate and shut it down. */
export interface SecureHttpServer {
  readonly server: Http2SecureServer;
  /** New connections use this certificate from now on; open ones keep theirs. */
  setMaterial(material: TlsMaterial): void;
  /** Stops accepting, lets streams in flight finish until the deadline, then cuts the rest. */
  drain(deadlineMs: number): Promise<void>;
}

/** Creates the HTTPS server (not yet listening) for the request pipeline. */
export function createSecureHttpServer(
  handler: RequestListener,
  config: TlsConfig,
  material: TlsMaterial,
  logger: Logger,
  limits: HardeningLimits = defaultHardeningLimits,
): SecureHttpServer {
  const server = createSecureServer(
    {
      ...secureContextOptions(config, material),
      allowHTTP1: true,
      // Ask for a client certificate but let clients without one (or with an unknown one) in:
      // they fall back to Basic authentication. `authorized` tells the pipeline which is which.
      ...(config.clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
      handshakeTimeout: headersTimeoutMs,
      maxSessionMemory: maxSessionMemoryMb,
      settings: { initialWindowSize: streamWindowBytes, maxConcurrentStreams: limits.maxConcurrentStreams },
    },
    handler,
  );
  // An HTTP/2 session idle this long is closed; every frame (a slow upload's too) resets it.
  server.setTimeout(idleTimeoutMs);
  // The HTTP/1.1 fallback reads these from the server object, not from the options above; the
  // default requestTimeout (300 s) would cut off a slow 128 MiB upload.
  Object.assign(server, {
    requestTimeout: 0,
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
  });

  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();
  let draining = false;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  if (config.clientCa !== undefined) server.prependListener('secureConnection', clearVerifyErrors);
  server.on('secureConnection', track);
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (!session.destroyed) session.setLocalWindowSize(sessionWindowBytes);
    limitResets(session, limits, logger);
    if (draining) session.close();
  });
  server.on('sessionError', (err) => logger.debug({ error: loggableError(err) }, 'HTTP/2 session error'));
  server.on('tlsClientError', (err) => logger.debug({ error: loggableError(err) }, 'TLS handshake failed'));
  server.on('clientError', answerClientError(logger));

  // Present on Node versions whose HTTP/2 server tracks its HTTP/1.1 fallback connections.
  const closeIdleHttp1 = (): void =>
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();

  return {
    server,
    setMaterial(next) {
      // setSecureContext replaces every context option, so the client CA and minimum version go
      // along again.
      server.setSecureContext(secureContextOptions(config, next));
    },
    async drain(deadlineMs) {
      draining = true;
      // GOAWAY: no new streams; each session closes once its streams are done.
      for (const session of sessions) session.close();
      await drainConnections(server, {
        deadlineMs,
        logger,
        closeIdle: closeIdleHttp1,
        cutAll: () => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        },
      });
    },
  };
}

/**
 * A client certificate from a look-alike CA (the client CA's name, another key) fails its
 * signature check inside OpenSSL, which leaves that failure on the thread's error queue although
 * the handshake goes on (rejectUnauthorized is off: such clients fall back to Basic auth). Node
 * would take the stale entry for an error of the connection's next read: a 400 over HTTP/1.1, a
 * GOAWAY over HTTP/2. Reading the peer certificate right after the handshake empties the queue
 * (Node clears it around that call), before any read.
 */
function clearVerifyErrors(socket: TLSSocket): void {
  if (!socket.authorized) socket.getPeerCertificate();
}

/**
 * HTTP/2 rapid reset (CVE-2023-44487): a client that opens streams and cancels them at once makes
 * the server start work for each while never being bound by the concurrent-stream limit. A session
 * whose client aborts more than maxStreamResets streams within resetWindowMs gets GOAWAY
 * (ENHANCE_YOUR_CALM) and is closed.
 */
function limitResets(session: ServerHttp2Session, limits: HardeningLimits, logger: Logger): void {
  const { maxStreamResets, resetWindowMs } = limits;
  let windowStart = Date.now();
  let resets = 0;
  let closing = false;
  const count = (): void => {
    const now = Date.now();
    if (now - windowStart >= resetWindowMs) {
      windowStart = now;
      resets = 0;
    }
    resets++;
    if (resets <= maxStreamResets || closing || session.destroyed) return;
    closing = true;
    logger.warn(
      { client: session.socket?.remoteAddress, resets, windowMs: resetWindowMs },
      'HTTP/2 client resets too many streams: closing the session',
    );
    session.goaway(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // The GOAWAY goes out first; the connection is then cut, streams in flight or not.
    setImmediate(() => session.destroy());
  };
  // A stream that ended with an error code was reset (nearly always by the client: the server
  // resets only streams that failed). It may be closed already when the event comes.
  const reset = (stream: ServerHttp2Stream): boolean =>
    stream.rstCode !== undefined && stream.rstCode !== http2Constants.NGHTTP2_NO_ERROR;
  session.on('stream', (stream: ServerHttp2Stream) => {
    if (stream.closed) {
      if (reset(stream)) count();
      return;
    }
    stream.once('close', () => {
      if (reset(stream)) count();
    });
  });
}
