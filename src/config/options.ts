/**
 * The server's options: one table from which the command line (and its --help) is built, with
 * rest-server's flag names so that switching servers is a one-word change.
 */
import { parseListenAddress } from './listen-address.ts';
import type { ListenAddress } from './listen-address.ts';

export interface ServerConfig {
  readonly path: string;
  readonly listen: ListenAddress;
  readonly appendOnly: boolean;
  readonly noAuth: boolean;
  readonly verifyUpload: boolean;
  readonly log: string | undefined;
  readonly debug: boolean;
  readonly groupAccessibleRepos: boolean;
  readonly maxRepoDepth: number;
  readonly shutdownTimeout: number;
}

type Parser = (text: string) => unknown;

export interface OptionSpec {
  /** The flag as commander takes it, e.g. `--path <dir>` or `--append-only`. */
  readonly flag: string;
  readonly description: string;
  readonly defaultValue?: unknown;
  readonly parse?: Parser;
}

function positiveInteger(name: string, max: number): Parser {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < 1 || value > max)
      throw new Error(`${name} must be a whole number from 1 to ${max}`);
    return value;
  };
}

/** Every option, in the order --help shows them. */
export const optionSpecs: readonly OptionSpec[] = [
  { flag: '--path <dir>', description: 'data directory', defaultValue: './data' },
  {
    flag: '--listen <address>',
    description: 'listen address: host:port, :port (all interfaces) or unix:/path/to/socket',
    defaultValue: '127.0.0.1:8000',
    parse: (text) => {
      parseListenAddress(text);
      return text;
    },
  },
  {
    flag: '--append-only',
    description: 'enable append only mode: nobody may delete or overwrite (locks aside)',
  },
  {
    flag: '--no-auth',
    description: 'disable authentication (anyone who can connect may use every repository)',
  },
  {
    flag: '--no-verify-upload',
    description: 'do not verify that uploads match their SHA-256 name (not recommended)',
  },
  {
    flag: '--log <file>',
    description: 'write an Apache combined access log to file, or - for standard output',
  },
  { flag: '--debug', description: 'log at debug level' },
  {
    flag: '--group-accessible-repos',
    description: 'let the file group read and write repositories (0770/0660)',
  },
  {
    flag: '--max-repo-depth <n>',
    description: 'how many path components a repository path may have',
    defaultValue: 8,
    parse: positiveInteger('--max-repo-depth', 64),
  },
  {
    flag: '--shutdown-timeout <seconds>',
    description: 'on SIGTERM/SIGINT, how long in-flight requests may take to finish',
    defaultValue: 30,
    parse: positiveInteger('--shutdown-timeout', 3600),
  },
];

/** Turns the parsed command-line values into a validated configuration. */
export function toServerConfig(values: Record<string, unknown>): ServerConfig {
  const text = (key: string): string | undefined =>
    typeof values[key] === 'string' ? values[key] : undefined;
  return {
    path: text('path') ?? './data',
    listen: parseListenAddress(text('listen') ?? '127.0.0.1:8000'),
    appendOnly: values.appendOnly === true,
    noAuth: values.auth === false,
    verifyUpload: values.verifyUpload !== false,
    log: text('log'),
    debug: values.debug === true,
    groupAccessibleRepos: values.groupAccessibleRepos === true,
    maxRepoDepth: typeof values.maxRepoDepth === 'number' ? values.maxRepoDepth : 8,
    shutdownTimeout: typeof values.shutdownTimeout === 'number' ? values.shutdownTimeout : 30,
  };
}
