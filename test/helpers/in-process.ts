/** Starts the server inside the test process on a loopback port: a real socket, no child process. */
import { defaultGrants } from '../../src/access/grants.ts';
import { noQuotas } from '../../src/quota/quota-manager.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import type { CredentialChecker } from '../../src/http/identify.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { defaultHardeningLimits } from '../../src/http/hardening-limits.ts';
import type { Logger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server/server.ts';
import type { RunningServer } from '../../src/server/server.ts';
import type { Storage } from '../../src/storage/storage.ts';

export interface TestServer {
  /** The first listener's base URL. */
  readonly url: string;
  /** Every listener's base URL, in the order of the config's listeners. */
  readonly urls: readonly string[];
  readonly server: RunningServer;
  close(): Promise<void>;
}

/** A server config for tests: loopback, ephemeral port, no auth. */
export function testConfig(dataDir: string, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    path: dataDir,
    storage: { kind: 'file' },
    state: undefined,
    listeners: [
      {
        address: { kind: 'tcp', host: '127.0.0.1', port: 0 },
        maxRole: overrides.appendOnly ? 'append-only' : 'admin',
        forHosts: true,
      },
    ],
    appendOnly: false,
    noAuth: true,
    htpasswdFile: `${dataDir}/.htpasswd`,
    privateRepos: false,
    proxyAuthUsername: undefined,
    trustedProxies: [],
    adminUser: 'admin',
    grants: defaultGrants(false),
    configFile: undefined,
    quotas: noQuotas,
    limits: [],
    prometheus: false,
    deleteGraceMs: 0,
    deleteGraceMinMs: 24 * 60 * 60 * 1000,
    freshness: { staleAfterMs: 36 * 60 * 60 * 1000, rules: [] },
    scrubIntervalMs: 0,
    scrubRate: 50 * 1024 ** 2,
    prometheusNoAuth: false,
    verifyUpload: true,
    syncFsReads: 'auto',
    log: undefined,
    auditLog: undefined,
    debug: false,
    groupAccessibleRepos: false,
    maxRepoDepth: 8,
    shutdownTimeout: 5,
    workers: 1,
    maxConnectionsPerAddress: defaultHardeningLimits.maxConnectionsPerAddress,
    uploadIdleTimeout: defaultHardeningLimits.bodyIdleTimeoutMs / 1000,
    ...overrides,
  };
}

/** Starts a server on 127.0.0.1:0 with the filesystem backend at dataDir (or the given storage). */
export async function startTestServer(
  dataDir: string,
  overrides: Partial<ServerConfig> = {},
  storage?: Storage,
  credentials?: CredentialChecker,
  logger: Logger = silentLogger(),
): Promise<TestServer> {
  const server = await startServer(testConfig(dataDir, overrides), {
    logger,
    storage,
    credentials,
  });
  const urls = server.addresses.map((address) => {
    if (address.kind !== 'tcp') throw new Error('test servers listen on TCP');
    return `http://127.0.0.1:${address.port}`;
  });
  return { url: urls[0] ?? '', urls, server, close: () => server.close() };
}
