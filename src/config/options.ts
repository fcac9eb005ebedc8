/**
 * The server's options: ONE table from which the command line and its --help, the RATCHET_*
 * environment variables, the configuration file's keys (config-file.ts builds its schema from
 * it), the merge of all of them and the option table in docs/configuration.md all come. Flag
 * names are rest-server's, so switching servers is a one-word change.
 * Precedence: defaults < configuration file < environment < flags.
 * This module imports no schema library: the server loads zod and yaml only with --config.
 */
import { parseListenAddress } from './listen-address.ts';
import { parseTrustedPeers } from '../http/client-address.ts';
import { parseSize } from './sizes.ts';
import { parseDuration } from '../util/durations.ts';
import { defaultHardeningLimits } from '../http/hardening-limits.ts';
import {
  defaultMaxLockBytes,
  defaultMaxLocksPerRepo,
  defaultMaxReposPerUser,
} from '../quota/quota-manager.ts';

/** What an option holds, and so how its flag, variable and file key are read. */
export type OptionKind =
  /** A switch: present or not on the command line, a boolean elsewhere. */
  | { readonly type: 'switch' }
  | { readonly type: 'text' }
  | { readonly type: 'integer'; readonly min: number; readonly max: number }
  /** Bytes, or a number with a unit (sizes.ts). */
  | { readonly type: 'size' }
  /** A duration (durations.ts), kept in milliseconds; 0 turns the feature off where documented. */
  | { readonly type: 'duration' }
  | { readonly type: 'choice'; readonly values: readonly [string, ...string[]] }
  /** Listen addresses; the flag may be repeated. */
  | { readonly type: 'addresses' }
  /** Trusted peers (client-address.ts); the flag may be repeated, and each value lists several, comma-separated. */
  | { readonly type: 'peers' };

/** The value an option of this kind holds. */
export type KindValue<K extends OptionKind> = K extends { readonly type: 'switch' }
  ? boolean
  : K extends { readonly type: 'integer' | 'size' | 'duration' }
    ? number
    : K extends { readonly type: 'choice'; readonly values: readonly (infer V)[] }
      ? V
      : K extends { readonly type: 'addresses' | 'peers' }
        ? readonly string[]
        : string;

export interface OptionDefinition<K extends OptionKind = OptionKind, D = KindValue<OptionKind> | undefined> {
  /** The long flag without `--`, e.g. `max-size`; also the file key and, in capitals, the variable. */
  readonly flag: string;
  /** The argument's name in --help, e.g. `size` for `--max-size <size>`; none for switches. */
  readonly arg?: string;
  readonly kind: K;
  /** The value when nothing sets the option (switches: false); none: undefined. */
  readonly default?: D;
  /** How docs and --help show a default that is not a fixed value, e.g. `<path>/.htpasswd`. */
  readonly defaultText?: string;
  /** Command line and environment only: the configuration file has no such key. */
  readonly noFileKey?: true;
  /** One line for --help. */
  readonly description: string;
  /** The meaning column of docs/configuration.md (Markdown). */
  readonly doc: string;
}

/** Types one entry of the table: the default must be a value of the option's kind. */
function option<const K extends OptionKind, const D extends KindValue<K> | undefined = undefined>(
  definition: OptionDefinition<K, D>,
): OptionDefinition<K, D> {
  return definition;
}

/** Every option, in the order --help and the docs show them. Adding an option is one entry here. */
export const options = {
  config: option({
    flag: 'config',
    arg: 'file',
    kind: { type: 'text' },
    noFileKey: true,
    description: 'YAML configuration file (see docs/configuration.md)',
    doc: 'YAML configuration file',
  }),
  path: option({
    flag: 'path',
    arg: 'dir',
    kind: { type: 'text' },
    default: './data',
    description: 'data directory',
    doc: "data directory, rest-server's layout",
  }),
  storage: option({
    flag: 'storage',
    arg: 'url',
    kind: { type: 'text' },
    defaultText: 'file:<path>',
    description:
      'where repositories are stored: file:DIR (the local folder, default: --path) or s3://BUCKET[/PREFIX] (S3-compatible object storage; credentials from the AWS_* variables or shared files)',
    doc: 'repository storage: `file:DIR` or `s3://BUCKET[/PREFIX]` (docs/s3.md); `--path` keeps local state',
  }),
  s3Endpoint: option({
    flag: 's3-endpoint',
    arg: 'url',
    kind: { type: 'text' },
    description: "the S3 store's URL, e.g. http://127.0.0.1:7480 (Ceph RGW, MinIO); AWS when unset",
    doc: 'S3 endpoint URL (AWS when unset)',
  }),
  s3Region: option({
    flag: 's3-region',
    arg: 'region',
    kind: { type: 'text' },
    defaultText: '$AWS_REGION or us-east-1',
    description: 'the S3 region',
    doc: 'S3 region',
  }),
  state: option({
    flag: 'state',
    arg: 'url',
    kind: { type: 'text' },
    description:
      'redis://HOST[:PORT][/DB]: Redis or Valkey holding what several instances share (quota reservations and usage, the login throttle, rate and bandwidth limits, job leases); unset: this process alone',
    doc: 'shared state store for several instances (Redis)',
  }),
  listen: option({
    flag: 'listen',
    arg: 'address',
    kind: { type: 'addresses' },
    default: ['127.0.0.1:8000'],
    description:
      'listen address: host:port, :port (all interfaces), [ipv6]:port or unix:/path; repeatable; capped by --append-only',
    doc: 'listeners capped by `append-only`; none by default when only `admin-listen` is set',
  }),
  adminListen: option({
    flag: 'admin-listen',
    arg: 'address',
    kind: { type: 'addresses' },
    default: [],
    description: 'an extra listener that --append-only does not cap, for admins who prune; repeatable',
    doc: 'listeners not capped by `append-only`',
  }),
  listenRoot: option({
    flag: 'listen-root',
    arg: 'folder',
    kind: { type: 'text' },
    description:
      "the repository folder that / names on the --listen listeners, e.g. /{user}: each user reaches only their own folder there (the nginx recipe's per-user root); --admin-listen serves every repository by path",
    doc: 'what `/` names on the `listen` listeners, e.g. `/{user}`',
  }),
  tls: option({
    flag: 'tls',
    kind: { type: 'switch' },
    description: 'serve HTTPS (HTTP/2 with HTTP/1.1 fallback) on the TCP listeners; unix sockets stay plain',
    doc: 'HTTPS (HTTP/2 and HTTP/1.1) on every TCP listener',
  }),
  tlsCert: option({
    flag: 'tls-cert',
    arg: 'file',
    kind: { type: 'text' },
    defaultText: '<path>/public_key',
    description: 'TLS certificate (chain) in PEM, reloaded when it changes',
    doc: 'PEM certificate (chain), reloaded when it changes',
  }),
  tlsKey: option({
    flag: 'tls-key',
    arg: 'file',
    kind: { type: 'text' },
    defaultText: '<path>/private_key',
    description: 'TLS private key in PEM, unencrypted',
    doc: 'PEM private key of the certificate, unencrypted',
  }),
  tlsMinVer: option({
    flag: 'tls-min-ver',
    arg: 'version',
    kind: { type: 'choice', values: ['1.2', '1.3'] },
    default: '1.2',
    description: 'oldest TLS version accepted',
    doc: 'oldest TLS version accepted',
  }),
  tlsClientCa: option({
    flag: 'tls-client-ca',
    arg: 'file',
    kind: { type: 'text' },
    description:
      'CA (PEM) for client certificates: a certificate it signed logs in as its common name, without a password',
    doc: 'CA whose client certificates log in as their common name',
  }),
  appendOnly: option({
    flag: 'append-only',
    kind: { type: 'switch' },
    description: 'nobody may delete or overwrite through --listen listeners (lock files aside)',
    doc: 'cap `listen` listeners at the append-only role',
  }),
  privateRepos: option({
    flag: 'private-repos',
    kind: { type: 'switch' },
    description: 'users reach only repositories below /<username>/',
    doc: 'default grants: each user only below `/<user>/`',
  }),
  adminUser: option({
    flag: 'admin-user',
    arg: 'name',
    kind: { type: 'text' },
    default: 'admin',
    description:
      'with --private-repos and --append-only: the user who may prune every repository (through --admin-listen only); also the first user created',
    doc: 'admin everywhere under `private-repos` + `append-only`; the first user created',
  }),
  htpasswdFile: option({
    flag: 'htpasswd-file',
    arg: 'file',
    kind: { type: 'text' },
    defaultText: '<path>/.htpasswd',
    description: 'htpasswd file with the users',
    doc: 'users file',
  }),
  noAuth: option({
    flag: 'no-auth',
    kind: { type: 'switch' },
    description:
      'disable authentication (anyone who can connect may use every repository); logs a warning per listener; not with --private-repos',
    doc: 'serve without authentication; warns naming each listener; refused with `private-repos`',
  }),
  proxyAuthUsername: option({
    flag: 'proxy-auth-username',
    arg: 'header',
    kind: { type: 'text' },
    description:
      'trust this request header, set by a reverse proxy, as the user name; only from --trusted-proxy peers (without it: loopback and unix-socket peers, with a warning)',
    doc: 'header a reverse proxy sets to the user name; honoured only from `trusted-proxy` peers (without any: loopback and unix-socket peers, with a warning at start)',
  }),
  trustedProxy: option({
    flag: 'trusted-proxy',
    arg: 'cidr',
    kind: { type: 'peers' },
    default: [],
    description:
      'a reverse proxy allowed to name the client (X-Forwarded-For) and, with --proxy-auth-username, the user: an address, a network (10.0.0.0/8) or unix; repeatable; exempt from --max-connections-per-address',
    doc: 'proxies whose `X-Forwarded-For` (rightmost untrusted hop) names the client and whose user header counts: addresses, networks (`10.0.0.0/8`, `fd00::/8`) or `unix`; exempt from the connection cap',
  }),
  maxSize: option({
    flag: 'max-size',
    arg: 'size',
    kind: { type: 'size' },
    description:
      'the most the whole data directory may hold, e.g. 500GiB (507 beyond it); default: unlimited',
    doc: 'most the whole data directory may hold (none: unlimited)',
  }),
  maxReposPerUser: option({
    flag: 'max-repos-per-user',
    arg: 'n',
    kind: { type: 'integer', min: 1, max: 1_000_000 },
    default: defaultMaxReposPerUser,
    description: 'the most repositories one user may create below /<user>/; creating more gets 507',
    doc: 'repositories one user may create below `/<user>/`; creating more gets 507',
  }),
  maxLockSize: option({
    flag: 'max-lock-size',
    arg: 'size',
    kind: { type: 'size' },
    default: defaultMaxLockBytes,
    description: 'the largest lock object accepted (restic writes a few hundred bytes); larger gets 413',
    doc: 'largest lock object accepted; larger gets 413',
  }),
  maxLocksPerRepo: option({
    flag: 'max-locks-per-repo',
    arg: 'n',
    kind: { type: 'integer', min: 1, max: 1_000_000 },
    default: defaultMaxLocksPerRepo,
    description:
      'the most lock objects one repository may hold; one more gets 507 (restic unlock removes stale ones)',
    doc: 'lock objects one repository may hold; one more gets 507',
  }),
  deleteGrace: option({
    flag: 'delete-grace',
    arg: 'duration',
    kind: { type: 'duration' },
    default: 0,
    description:
      "keep deleted objects (all but locks) in the repository's trash this long before they are removed for good, e.g. 7d; restore them with ratchet trash restore; 0: deletes are final",
    doc: 'deleted objects stay restorable this long (e.g. `7d`); 0: deletes are final',
  }),
  deleteGraceMin: option({
    flag: 'delete-grace-min',
    arg: 'duration',
    kind: { type: 'duration' },
    default: 24 * 60 * 60 * 1000,
    defaultText: '24h',
    description:
      'when --max-size or the disk is full, trash older than this is removed early, oldest first, to make room; younger trash is never removed early (the upload gets 507)',
    doc: 'when `--max-size` or the disk is full, trash older than this is removed early, oldest first',
  }),
  staleAfter: option({
    flag: 'stale-after',
    arg: 'duration',
    kind: { type: 'duration' },
    default: 36 * 60 * 60 * 1000,
    defaultText: '36h',
    description:
      'a repository whose newest snapshot is older than this is stale (the web view, /.ratchet/api/repos, ratchet_repo_stale); per repository pattern in the file under freshness',
    doc: 'a repository whose newest snapshot is older than this is stale; per pattern under `freshness`',
  }),
  scrubInterval: option({
    flag: 'scrub-interval',
    arg: 'duration',
    kind: { type: 'duration' },
    default: 0,
    description:
      'start a background scrub (every stored object re-read and checked against its SHA-256 name) this long after the previous one started, e.g. 7d; 0: off',
    doc: 'background scrub: a pass every this long (e.g. `7d`); 0 is off',
  }),
  scrubRate: option({
    flag: 'scrub-rate',
    arg: 'size',
    kind: { type: 'size' },
    default: 50 * 1024 ** 2,
    defaultText: '50MiB',
    description: 'bytes per second the background scrub reads at most',
    doc: 'bytes per second the background scrub reads at most',
  }),
  prometheus: option({
    flag: 'prometheus',
    kind: { type: 'switch' },
    description: 'serve Prometheus metrics at /metrics (and /.ratchet/metrics)',
    doc: 'serve metrics at `/metrics` and `/.ratchet/metrics`',
  }),
  prometheusNoAuth: option({
    flag: 'prometheus-no-auth',
    kind: { type: 'switch' },
    description: 'serve the metrics without authentication',
    doc: 'serve metrics without authentication',
  }),
  noVerifyUpload: option({
    flag: 'no-verify-upload',
    kind: { type: 'switch' },
    description: 'do not verify that uploads match their SHA-256 name (not recommended)',
    doc: 'skip the SHA-256 check of uploads',
  }),
  syncFsReads: option({
    flag: 'sync-fs-reads',
    arg: 'mode',
    kind: { type: 'choice', values: ['auto', 'on', 'off'] },
    default: 'auto',
    description:
      "run the read paths' stat/open/small reads on the event loop: auto (on unless the data is on a network or FUSE filesystem), on, off",
    doc: "read paths' stat/open/small reads on the event loop (`auto`: not on network or FUSE filesystems)",
  }),
  log: option({
    flag: 'log',
    arg: 'file',
    kind: { type: 'text' },
    description: 'write an Apache combined access log to file, or - for standard output',
    doc: 'Apache combined access log file, `-` for stdout',
  }),
  auditLog: option({
    flag: 'audit-log',
    arg: 'file',
    kind: { type: 'text' },
    description:
      'write one JSON line per change and refused change (who, from where, what, outcome) to file, or - for standard error; reopened on SIGHUP',
    doc: 'audit trail file (JSON lines), `-` for stderr',
  }),
  debug: option({
    flag: 'debug',
    kind: { type: 'switch' },
    description: 'log at debug level',
    doc: 'debug-level logs',
  }),
  groupAccessibleRepos: option({
    flag: 'group-accessible-repos',
    kind: { type: 'switch' },
    description:
      'let the file group read and write repositories (0770/0660, whatever the umask: the group bits are cleared from the umask of the whole process, so the access log and unix sockets are group-accessible too)',
    doc: '0660 files, 0770 folders, whatever the umask',
  }),
  maxRepoDepth: option({
    flag: 'max-repo-depth',
    arg: 'n',
    kind: { type: 'integer', min: 1, max: 64 },
    default: 8,
    description: 'how many path components a repository path may have',
    doc: 'path components a repository path may have',
  }),
  shutdownTimeout: option({
    flag: 'shutdown-timeout',
    arg: 'seconds',
    kind: { type: 'integer', min: 1, max: 3600 },
    default: 30,
    description: 'on SIGTERM/SIGINT, how long in-flight requests may take to finish',
    doc: 'grace period in seconds for in-flight requests on SIGTERM/SIGINT',
  }),
  workers: option({
    flag: 'workers',
    arg: 'n',
    kind: { type: 'integer', min: 1, max: 256 },
    default: 1,
    description:
      'server processes sharing the listeners and the data folder; above 1 a primary process supervises them and, without --state, holds the quotas, login throttle and rate limits for all of them',
    doc: 'server processes sharing the listeners (quotas, throttle and rate limits stay exact across them); 1: one process',
  }),
  maxConnectionsPerAddress: option({
    flag: 'max-connections-per-address',
    arg: 'n',
    kind: { type: 'integer', min: 1, max: 100_000 },
    default: defaultHardeningLimits.maxConnectionsPerAddress,
    description: 'open TCP connections one client address may hold (unix sockets are not counted)',
    doc: 'open TCP connections one client address may hold; unix-socket connections are not counted',
  }),
  uploadIdleTimeout: option({
    flag: 'upload-idle-timeout',
    arg: 'seconds',
    kind: { type: 'integer', min: 1, max: 3600 },
    default: defaultHardeningLimits.bodyIdleTimeoutMs / 1000,
    description:
      'cut off an upload from which no byte arrived for this long (time a bandwidth limit holds it back does not count)',
    doc: 'an upload body from which no byte arrived for this long is cut off (not counting time the server held it back)',
  }),
};

type Table = typeof options;
export type OptionName = keyof Table;
type ValueMap = { [N in OptionName]: KindValue<Table[N]['kind']> };
/** The value option N holds once set. */
export type OptionValue<N extends OptionName> = ValueMap[N];
/** Options set by one source (flags, environment or file); unset ones are absent. */
export type OptionLayer = { -readonly [N in OptionName]?: ValueMap[N] };
/** Every option after the merge: undefined only where the table has no default. */
export type OptionValues = {
  readonly [N in OptionName]: Table[N] extends { readonly kind: { readonly type: 'switch' } }
    ? boolean
    : Table[N] extends OptionDefinition<OptionKind, undefined>
      ? OptionValue<N> | undefined
      : OptionValue<N>;
};

/** The option names in table order. */
export const optionNames = Object.keys(options) as OptionName[];

/** A combination or value of options that cannot work; the command exits with the usage code. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The option's flag, e.g. `--max-size`. */
export function flagName(name: OptionName): string {
  return `--${options[name].flag}`;
}

/** The environment variable that sets an option: RATCHET_ and the flag's name in capitals. */
export function envName(name: OptionName): string {
  return `RATCHET_${options[name].flag.replace(/-/g, '_').toUpperCase()}`;
}

/** The option's key in the configuration file, or undefined for command-line-only options. */
export function fileKey(name: OptionName): string | undefined {
  const definition: OptionDefinition = options[name];
  return definition.noFileKey ? undefined : definition.flag;
}

/** The options that have a key in the configuration file, in table order. */
export function fileOptionNames(): OptionName[] {
  return optionNames.filter((name) => fileKey(name) !== undefined);
}

const booleanWords = new Map([
  ...['true', '1', 'yes', 'on'].map((word) => [word, true] as const),
  ...['false', '0', 'no', 'off'].map((word) => [word, false] as const),
]);

/** The kind's allowed choices as a phrase: `a or b`, `a, b or c`. */
function choicePhrase(values: readonly string[]): string {
  return values.length === 1 ? (values[0] ?? '') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

/**
 * Parses the text of a flag argument or environment variable into the option's value; `label`
 * names the source in the error, `previous` is what earlier repeats of the flag gave.
 * Throws an Error with a message for the operator.
 */
export function parseOptionText<N extends OptionName>(
  name: N,
  text: string,
  label: string,
  previous?: OptionValue<N>,
): OptionValue<N> {
  // The table's types guarantee each branch returns the kind's value type; TypeScript cannot
  // follow the kind of a generic N, hence the one cast.
  return parseKindText(options[name].kind, text, label, previous) as OptionValue<N>;
}

function parseKindText(kind: OptionKind, text: string, label: string, previous: unknown): unknown {
  switch (kind.type) {
    case 'switch': {
      const value = booleanWords.get(text.toLowerCase());
      if (value === undefined)
        throw new Error(`${label} must be true or false (or 1/0, yes/no, on/off), not "${text}"`);
      return value;
    }
    case 'text':
      if (text === '') throw new Error(`${label} must not be empty`);
      return text;
    case 'integer': {
      const value = Number(text);
      if (!/^\d+$/.test(text) || value < kind.min || value > kind.max)
        throw new Error(`${label} must be a whole number from ${kind.min} to ${kind.max}`);
      return value;
    }
    case 'size':
      try {
        return parseSize(text);
      } catch (err) {
        throw new Error(`${label}: ${(err as Error).message}`, { cause: err });
      }
    case 'duration':
      try {
        return parseDuration(text);
      } catch (err) {
        throw new Error(`${label}: ${(err as Error).message}`, { cause: err });
      }
    case 'choice':
      if (!kind.values.includes(text)) throw new Error(`${label} must be ${choicePhrase(kind.values)}`);
      return text;
    case 'addresses':
      parseListenAddress(text);
      return [...(Array.isArray(previous) ? (previous as string[]) : []), text];
    case 'peers': {
      const entries = text.split(',').map((entry) => entry.trim());
      try {
        parseTrustedPeers(entries);
      } catch (err) {
        throw new Error(`${label}: ${(err as Error).message}`, { cause: err });
      }
      return [...(Array.isArray(previous) ? (previous as string[]) : []), ...entries];
    }
  }
}

/**
 * The options set by RATCHET_* variables. An empty variable counts as unset; any other value
 * that does not parse (a switch that is not true/false/1/0/yes/no/on/off) is a UsageError naming it.
 */
export function readEnvironment(env: NodeJS.ProcessEnv): OptionLayer {
  const layer: OptionLayer = {};
  for (const name of optionNames) setFromEnvironment(layer, name, env[envName(name)]);
  return layer;
}

function setFromEnvironment<N extends OptionName>(
  layer: OptionLayer,
  name: N,
  text: string | undefined,
): void {
  if (text === undefined || text === '') return;
  try {
    layer[name] = parseOptionText(name, text, envName(name));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The options of the layer for which `keep` says yes. */
export function pickOptions(layer: OptionLayer, keep: (name: OptionName) => boolean): OptionLayer {
  const picked: OptionLayer = {};
  for (const name of optionNames) if (keep(name)) copyOption(picked, layer, name);
  return picked;
}

function copyOption<N extends OptionName>(to: OptionLayer, from: OptionLayer, name: N): void {
  const value = from[name];
  if (value !== undefined) to[name] = value;
}

/** The merged options, and which of them some source set (rather than the table's default). */
export interface MergedOptions {
  readonly values: OptionValues;
  readonly explicit: ReadonlySet<OptionName>;
}

/** Merges the layers over the table's defaults; later layers win (file, environment, flags). */
export function mergeOptions(...layers: readonly OptionLayer[]): MergedOptions {
  const merged: OptionLayer = {};
  const explicit = new Set<OptionName>();
  for (const name of optionNames) mergeOne(merged, explicit, name, layers);
  // Every option is now either set or at its default, and switches default to false; the
  // mapped types cannot see that, hence the one cast.
  return { values: merged as OptionValues, explicit };
}

function mergeOne<N extends OptionName>(
  merged: OptionLayer,
  explicit: Set<OptionName>,
  name: N,
  layers: readonly OptionLayer[],
): void {
  const definition: OptionDefinition = options[name];
  let value = layers.findLast((layer) => layer[name] !== undefined)?.[name];
  if (value !== undefined) explicit.add(name);
  value ??= (definition.default ?? (definition.kind.type === 'switch' ? false : undefined)) as
    OptionValue<N> | undefined;
  merged[name] = value;
}

/** How docs and --help show the option's default; undefined when it has none (or an empty list). */
export function defaultText(name: OptionName): string | undefined {
  const definition: OptionDefinition = options[name];
  if (definition.defaultText !== undefined) return definition.defaultText;
  if (definition.kind.type === 'switch') return 'false';
  const value = definition.default;
  if (typeof value === 'object') return value.length === 0 ? undefined : value.join(', ');
  return value === undefined ? undefined : String(value);
}

/** The value type as the docs show it, e.g. `integer 1-64`. */
export function typeText(name: OptionName): string {
  const kind: OptionKind = options[name].kind;
  switch (kind.type) {
    case 'switch':
      return 'boolean';
    case 'text':
      return 'string';
    case 'integer':
      return `integer ${kind.min}-${kind.max}`;
    case 'size':
      return 'size';
    case 'duration':
      return 'duration';
    case 'choice':
      return choicePhrase(kind.values.map((value) => `\`${value}\``));
    case 'addresses':
      return 'list of addresses';
    case 'peers':
      return 'list of networks';
  }
}
