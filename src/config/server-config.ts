/**
 * The validated configuration the server runs with, built from the parsed flags (which already
 * carry environment values and their sources) and the optional configuration file.
 */
import path from 'node:path';
import type { Grant } from '../access/grants.ts';
import { defaultGrants } from '../access/grants.ts';
import type { Role } from '../access/policy.ts';
import type { ConfigFile } from './config-file.ts';
import { parseListenAddress } from './listen-address.ts';
import type { ListenAddress } from './listen-address.ts';
import { optionSpecs } from './options.ts';
import type { QuotaLimits } from '../quota/quota-manager.ts';
import type { LimitRule } from '../limits/user-limits.ts';

export interface ListenerConfig {
  readonly address: ListenAddress;
  /** The most any request on this listener may do, whatever the user's grants. */
  readonly maxRole: Role;
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

export interface ServerConfig {
  readonly path: string;
  readonly listeners: readonly ListenerConfig[];
  readonly appendOnly: boolean;
  readonly noAuth: boolean;
  readonly htpasswdFile: string;
  readonly privateRepos: boolean;
  readonly proxyAuthUsername: string | undefined;
  readonly grants: readonly Grant[];
  readonly verifyUpload: boolean;
  /** Whether the read paths' filesystem calls may run on the event loop (auto: unless remote). */
  readonly syncFsReads: 'auto' | 'on' | 'off';
  readonly log: string | undefined;
  readonly debug: boolean;
  readonly groupAccessibleRepos: boolean;
  readonly maxRepoDepth: number;
  readonly shutdownTimeout: number;
  readonly configFile: string | undefined;
  /** HTTPS on every TCP listener; absent for plain HTTP. */
  readonly tls?: TlsConfig;
  readonly quotas: QuotaLimits;
  readonly limits: readonly LimitRule[];
  readonly prometheus: boolean;
  readonly prometheusNoAuth: boolean;
}

/** A combination of options that cannot work together; the command exits with the usage code. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const defaultListen = '127.0.0.1:8000';

/** Where each parsed value came from, as commander reports it. */
export type ValueSource = (key: string) => string | undefined;

/** Merges defaults, the configuration file, environment and flags into a ServerConfig. */
export function buildServerConfig(
  values: Record<string, unknown>,
  source: ValueSource,
  file: ConfigFile | undefined,
): ServerConfig {
  const merged: Record<string, unknown> = {};
  const explicit = new Set<string>();
  for (const spec of optionSpecs) {
    const from = source(spec.key);
    const fileValue =
      spec.fileKey === undefined ? undefined : (file as Record<string, unknown> | undefined)?.[spec.fileKey];
    if (from === 'cli' || from === 'env' || fileValue !== undefined) explicit.add(spec.key);
    if (from === 'cli' || from === 'env' || fileValue === undefined) {
      merged[spec.key] = values[spec.key];
    } else {
      // Negated flags (--no-auth) are stored inverted; the file says no-auth: true.
      merged[spec.key] = spec.flag.startsWith('--no-') ? !fileValue : fileValue;
    }
  }
  const str = (key: string): string | undefined =>
    typeof merged[key] === 'string' ? merged[key] : undefined;
  const num = (key: string, fallback: number): number =>
    typeof merged[key] === 'number' ? merged[key] : fallback;
  const list = (key: string): string[] => (Array.isArray(merged[key]) ? (merged[key] as string[]) : []);

  const dataPath = str('path') ?? './data';
  const appendOnly = merged.appendOnly === true;
  const privateRepos = merged.privateRepos === true;
  const flagListeners = source('listen') === 'cli' || source('adminListen') === 'cli';
  const listeners: ListenerConfig[] =
    file?.listeners && !flagListeners
      ? file.listeners.map((l) => ({ address: parseListenAddress(l.address), maxRole: l['max-role'] }))
      : [
          ...(list('listen').length > 0 || list('adminListen').length > 0
            ? list('listen')
            : [defaultListen]
          ).map((text) => ({
            address: parseListenAddress(text),
            maxRole: appendOnly ? ('append-only' as const) : ('admin' as const),
          })),
          ...list('adminListen').map((text) => ({
            address: parseListenAddress(text),
            maxRole: 'admin' as const,
          })),
        ];

  return {
    path: dataPath,
    listeners,
    appendOnly,
    noAuth: merged.auth === false,
    htpasswdFile: str('htpasswdFile') ?? path.join(dataPath, '.htpasswd'),
    privateRepos,
    proxyAuthUsername: str('proxyAuthUsername'),
    grants: file?.access ?? defaultGrants(privateRepos),
    verifyUpload: merged.verifyUpload !== false,
    syncFsReads: (str('syncFsReads') ?? 'auto') as ServerConfig['syncFsReads'],
    log: str('log'),
    debug: merged.debug === true,
    groupAccessibleRepos: merged.groupAccessibleRepos === true,
    maxRepoDepth: num('maxRepoDepth', 8),
    shutdownTimeout: num('shutdownTimeout', 30),
    configFile: str('config'),
    tls: tlsConfig(merged, explicit, dataPath),
    quotas: {
      maxTotalBytes: typeof merged.maxSize === 'number' ? merged.maxSize : undefined,
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
    prometheus: merged.prometheus === true,
    prometheusNoAuth: merged.prometheusNoAuth === true,
  };
}

/** The TLS settings, or undefined without --tls; TLS-only options without --tls are refused. */
function tlsConfig(
  merged: Record<string, unknown>,
  explicit: ReadonlySet<string>,
  dataPath: string,
): TlsConfig | undefined {
  const text = (key: string): string | undefined =>
    typeof merged[key] === 'string' ? merged[key] : undefined;
  if (merged.tls !== true) {
    const tlsOnly = {
      tlsCert: '--tls-cert',
      tlsKey: '--tls-key',
      tlsMinVer: '--tls-min-ver',
      tlsClientCa: '--tls-client-ca',
    };
    const stray = Object.entries(tlsOnly).filter(([key]) => explicit.has(key));
    if (stray.length > 0) {
      throw new UsageError(`${stray.map(([, flag]) => flag).join(', ')} need --tls (or tls: true)`);
    }
    return undefined;
  }
  return {
    cert: text('tlsCert') ?? path.join(dataPath, 'public_key'),
    key: text('tlsKey') ?? path.join(dataPath, 'private_key'),
    minVersion: text('tlsMinVer') === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    clientCa: text('tlsClientCa'),
  };
}
