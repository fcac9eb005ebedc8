/**
 * Assembles a running server from a configuration: storage, access rules, one request pipeline
 * per listener (each with its role ceiling), timeouts, and a graceful shutdown that lets
 * in-flight uploads finish.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { AccessControl } from '../access/access-control.ts';
import type { ListenAddress } from '../config/listen-address.ts';
import type { ServerConfig } from '../config/server-config.ts';
import { createIdentify } from '../http/identify.ts';
import type { CredentialChecker } from '../http/identify.ts';
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

export interface ServerDependencies {
  readonly logger: Logger;
  /** Storage to serve instead of the filesystem at config.path (tests, other backends). */
  readonly storage?: Storage;
  /** Required unless config.noAuth. */
  readonly credentials?: CredentialChecker;
}

export interface RunningServer {
  /** The bound addresses, in the order of config.listeners. */
  readonly addresses: readonly ListenAddress[];
  readonly storage: Storage;
  readonly access: AccessControl;
  /** Stops accepting, lets in-flight requests finish up to the deadline, then cuts the rest. */
  close(): Promise<void>;
}

/** Starts Ratchet with the given configuration. */
export async function startServer(config: ServerConfig, deps: ServerDependencies): Promise<RunningServer> {
  const { logger } = deps;
  let storage = deps.storage;
  if (storage === undefined) {
    const fsStorage = new FsStorage({
      root: config.path,
      groupAccessible: config.groupAccessibleRepos,
      logger,
    });
    await fsStorage.init();
    storage = fsStorage;
  }
  const accessLog = config.log === undefined ? undefined : openAccessLog(config.log);
  const access = new AccessControl(config.grants);
  const identify = createIdentify({
    noAuth: config.noAuth,
    proxyHeader: config.proxyAuthUsername,
    checker: deps.credentials,
  });

  const servers: Server[] = [];
  const addresses: ListenAddress[] = [];
  try {
    for (const listener of config.listeners) {
      const handler = createRequestHandler({
        storage,
        logger,
        accessLog,
        verifyUploads: config.verifyUpload,
        maxRepoDepth: config.maxRepoDepth,
        identify,
        access,
        maxRole: listener.maxRole,
      });
      const server = createHttpServer(handler, logger);
      servers.push(server);
      addresses.push(await listenOn(server, listener.address));
    }
  } catch (err) {
    for (const server of servers) server.close();
    throw err;
  }

  const finalStorage = storage;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all(servers.map((server) => drain(server, config.shutdownTimeout * 1000, logger)));
      await Promise.all(addresses.map(removeSocketFile));
      await accessLog?.close();
      await finalStorage.close();
    })();
    return closing;
  };
  return { addresses, storage: finalStorage, access, close };
}

function createHttpServer(handler: ReturnType<typeof createRequestHandler>, logger: Logger): Server {
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
  return server;
}

/** Closes the server, letting requests in flight finish until the deadline. */
async function drain(server: Server, deadlineMs: number, logger: Logger): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const deadline = setTimeout(() => {
    logger.warn('shutdown deadline reached, closing remaining connections');
    server.closeAllConnections();
  }, deadlineMs);
  // Connections that finish a request while shutting down are closed right after it.
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  await closed;
  clearTimeout(deadline);
  clearInterval(idleSweep);
}
