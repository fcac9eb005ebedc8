/**
 * The validated configuration the server runs with: the option table's merged values (options.ts)
 * shaped for the server, with the configuration file's structured keys.
 */
import path from 'node:path';
import type { Grant } from '../access/grants.ts';
import { userNameProblem } from '../auth/htpasswd.ts';
import { defaultGrants } from '../access/grants.ts';
import type { Role } from '../access/policy.ts';
import type { ConfigFile } from './config-file.ts';
import { parseListenAddress } from './listen-address.ts';
import { parseRepoRoot, rootNeedsUser } from '../protocol/repo-root.ts';
import type { RepoRoot } from '../protocol/repo-root.ts';
import type { ListenAddress } from './listen-address.ts';
import type { OptionLayer, OptionName, OptionValues } from './options.ts';
import { flagName, mergeOptions, pickOptions, UsageError } from './options.ts';
import type { QuotaLimits } from '../quota/quota-manager.ts';
import type { LimitRule } from '../limits/user-limits.ts';
import type { FreshnessRules } from '../view/freshness.ts';
import { parseRedisUrl, type RedisLocation } from '../state/redis/redis-state.ts';
import { parseS3Url, type S3Location } from '../storage/s3/s3-layout.ts';

export interface ListenerConfig {
  readonly address: ListenAddress;
  /** The most any request on this listener may do, whatever the user's grants. */
  readonly maxRole: Role;
  /** The folder that `/` names on this listener (repo-root.ts); undefined: the data folder. */
  readonly root?: RepoRoot;
  /**
   * A hosts' listener (--listen, or a file listener below admin): sockets systemd passes take
   * the place of these, while admin listeners are still opened by the server itself.
   */
  readonly forHosts: boolean;
}

export interface TlsConfig {
  /** PEM certificate, or chain with the server's certificate first. */
  readonly cert: string;
  /** PEM private key of that certificate (unencrypted). */
  readonly key: string;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** PEM CA bundle for client certificates; undefined when no client certificate is asked for. */
  readonly clientCa: string | undefined;
}

/** Where repositories are stored: the data folder (--path), or an S3 bucket. */
export type StorageConfig =
  | { readonly kind: 'file' }
  | {
      readonly kind: 's3';
      readonly location: S3Location;
      readonly endpoint: string | undefined;
      readonly region: string | undefined;
    };

export interface ServerConfig {
  /** The data folder: the repositories with file storage; local state (users, saved state) always. */
  readonly path: string;
  readonly storage: StorageConfig;
  /** --state: where several instances keep shared state (Redis); undefined: in this process. */
  readonly state: RedisLocation | undefined;
  readonly listeners: readonly ListenerConfig[];
  readonly appendOnly: boolean;
  readonly noAuth: boolean;
  readonly htpasswdFile: string;
  readonly privateRepos: boolean;
  readonly proxyAuthUsername: string | undefined;
  /** --trusted-proxy entries: addresses, networks or `unix` (client-address.ts). */
  readonly trustedProxies: readonly string[];
  /** The user made admin everywhere by private-repos with append-only, and created on a first start. */
  readonly adminUser: string;
  readonly grants: readonly Grant[];
  readonly verifyUpload: boolean;
  /** Whether the read paths' filesystem calls may run on the event loop (auto: unless remote). */
  readonly syncFsReads: 'auto' | 'on' | 'off';
  readonly log: string | undefined;
  /** --audit-log: the audit trail's file, `-` for stderr. */
  readonly auditLog: string | undefined;
  readonly debug: boolean;
  readonly groupAccessibleRepos: boolean;
  readonly maxRepoDepth: number;
  readonly shutdownTimeout: number;
  /** Server processes (--workers); 1 is this process alone. */
  readonly workers: number;
  /** Open TCP connections one peer address may hold. */
  readonly maxConnectionsPerAddress: number;
  /** Seconds an upload body may go without a byte before it is cut off. */
  readonly uploadIdleTimeout: number;
  readonly configFile: string | undefined;
  /** HTTPS on every TCP listener; absent for plain HTTP. */
  readonly tls?: TlsConfig;
  readonly quotas: QuotaLimits;
  readonly limits: readonly LimitRule[];
  readonly prometheus: boolean;
  /** Deleted objects stay in the trash this many ms (0: deletes are final). */
  readonly deleteGraceMs: number;
  /** Trash younger than this (ms) is never purged early to make room. */
  readonly deleteGraceMinMs: number;
  /** Background scrub: a pass every this many ms; 0 is off. */
  readonly scrubIntervalMs: number;
  /** Bytes per second the background scrub reads at most. */
  readonly scrubRate: number;
  readonly prometheusNoAuth: boolean;
  /** When a repository is stale: --stale-after, and per pattern the file's `freshness`. */
  readonly freshness: FreshnessRules;
}

export { UsageError };

/** Where each given value came from, as commander reports it: 'cli' or 'env'; others are defaults. */
export type ValueSource = (name: OptionName) => string | undefined;

/**
 * Merges defaults < configuration file < environment and flags into a ServerConfig. `given`
 * holds the values of flags and environment variables; those whose source is not 'cli' or 'env'
 * are defaults and are ignored.
 */
/** What the server serves, as the serving line and logs show it: the data folder or the bucket. */
export function storageText(config: Pick<ServerConfig, 'path' | 'storage'>): string {
  if (config.storage.kind === 'file') return config.path;
  const { bucket, prefix } = config.storage.location;
  return `s3://${bucket}${prefix === '' ? '' : `/${prefix.slice(0, -1)}`}`;
}

/** --storage: file:DIR is --path by another name; s3://BUCKET[/PREFIX] keeps --path for local state. */
function storageOption(
  values: OptionValues,
  explicit: ReadonlySet<OptionName>,
): { dataPath: string; storage: StorageConfig } {
  const text = values.storage;
  const s3Only = values.s3Endpoint !== undefined || values.s3Region !== undefined;
  if (text === undefined || text.startsWith('file:')) {
    if (s3Only) throw new UsageError('--s3-endpoint and --s3-region need --storage s3://BUCKET[/PREFIX]');
    const dir = text?.slice('file:'.length) ?? values.path;
    if (dir === '') throw new UsageError('--storage file: needs a folder, e.g. file:/srv/restic');
    if (text !== undefined && explicit.has('path') && path.resolve(dir) !== path.resolve(values.path)) {
      throw new UsageError(`--storage ${text} and --path ${values.path} name different folders: give one`);
    }
    return { dataPath: dir, storage: { kind: 'file' } };
  }
  if (!text.startsWith('s3://'))
    throw new UsageError(`--storage ${text}: expected file:DIR or s3://BUCKET[/PREFIX]`);
  let location: S3Location;
  try {
    location = parseS3Url(text);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.s3Endpoint !== undefined && !/^https?:\/\/[^/]/.test(values.s3Endpoint)) {
    throw new UsageError(
      `--s3-endpoint ${values.s3Endpoint}: expected http://HOST[:PORT] or https://HOST[:PORT]`,
    );
  }
  return {
    dataPath: values.path,
    storage: { kind: 's3', location, endpoint: values.s3Endpoint, region: values.s3Region },
  };
}

/** --state: a redis:// URL, checked here so that a typo is a usage error at start. */
function stateOption(text: string | undefined): RedisLocation | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    return parseRedisUrl(text);
  } catch (err) {
    throw new UsageError(`--state: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function buildServerConfig(
  given: OptionLayer,
  source: ValueSource,
  file: ConfigFile | undefined,
): ServerConfig {
  const command = pickOptions(given, (name) => source(name) === 'cli' || source(name) === 'env');
  const { values, explicit } = mergeOptions(file?.options ?? {}, command);
  const { dataPath, storage } = storageOption(values, explicit);
  if (file?.listeners) refuseListenerOverrides(values, explicit);
  // Without a listen setting, an admin-listen setting stands alone rather than beside the default.
  const listen = explicit.has('listen') || !explicit.has('adminListen') ? values.listen : [];
  const listenRoot = repoRootOption('--listen-root', values.listenRoot);
  const listeners: ListenerConfig[] = file?.listeners
    ? file.listeners.map((l) => ({
        address: parseListenAddress(l.address),
        maxRole: l['max-role'],
        root: repoRootOption(`listener ${l.address}: root`, l.root),
        forHosts: l['max-role'] !== 'admin',
      }))
    : [
        ...listen.map((text) => ({
          address: parseListenAddress(text),
          maxRole: values.appendOnly ? ('append-only' as const) : ('admin' as const),
          root: listenRoot,
          forHosts: true,
        })),
        ...values.adminListen.map((text) => ({
          address: parseListenAddress(text),
          maxRole: 'admin' as const,
          forHosts: false,
        })),
      ];
  if (listeners.length === 0) throw new UsageError('no listener: listen and admin-listen are both empty');
  const adminProblem = userNameProblem(values.adminUser);
  if (adminProblem !== undefined) throw new UsageError(`--admin-user: ${adminProblem}`);
  if (values.noAuth && listeners.some((l) => l.root !== undefined && rootNeedsUser(l.root)))
    throw new UsageError(
      'a root with {user} needs users who log in, and --no-auth has none: remove one of them',
    );
  if (values.noAuth && values.privateRepos)
    throw new UsageError(
      '--no-auth and --private-repos contradict each other: private repositories need users who log in; remove one',
    );

  return {
    path: dataPath,
    storage,
    state: stateOption(values.state),
    listeners,
    appendOnly: values.appendOnly,
    noAuth: values.noAuth,
    htpasswdFile: values.htpasswdFile ?? path.join(dataPath, '.htpasswd'),
    privateRepos: values.privateRepos,
    proxyAuthUsername: values.proxyAuthUsername,
    trustedProxies: values.trustedProxy,
    adminUser: values.adminUser,
    grants:
      file?.access ??
      defaultGrants(
        values.privateRepos,
        values.privateRepos && values.appendOnly ? values.adminUser : undefined,
      ),
    verifyUpload: !values.noVerifyUpload,
    syncFsReads: values.syncFsReads,
    log: values.log,
    auditLog: values.auditLog,
    debug: values.debug,
    groupAccessibleRepos: values.groupAccessibleRepos,
    maxRepoDepth: values.maxRepoDepth,
    shutdownTimeout: values.shutdownTimeout,
    workers: values.workers,
    maxConnectionsPerAddress: values.maxConnectionsPerAddress,
    uploadIdleTimeout: values.uploadIdleTimeout,
    configFile: values.config,
    tls: tlsConfig(values, explicit),
    quotas: {
      maxTotalBytes: values.maxSize,
      maxReposPerUser: values.maxReposPerUser,
      maxLockBytes: values.maxLockSize,
      maxLocksPerRepo: values.maxLocksPerRepo,
      repoRules: (file?.quotas?.repos ?? []).map((rule) => ({
        repos: rule.repos,
        maxBytes: rule['max-size'],
      })),
      userRules: (file?.quotas?.users ?? []).map((rule) => ({
        users: rule.users,
        maxBytes: rule['max-size'],
      })),
    },
    limits: (file?.limits ?? []).map((rule) => ({
      users: rule.users,
      requestsPerSecond: rule['requests-per-second'],
      burst: rule.burst,
      uploadBytesPerSecond: rule['upload-bytes-per-second'],
      downloadBytesPerSecond: rule['download-bytes-per-second'],
    })),
    prometheus: values.prometheus,
    deleteGraceMs: values.deleteGrace,
    deleteGraceMinMs: values.deleteGraceMin,
    scrubIntervalMs: values.scrubInterval,
    scrubRate: values.scrubRate,
    prometheusNoAuth: values.prometheusNoAuth,
    freshness: {
      staleAfterMs: values.staleAfter,
      rules: (file?.freshness ?? []).map((rule) => ({
        repos: rule.repos,
        staleAfterMs: rule['stale-after'],
      })),
    },
  };
}

/**
 * The file's `listeners:` sets every listener with its ceiling: a listen, admin-listen or
 * append-only setting from anywhere would either replace those ceilings or be dropped, so the
 * combination is refused rather than one of them silently ignored.
 */
/** A root setting parsed (repo-root.ts), or undefined when not given; a bad one is a UsageError. */
function repoRootOption(what: string, text: string | undefined): RepoRoot | undefined {
  if (text === undefined) return undefined;
  try {
    return parseRepoRoot(text);
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`);
  }
}

function refuseListenerOverrides(values: OptionValues, explicit: ReadonlySet<OptionName>): void {
  const stray = (['listen', 'adminListen', 'appendOnly', 'listenRoot'] as const).filter(
    (name) => explicit.has(name) && (name !== 'appendOnly' || values.appendOnly),
  );
  if (stray.length > 0)
    throw new UsageError(
      `${stray.map(flagName).join(', ')} (flag, RATCHET_* variable or key) cannot be combined with the ` +
        "configuration file's listeners, which set every listener and its max-role: " +
        'give the listeners there the ceiling you want (e.g. max-role: append-only)',
    );
}

const tlsOnly = ['tlsCert', 'tlsKey', 'tlsMinVer', 'tlsClientCa'] as const;

/** The TLS settings, or undefined without --tls; TLS-only options without --tls are refused. */
function tlsConfig(values: OptionValues, explicit: ReadonlySet<OptionName>): TlsConfig | undefined {
  if (!values.tls) {
    const stray = tlsOnly.filter((name) => explicit.has(name));
    if (stray.length > 0)
      throw new UsageError(
        `${stray.map(flagName).join(', ')} ${stray.length === 1 ? 'needs' : 'need'} --tls (or tls: true)`,
      );
    return undefined;
  }
  return {
    cert: values.tlsCert ?? path.join(values.path, 'public_key'),
    key: values.tlsKey ?? path.join(values.path, 'private_key'),
    minVersion: values.tlsMinVer === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    clientCa: values.tlsClientCa,
  };
}
