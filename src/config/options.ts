/**
 * The server's options: one table from which the command line, its --help, the RATCHET_*
 * environment variables and the configuration file's keys all come. Flag names are
 * rest-server's, so switching servers is a one-word change.
 * Precedence: defaults < configuration file < environment < flags.
 */
import { parseListenAddress } from './listen-address.ts';
import { parseSize } from './sizes.ts';

type Parser = (text: string, previous: unknown) => unknown;

export interface OptionSpec {
  /** Property name in the parsed values, e.g. `appendOnly` (`auth` for `--no-auth`). */
  readonly key: string;
  /** The flag as commander takes it, e.g. `--path <dir>` or `--append-only`. */
  readonly flag: string;
  readonly description: string;
  readonly defaultValue?: unknown;
  readonly parse?: Parser;
  /** Key in the configuration file; flags without one are command-line only. */
  readonly fileKey?: string;
}

function positiveInteger(name: string, max: number): Parser {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < 1 || value > max)
      throw new Error(`${name} must be a whole number from 1 to ${max}`);
    return value;
  };
}

function oneOf(flag: string, values: readonly string[]): Parser {
  const allowed =
    values.length === 2 ? values.join(' or ') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
  return (text) => {
    if (!values.includes(text)) throw new Error(`${flag} must be ${allowed}`);
    return text;
  };
}

function listenAddresses(text: string, previous: unknown): string[] {
  parseListenAddress(text);
  return [...(Array.isArray(previous) ? (previous as string[]) : []), text];
}

/** Every option, in the order --help shows them. */
export const optionSpecs: readonly OptionSpec[] = [
  {
    key: 'config',
    flag: '--config <file>',
    description: 'YAML configuration file (see docs/configuration.md)',
  },
  {
    key: 'path',
    flag: '--path <dir>',
    description: 'data directory',
    defaultValue: './data',
    fileKey: 'path',
  },
  {
    key: 'listen',
    flag: '--listen <address>',
    description:
      'listen address: host:port, :port (all interfaces) or unix:/path; repeatable (default: "127.0.0.1:8000")',
    parse: listenAddresses,
    fileKey: 'listen',
  },
  {
    key: 'adminListen',
    flag: '--admin-listen <address>',
    description: 'an extra listener that --append-only does not cap, for admins who prune; repeatable',
    parse: listenAddresses,
    fileKey: 'admin-listen',
  },
  {
    key: 'tls',
    flag: '--tls',
    description: 'serve HTTPS (HTTP/2 with HTTP/1.1 fallback) on the TCP listeners; unix sockets stay plain',
    fileKey: 'tls',
  },
  {
    key: 'tlsCert',
    flag: '--tls-cert <file>',
    description: 'TLS certificate (chain) in PEM, reloaded when it changes (default: <path>/public_key)',
    fileKey: 'tls-cert',
  },
  {
    key: 'tlsKey',
    flag: '--tls-key <file>',
    description: 'TLS private key in PEM, unencrypted (default: <path>/private_key)',
    fileKey: 'tls-key',
  },
  {
    key: 'tlsMinVer',
    flag: '--tls-min-ver <version>',
    description: 'oldest TLS version accepted: 1.2 or 1.3',
    defaultValue: '1.2',
    parse: oneOf('--tls-min-ver', ['1.2', '1.3']),
    fileKey: 'tls-min-ver',
  },
  {
    key: 'tlsClientCa',
    flag: '--tls-client-ca <file>',
    description:
      'CA (PEM) for client certificates: a certificate it signed logs in as its common name, without a password',
    fileKey: 'tls-client-ca',
  },
  {
    key: 'appendOnly',
    flag: '--append-only',
    description: 'nobody may delete or overwrite through --listen listeners (lock files aside)',
    fileKey: 'append-only',
  },
  {
    key: 'privateRepos',
    flag: '--private-repos',
    description: 'users reach only repositories below /<username>/',
    fileKey: 'private-repos',
  },
  {
    key: 'htpasswdFile',
    flag: '--htpasswd-file <file>',
    description: 'htpasswd file with the users (default: <path>/.htpasswd)',
    fileKey: 'htpasswd-file',
  },
  {
    key: 'auth',
    flag: '--no-auth',
    description: 'disable authentication (anyone who can connect may use every repository)',
    fileKey: 'no-auth',
  },
  {
    key: 'proxyAuthUsername',
    flag: '--proxy-auth-username <header>',
    description: 'trust this request header, set by a reverse proxy, as the user name',
    fileKey: 'proxy-auth-username',
  },
  {
    key: 'maxSize',
    flag: '--max-size <size>',
    description: 'the most the whole data directory may hold, e.g. 500GiB (507 beyond it)',
    parse: (text) => parseSize(text),
    fileKey: 'max-size',
  },
  {
    key: 'prometheus',
    flag: '--prometheus',
    description: 'serve Prometheus metrics at /metrics (and /.ratchet/metrics)',
    fileKey: 'prometheus',
  },
  {
    key: 'prometheusNoAuth',
    flag: '--prometheus-no-auth',
    description: 'serve the metrics without authentication',
    fileKey: 'prometheus-no-auth',
  },
  {
    key: 'verifyUpload',
    flag: '--no-verify-upload',
    description: 'do not verify that uploads match their SHA-256 name (not recommended)',
    fileKey: 'no-verify-upload',
  },
  {
    key: 'syncFsReads',
    flag: '--sync-fs-reads <mode>',
    description:
      "run the read paths' stat/open/small reads on the event loop: auto (on unless the data is on a network or FUSE filesystem), on, off",
    defaultValue: 'auto',
    parse: oneOf('--sync-fs-reads', ['auto', 'on', 'off']),
    fileKey: 'sync-fs-reads',
  },
  {
    key: 'log',
    flag: '--log <file>',
    description: 'write an Apache combined access log to file, or - for standard output',
    fileKey: 'log',
  },
  { key: 'debug', flag: '--debug', description: 'log at debug level', fileKey: 'debug' },
  {
    key: 'groupAccessibleRepos',
    flag: '--group-accessible-repos',
    description: 'let the file group read and write repositories (0770/0660)',
    fileKey: 'group-accessible-repos',
  },
  {
    key: 'maxRepoDepth',
    flag: '--max-repo-depth <n>',
    description: 'how many path components a repository path may have',
    defaultValue: 8,
    parse: positiveInteger('--max-repo-depth', 64),
    fileKey: 'max-repo-depth',
  },
  {
    key: 'shutdownTimeout',
    flag: '--shutdown-timeout <seconds>',
    description: 'on SIGTERM/SIGINT, how long in-flight requests may take to finish',
    defaultValue: 30,
    parse: positiveInteger('--shutdown-timeout', 3600),
    fileKey: 'shutdown-timeout',
  },
];

/** The environment variable that sets an option: RATCHET_ and the flag's name in capitals. */
export function envName(spec: OptionSpec): string {
  const name = /^--([a-z0-9-]+)/.exec(spec.flag)?.[1] ?? spec.key;
  return `RATCHET_${name.replace(/-/g, '_').toUpperCase()}`;
}
