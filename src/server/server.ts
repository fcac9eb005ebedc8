/**
 * Assembles a running server from a configuration: storage, request pipeline, listener,
 * timeouts, and a graceful shutdown that lets in-flight uploads finish.
 */
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/listen-address.ts';
import type { ServerConfig } from '../config/options.ts';
import { createRequestHandler } from '../http/request-handler.ts';
import { openAccessLog } from '../log/access-log.ts';
import { FsStorage } from '../storage/fs/fs-storage.ts';
import type { Storage } from '../storage/storage.ts';
import { listenOn, removeSocketFile } from './listener.ts';

// Time a client has to send its request headers (slowloris protection).
const headersTimeoutMs = 60_000;
// A connection on which nothing moves for this long is closed; a slow upload still moves.
const idleTimeoutMs = 5 * 60_000;
// How long an idle keep-alive connection stays open between requests.
const keepAliveTimeoutMs = 65_000;

export interface RunningServer {
  readonly address: ListenAddress;
  readonly storage: Storage;
  /** Stops accepting, lets in-flight requests finish up to the deadline, then cuts the rest. */
  close(): Promise<void>;
}

/** Starts Ratchet with the given configuration. */
export async function startServer(
  config: ServerConfig,
  logger: Logger,
  storage?: Storage,
): Promise<RunningServer> {
  let store = storage;
  if (store === undefined) {
    const fsStorage = new FsStorage({
      root: config.path,
      groupAccessible: config.groupAccessibleRepos,
      logger,
    });
    await fsStorage.init();
    store = fsStorage;
  }
  const accessLog = config.log === undefined ? undefined : openAccessLog(config.log);
  const handler = createRequestHandler({
    storage: store,
    logger,
    accessLog,
    verifyUploads: config.verifyUpload,
    maxRepoDepth: config.maxRepoDepth,
    roleCeiling: config.appendOnly ? 'append-only' : 'admin',
  });

  const server = createServer(
    {
      // No total-request limit: a 128 MiB pack over a slow uplink must not be cut off.
      requestTimeout: 0,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: keepAliveTimeoutMs,
    },
    handler,
  );
  server.timeout = idleTimeoutMs;
  server.on('clientError', (err, socket) => {
    logger.debug({ err }, 'client error');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  const address = await listenOn(server, config.listen);
  const finalStore = store;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = setTimeout(() => {
        logger.warn('shutdown deadline reached, closing remaining connections');
        server.closeAllConnections();
      }, config.shutdownTimeout * 1000);
      // Connections that finish a request while shutting down are closed right after it.
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      await closed;
      clearTimeout(deadline);
      clearInterval(idleSweep);
      await removeSocketFile(address);
      await accessLog?.close();
      await finalStore.close();
    })();
    return closing;
  };
  return { address, storage: finalStore, close };
}
