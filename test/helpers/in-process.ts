/** Starts the server inside the test process on a loopback port: a real socket, no child process. */
import type { ServerConfig } from '../../src/config/options.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server/server.ts';
import type { RunningServer } from '../../src/server/server.ts';
import type { Storage } from '../../src/storage/storage.ts';

export interface TestServer {
  readonly url: string;
  readonly server: RunningServer;
  close(): Promise<void>;
}

/** A server config for tests: loopback, ephemeral port, no auth. */
export function testConfig(dataDir: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    path: dataDir,
    listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
    appendOnly: false,
    noAuth: true,
    verifyUpload: true,
    log: undefined,
    debug: false,
    groupAccessibleRepos: false,
    maxRepoDepth: 8,
    shutdownTimeout: 5,
    ...overrides,
  };
}

/** Starts a server on 127.0.0.1:0 with the filesystem backend at dataDir (or the given storage). */
export async function startTestServer(
  dataDir: string,
  overrides: Partial<ServerConfig> = {},
  storage?: Storage,
): Promise<TestServer> {
  const server = await startServer(testConfig(dataDir, overrides), silentLogger(), storage);
  if (server.address.kind !== 'tcp') throw new Error('test servers listen on TCP');
  return { url: `http://127.0.0.1:${server.address.port}`, server, close: () => server.close() };
}
