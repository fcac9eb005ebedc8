/**
 * Assembles a running server from a configuration: storage, access rules, one request pipeline
 * per listener (each with its role ceiling), TLS with certificate reload, timeouts, and a
 * graceful shutdown that lets in-flight uploads finish.
 *
 * With TLS on, every TCP listener serves HTTPS (HTTP/2 and HTTP/1.1); unix sockets stay plain
 * HTTP/1.1: they are reached only from this machine, their file permissions guard them, and the
 * usual client is a local reverse proxy that has already terminated TLS.
 */
import path from 'node:path';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import type { Logger } from 'pino';
import { AccessControl } from '../access/access-control.ts';
import type { Role } from '../access/policy.ts';
import type { ListenAddress } from '../config/listen-address.ts';
import { storageText, type ListenerConfig, type ServerConfig } from '../config/server-config.ts';
import { RatchetError } from '../errors.ts';
import { UserLimits } from '../limits/user-limits.ts';
import type { RedisState } from '../state/redis/redis-state.ts';
import { RedisBucketStore } from '../state/redis/redis-bucket-store.ts';
import { RedisJobLease } from '../state/redis/redis-job-lease.ts';
import { RedisUsageStore } from '../state/redis/redis-usage-store.ts';
import { RedisScrubState } from '../state/redis/redis-scrub-state.ts';
import type { JobLease } from '../state/job-lease.ts';
import type { RedisUsageOptions } from '../state/redis/redis-usage-store.ts';
import type { PrimaryLink } from '../state/ipc/primary-link.ts';
import { LinkedBucketStore, LinkedJobLease, LinkedUsageStore } from '../state/ipc/linked-stores.ts';
import type { UsageStore } from '../usage/usage-store.ts';
import type { BucketStore } from '../state/bucket-store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { QuotaManager } from '../quota/quota-manager.ts';
import { UsageLedger } from '../usage/usage-ledger.ts';
import { BackgroundScrub, FileScrubState } from '../scrub/background-scrub.ts';
import { TrashKeeper } from '../trash/trash-keeper.ts';
import { MemoryUsageStore } from '../usage/usage-store.ts';
import { isTrustedPeer, parseTrustedPeers } from '../http/client-address.ts';
import { createIdentify } from '../http/identify.ts';
import type { CredentialChecker } from '../http/identify.ts';
import { createRequestHandler } from '../http/request-handler.ts';
import { openAccessLog } from '../log/access-log.ts';
import { AuditLog } from '../log/audit-log.ts';
import { describeAddress } from '../config/listen-address.ts';
import { FsStorage } from '../storage/fs/fs-storage.ts';
import { remoteFilesystemOf } from '../storage/fs/filesystem-type.ts';
import type { Storage } from '../storage/storage.ts';
import { CertificateWatcher, warnIfExpired } from './certificate-watcher.ts';
import type { CertificateReloadOutcome, CertificateWatcherOptions } from './certificate-watcher.ts';
import { listenOn, removeSocketFile } from './listener.ts';
import { createSecureHttpServer } from './secure-server.ts';
import type { SecureHttpServer } from './secure-server.ts';
import { answerClientError, drainConnections } from './connection-lifecycle.ts';
import { headersTimeoutMs, idleTimeoutMs, keepAliveTimeoutMs } from './timeouts.ts';
import { loadTlsMaterial } from './tls-material.ts';
import { ConnectionCap } from './connection-cap.ts';
import { defaultHardeningLimits } from '../http/hardening-limits.ts';
import type { HardeningLimits } from '../http/hardening-limits.ts';
import { expectContinue } from '../util/http-types.ts';
import { probeReadiness } from '../http/server-endpoints.ts';
import { startWebView } from './web-view-sources.ts';
import type { RequestListener } from '../http/request-handler.ts';

export interface ServerDependencies {
  readonly logger: Logger;
  /** Storage to serve instead of the filesystem at config.path (tests, other backends). */
  readonly storage?: Storage;
  /** Required unless config.noAuth. */
  readonly credentials?: CredentialChecker;
  /** Listening sockets passed by systemd; they replace config.listeners' addresses. */
  readonly inheritedFds?: readonly number[];
  /** How the TLS files are watched for changes (tests shorten the delays). */
  readonly certificateWatch?: Pick<CertificateWatcherOptions, 'pollIntervalMs' | 'watch' | 'debounceMs'>;
  /** Time between two usage reconcile ticks (tests shorten it). */
  readonly usageTickMs?: number;
  /** Replaces some of the resource bounds (tests; the defaults are documented). */
  readonly hardening?: Partial<HardeningLimits>;
  /** The shared state store (--state), connected by the caller: usage, quotas, rate limits, leases and readiness use it. */
  readonly shared?: RedisState;
  /** Timings of the shared usage store (tests shorten the hold expiry). */
  readonly sharedUsage?: RedisUsageOptions;
  /**
   * This process is one of several workers (--workers): the primary holds the data folder's
   * lock, shares the listeners and, without --state, hosts the deciding state.
   */
  readonly primary?: PrimaryLink;
}

export interface RunningServer {
  /** The bound addresses, in the order of config.listeners. */
  readonly addresses: readonly ListenAddress[];
  /** For each address, the most a request on it may do. */
  readonly maxRoles: readonly Role[];
  /** For each address, whether it serves HTTPS. */
  readonly secure: readonly boolean[];
  readonly storage: Storage;
  readonly access: AccessControl;
  /** Applies a reloaded configuration's grants, quotas and limits (SIGHUP). */
  reloadPolicies(config: ServerConfig): void;
  /**
   * Reads the TLS certificate, key and client CA again (SIGHUP); a bad set is refused and the
   * current one kept. Undefined when no listener serves TLS.
   */
  reloadCertificates(): Promise<CertificateReloadOutcome | undefined>;
  /** Opens the audit trail's file again (SIGHUP, after logrotate moved it). */
  reopenLogs(): void;
  /** Stops accepting, lets in-flight requests finish up to the deadline, then cuts the rest. */
  close(): Promise<void>;
}

/** One listening server and how to shut it down gracefully. */
interface Served {
  readonly server: NetServer;
  drain(deadlineMs: number): Promise<void>;
}

/** The configured backend, ready for requests: the data folder, or an S3 bucket. */
async function openStorage(
  config: ServerConfig,
  logger: Logger,
  shared: SharedState | undefined,
  worker: boolean,
): Promise<Storage> {
  if (config.storage.kind === 's3') {
    const { S3Storage } = await import('../storage/s3/s3-storage.ts');
    const { instanceIdFor, whyNotBeside } = await import('../storage/s3/s3-instances.ts');
    // Local state (users file, saved state) stays in the data folder.
    await mkdir(config.path, { recursive: true });
    const { location, endpoint, region } = config.storage;
    const s3 = new S3Storage({ location, endpoint, region, maxSockets: 64, logger });
    await s3.init();
    const own = {
      shared: shared !== undefined,
      stateId: await shared?.state.stateId(),
      namespace: shared?.namespace,
    };
    const others = await s3.joinInstances(instanceIdFor(config.path), own);
    const refusal = whyNotBeside(others, own);
    if (refusal !== undefined) {
      await s3.close();
      throw new RatchetError(
        'UNAVAILABLE',
        `another Ratchet instance serves ${storageText(config)}: ${refusal}`,
      );
    }
    logger.info(
      { endpoint, exclusiveCreate: s3.conditionalCreate, otherInstances: others.length },
      `storage: ${storageText(config)}`,
    );
    return s3;
  }
  // Group access must not depend on the umask the server inherits (systemd's UMask=0077 would
  // silently take it away): the group bits are cleared from this process's umask.
  if (config.groupAccessibleRepos) process.umask(process.umask() & ~0o070);
  const fsStorage = new FsStorage({
    root: config.path,
    groupAccessible: config.groupAccessibleRepos,
    logger,
    syncMetadata: await syncFsReadsFor(config, logger),
    heldByPrimary: worker,
  });
  await fsStorage.init();
  return fsStorage;
}

/** The shared state (--state) as this server uses it: the connection, its keys, its leases. */
interface SharedState {
  readonly state: RedisState;
  /** Names the storage served: its instances share usage and leases under it, no others do. */
  readonly namespace: string;
  readonly lease: JobLease;
}

/**
 * The storage's name in the shared state: one bucket and prefix at one endpoint, or one data
 * folder on one machine (a second server on a folder is refused by its lock anyway).
 */
function storageNamespace(config: ServerConfig): string {
  const where =
    config.storage.kind === 's3'
      ? `${config.storage.endpoint ?? ''} ${storageText(config)}`
      : `${os.hostname()} ${path.resolve(config.path)}`;
  return createHash('sha256').update(where).digest('hex').slice(0, 16);
}

/** The shared state of this server, or undefined without --state. */
function sharedStateOf(state: RedisState | undefined, config: ServerConfig): SharedState | undefined {
  if (state === undefined) return undefined;
  const namespace = storageNamespace(config);
  return { state, namespace, lease: new RedisJobLease(state.client, namespace) };
}

/** Starts Ratchet with the given configuration. */
export async function startServer(config: ServerConfig, deps: ServerDependencies): Promise<RunningServer> {
  const { logger } = deps;
  const tls = config.tls;
  // Before anything is opened: a missing or mismatched certificate is a startup error.
  const material = tls === undefined ? undefined : await loadTlsMaterial(tls);
  if (material !== undefined) {
    const { fingerprint, subject, validTo } = material;
    logger.info({ fingerprint, subject, validTo, minVersion: tls?.minVersion }, 'TLS certificate loaded');
    warnIfExpired(material, logger);
  }
  const shared = sharedStateOf(deps.shared, config);
  const link = deps.primary;
  const storage = deps.storage ?? (await openStorage(config, logger, shared, link !== undefined));
  const accessLog = config.log === undefined ? undefined : openAccessLog(config.log);
  const audit =
    config.auditLog === undefined ? undefined : AuditLog.open(config.auditLog, auditFailureLogger(logger));
  const access = new AccessControl(config.grants);
  // With --state, one lease per job for every instance of this storage, and usage in Redis;
  // with workers and no --state, both in the primary.
  const lease = shared?.lease ?? (link === undefined ? undefined : new LinkedJobLease(link));
  const sharedUsage: (UsageStore & { start(): void; stop(): unknown }) | undefined =
    shared !== undefined
      ? new RedisUsageStore(shared.state.client, shared.namespace, logger, deps.sharedUsage)
      : link !== undefined
        ? new LinkedUsageStore(link)
        : undefined;
  sharedUsage?.start();
  // Counted in the background from here; quota decisions wait for the count, listeners do not.
  const usage = new UsageLedger(storage, sharedUsage ?? new MemoryUsageStore(), logger, {
    tickMs: deps.usageTickMs,
    lease,
  });
  usage.start();
  const stopBackground = async (): Promise<void> => {
    await Promise.all([usage.stop(), scrubber?.stop(), trash?.stop(), webView.stop()]);
    await Promise.all([sharedUsage?.stop(), lease?.releaseAll()]);
  };
  const trash =
    config.deleteGraceMs > 0
      ? new TrashKeeper(
          storage,
          usage,
          { graceMs: config.deleteGraceMs, minAgeMs: config.deleteGraceMinMs },
          logger,
          audit,
          lease,
        )
      : undefined;
  const quota = new QuotaManager(usage, config.quotas, trash);
  const sharedBuckets: BucketStore<false> | undefined =
    shared !== undefined
      ? new RedisBucketStore(shared.state.client)
      : link !== undefined
        ? new LinkedBucketStore(link)
        : undefined;
  const limits: UserLimits<boolean> =
    sharedBuckets === undefined
      ? new UserLimits(config.limits)
      : new UserLimits<false>(config.limits, sharedBuckets);
  // prom-client is loaded only with --prometheus (about 12 MiB of memory).
  const metrics: Metrics | undefined = config.prometheus
    ? new (await import('../metrics/metrics.ts')).Metrics(usage)
    : undefined;
  if (metrics !== undefined && link !== undefined) {
    // A scrape shows every worker: the primary asks each for its metrics and sums them.
    link.onCollect(() => metrics.registry.getMetricsAsJSON());
    metrics.render = () => link.call<string>('metrics', 'render');
  }
  metrics?.gauge(
    'ratchet_quota_limit_bytes',
    'Configured quota, by scope (total, repo:<path>, user:<name>)',
    ['scope'],
    (gauge) => {
      for (const entry of quota.report()) gauge.set({ scope: entry.scope }, entry.limit);
    },
    'first',
  );
  metrics?.gauge(
    'ratchet_quota_used_bytes',
    'Bytes counted against each quota',
    ['scope'],
    (gauge) => {
      for (const entry of quota.report()) gauge.set({ scope: entry.scope }, entry.used);
    },
    'first',
  );
  const scrubber = startBackgroundScrub(config, storage, logger, metrics, shared);
  const ready = async (): Promise<void> => {
    await shared?.state.probe();
    await probeReadiness(storage, hardening.readyCacheMs);
  };
  const webView = startWebView({
    config,
    ledger: usage,
    quota,
    access,
    scrub: scrubber?.stats,
    metrics,
    logger,
    ready,
  });
  const { view } = webView;
  trash?.start();
  const listeners = listenersFor(config, deps.inheritedFds);
  const identify = createIdentify({
    noAuth: config.noAuth,
    proxyHeader: config.proxyAuthUsername,
    checker: deps.credentials,
    clientCertificates: tls?.clientCa !== undefined,
  });

  const hardening: HardeningLimits = {
    ...defaultHardeningLimits,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    bodyIdleTimeoutMs: config.uploadIdleTimeout * 1000,
    ...deps.hardening,
  };
  const trustedPeers = parseTrustedPeers(config.trustedProxies);
  // A trusted proxy carries many clients over its connections: the cap would throttle them all.
  const connectionCap = new ConnectionCap(hardening.maxConnectionsPerAddress, logger, (address) =>
    isTrustedPeer(trustedPeers, address),
  );
  const servers: Served[] = [];
  const secureServers: SecureHttpServer[] = [];
  const addresses: ListenAddress[] = [];
  const secure: boolean[] = [];
  let watcher: CertificateWatcher | undefined;
  try {
    for (const listener of listeners) {
      // Named by its bound address once it is bound (port 0 until then).
      let listenerName = describeAddress(listener.address);
      const handler = createRequestHandler({
        storage,
        ready,
        logger,
        accessLog,
        verifyUploads: config.verifyUpload,
        trash,
        view,
        maxRepoDepth: config.maxRepoDepth,
        identify,
        access,
        maxRole: listener.maxRole,
        root: listener.root,
        quota,
        limits,
        metrics,
        metricsNeedAuth: !config.prometheusNoAuth && !config.noAuth,
        hardening,
        trustedPeers,
        audit,
        listenerName: () => listenerName,
      });
      let served: Served;
      const isSecure = tls !== undefined && material !== undefined && listener.address.kind !== 'unix';
      if (isSecure) {
        const secureServer = createSecureHttpServer(handler, tls, material, logger, hardening);
        secureServers.push(secureServer);
        served = { server: secureServer.server, drain: (ms) => secureServer.drain(ms) };
      } else {
        const server = createHttpServer(handler, logger);
        served = {
          server,
          drain: (deadlineMs) =>
            drainConnections(server, {
              deadlineMs,
              logger,
              closeIdle: () => server.closeIdleConnections(),
              cutAll: () => server.closeAllConnections(),
            }),
        };
      }
      connectionCap.attach(served.server);
      // `Expect: 100-continue` is answered by the handler once it accepted the upload, not here.
      served.server.on('checkContinue', answerContinueLater(handler));
      servers.push(served);
      secure.push(isSecure);
      // A worker shares the primary's socket: a live one at a unix path is that one.
      const bound = await listenOn(served.server, listener.address, { replaceStale: link === undefined });
      listenerName = describeAddress(bound, isSecure);
      addresses.push(bound);
    }
    if (tls !== undefined && material !== undefined && secureServers.length > 0) {
      watcher = await CertificateWatcher.start({
        ...deps.certificateWatch,
        config: tls,
        logger,
        current: material,
        onMaterial: (next) => {
          for (const secureServer of secureServers) secureServer.setMaterial(next);
        },
      });
    }
  } catch (err) {
    for (const { server } of servers) server.close();
    await stopBackground();
    throw err;
  }

  const finalStorage = storage;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      watcher?.close();
      await Promise.all(servers.map((served) => served.drain(config.shutdownTimeout * 1000)));
      await stopBackground();
      // The primary owns the shared sockets and removes their files when it stops.
      if (link === undefined) await Promise.all(addresses.map(removeSocketFile));
      await accessLog?.close();
      await finalStorage.close();
      // Last: a cut request's handler may still finish a change while storage closes.
      audit?.close();
    })();
    return closing;
  };
  const reloadCertificates = (): Promise<CertificateReloadOutcome | undefined> =>
    watcher === undefined ? Promise.resolve(undefined) : watcher.reload();
  const reloadPolicies = (next: ServerConfig): void => {
    access.update(next.grants);
    quota.update(next.quotas);
    // Shared buckets are cleared in Redis; if it is away they simply refill on their own.
    Promise.resolve(limits.update(next.limits)).catch((err: unknown) =>
      logger.warn({ err }, 'clearing the shared rate limit buckets failed'),
    );
  };
  const maxRoles = listeners.map((listener) => listener.maxRole);
  return {
    addresses,
    maxRoles,
    secure,
    storage: finalStorage,
    access,
    reloadPolicies,
    reloadCertificates,
    reopenLogs: () => audit?.reopen(),
    close,
  };
}

/** Logs audit trail write failures, at most one line every 10 s with the count since. */
function auditFailureLogger(logger: Logger): (err: unknown) => void {
  let lastMs = 0;
  let missed = 0;
  return (err) => {
    missed++;
    if (Date.now() - lastMs < 10_000) return;
    logger.error({ err, lines: missed }, 'the audit trail could not be written');
    lastMs = Date.now();
    missed = 0;
  };
}

/** The background scrub when --scrub-interval is set, with its metrics; undefined otherwise. */
function startBackgroundScrub(
  config: ServerConfig,
  storage: Storage,
  logger: Logger,
  metrics: Metrics | undefined,
  shared: SharedState | undefined,
): BackgroundScrub | undefined {
  if (config.scrubIntervalMs <= 0) return undefined;
  const scrubber = new BackgroundScrub(
    storage,
    shared === undefined
      ? new FileScrubState(path.join(config.path, '.ratchet', 'scrub.json'))
      : new RedisScrubState(shared.state.client, shared.namespace),
    logger,
    // Start-up work goes first: a minute, or a tenth of a short interval.
    {
      intervalMs: config.scrubIntervalMs,
      bytesPerSecond: config.scrubRate,
      startDelayMs: Math.min(60_000, config.scrubIntervalMs / 10),
      lease: shared?.lease,
    },
  );
  const { stats } = scrubber;
  metrics?.counter('ratchet_scrub_objects_total', 'Objects the background scrub has checked', [], (c) =>
    c.inc(stats.objects),
  );
  metrics?.counter('ratchet_scrub_bytes_total', 'Bytes the background scrub has read', [], (c) =>
    c.inc(stats.bytes),
  );
  metrics?.counter(
    'ratchet_scrub_corrupt_objects_total',
    'Stored objects the background scrub found not matching their names',
    ['repo'],
    (c) => {
      for (const [repo, count] of stats.corrupt) c.inc({ repo }, count);
    },
  );
  metrics?.counter(
    'ratchet_scrub_unreadable_objects_total',
    'Stored objects the background scrub could not read (I/O errors, permissions)',
    ['repo'],
    (c) => {
      for (const [repo, count] of stats.unreadable) c.inc({ repo }, count);
    },
  );
  metrics?.gauge(
    'ratchet_scrub_last_pass_timestamp_seconds',
    'When the background scrub last checked a repository to its end (Unix time)',
    ['repo'],
    (g) => {
      for (const [repo, ms] of stats.lastPassMs) g.set({ repo }, ms / 1000);
    },
    'max',
  );
  scrubber.start();
  return scrubber;
}

/**
 * The configured listeners; with sockets from systemd, those take the place of the hosts'
 * listeners (with the first one's ceiling and root), and admin listeners are opened as configured.
 */
function listenersFor(config: ServerConfig, fds: readonly number[] | undefined): readonly ListenerConfig[] {
  if (fds === undefined || fds.length === 0) return config.listeners;
  const hosts = config.listeners.find((listener) => listener.forHosts);
  const maxRole = hosts?.maxRole ?? (config.appendOnly ? 'append-only' : 'admin');
  // Only admin listeners configured: the sockets replace them all, as they always did.
  if (hosts === undefined)
    return fds.map((fd) => ({ address: { kind: 'fd' as const, fd }, maxRole, forHosts: true }));
  return [
    ...fds.map((fd) => ({
      address: { kind: 'fd' as const, fd },
      maxRole,
      root: hosts?.root,
      forHosts: true,
    })),
    ...config.listeners.filter((listener) => !listener.forHosts),
  ];
}

function createHttpServer(handler: RequestListener, logger: Logger): Server {
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
  server.on('clientError', answerClientError(logger));
  return server;
}

/** A checkContinue listener: the request goes down the pipeline with its 100 still unsent. */
function answerContinueLater(handler: RequestListener): RequestListener {
  return (req, res) => {
    expectContinue(res);
    handler(req, res);
  };
}

/** Resolves --sync-fs-reads: auto keeps filesystem calls of remote filesystems off the loop. */
async function syncFsReadsFor(config: ServerConfig, logger: Logger): Promise<boolean> {
  if (config.syncFsReads !== 'auto') return config.syncFsReads === 'on';
  const remote = await remoteFilesystemOf(config.path);
  if (remote === undefined) return true;
  logger.info(
    { path: config.path, filesystem: remote },
    'data on a network or FUSE filesystem: its read calls go through the thread pool (--sync-fs-reads)',
  );
  return false;
}
