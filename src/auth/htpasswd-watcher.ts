/**
 * Keeps the users in step with the htpasswd file: reloads when the file changes, including when
 * it is replaced by a rename (as htpasswd, editors and `ratchet user` do), and on demand (SIGHUP).
 *
 * `fs.watch(file)` follows the inode and goes quiet after a rename-replace, so the folder is
 * watched instead, and a cheap stat poll backs it up (network file systems, a symlinked file,
 * a folder created later). A file that cannot be read or parsed, or whose user lines yield no
 * usable user, keeps the previous users; a missing file means no users.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ChangeWatcher, statSignature } from '../util/change-watcher.ts';
import { parseHtpasswd, unusableFileError } from './htpasswd.ts';
import type { HtpasswdWarning, ParsedHtpasswd } from './htpasswd.ts';
import { errnoCode, errorMessage } from '../errors.ts';

export type ReloadOutcome =
  | { readonly status: 'loaded'; readonly users: number; readonly warnings: readonly HtpasswdWarning[] }
  | { readonly status: 'unchanged'; readonly users: number }
  | { readonly status: 'missing' }
  | { readonly status: 'failed'; readonly error: string };

export interface HtpasswdWatcherOptions {
  readonly file: string;
  readonly logger: Logger;
  /** Receives the new users after every successful load (an empty map when the file is missing). */
  readonly onUsers: (users: ReadonlyMap<string, string>) => void;
  /** How often the file is stat'ed for changes, in ms (default 5000; 0 turns polling off). */
  readonly pollIntervalMs?: number;
  /** Watch the file's folder for immediate reloads (default true). */
  readonly watch?: boolean;
  /** Wait this long after a change event before reading, to let a writer finish (default 100 ms). */
  readonly debounceMs?: number;
}

/** Files larger than this are refused: no htpasswd file is that big, and it would all be read. */
export const maxHtpasswdBytes = 16 * 1024 * 1024;

const missing = 'missing';

/** Loads an htpasswd file and reloads it on change or request. */
export class HtpasswdWatcher {
  readonly #options: HtpasswdWatcherOptions;
  readonly #file: string;
  readonly #logger: Logger;
  readonly #changes: ChangeWatcher<ReloadOutcome>;
  /** Digest of the content last applied ('missing' when the file was absent), undefined at first. */
  #applied: string | undefined;
  #users = 0;

  private constructor(options: HtpasswdWatcherOptions) {
    this.#options = options;
    this.#file = path.resolve(options.file);
    this.#logger = options.logger.child({ htpasswd: this.#file });
    this.#changes = new ChangeWatcher({
      files: [this.#file],
      reload: () => this.#load(),
      debounceMs: options.debounceMs ?? 100,
      pollIntervalMs: options.pollIntervalMs,
      watch: options.watch,
      // The mode too: a chmod is worth a look (the world-readable warning).
      signature: (info) => `${statSignature(info)}:${info.mode}`,
      onWatchError: (err, _folder, lost) =>
        this.#logger.debug(
          { err },
          lost
            ? 'watching the htpasswd folder failed; polling continues'
            : 'cannot watch the htpasswd folder; polling only',
        ),
      onReloadError: (err) => this.#logger.error({ err }, 'reloading the htpasswd file failed'),
    });
  }

  /** Loads the file and starts watching it; throws when the file exists but is unusable. */
  static async start(options: HtpasswdWatcherOptions): Promise<HtpasswdWatcher> {
    const watcher = new HtpasswdWatcher(options);
    // Stat before reading: a change in between then shows up as a new signature at the next poll.
    await watcher.#changes.snapshot();
    const outcome = await watcher.reload();
    if (outcome.status === 'failed') {
      watcher.close();
      throw new Error(`cannot load the htpasswd file ${watcher.#file}: ${outcome.error}`);
    }
    watcher.#changes.start();
    return watcher;
  }

  /** Reads the file again now; concurrent calls share one reload that starts after the call. */
  reload(): Promise<ReloadOutcome> {
    return this.#changes.reload();
  }

  /** Stops watching. */
  close(): void {
    this.#changes.close();
  }

  async #load(): Promise<ReloadOutcome> {
    let bytes: Buffer;
    let mode: number;
    try {
      const info = await stat(this.#file);
      if (!info.isFile()) return this.#failed(new Error('not a regular file'));
      if (info.size > maxHtpasswdBytes)
        return this.#failed(new Error(`larger than ${maxHtpasswdBytes} bytes`));
      mode = info.mode;
      bytes = await readFile(this.#file);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return this.#missing();
      return this.#failed(err);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === this.#applied) return { status: 'unchanged', users: this.#users };
    let parsed: ParsedHtpasswd;
    try {
      parsed = parseHtpasswd(bytes);
    } catch (err) {
      return this.#failed(err);
    }
    const unusable = unusableFileError(parsed, this.#file);
    if (unusable) return this.#failed(unusable);
    // Password hashes readable by everyone invite offline guessing.
    if ((mode & 0o004) !== 0)
      this.#logger.warn(`${this.#file} is readable by every local user; chmod 600 it`);
    for (const warning of parsed.warnings)
      this.#logger.warn({ line: warning.line }, `${this.#file} line ${warning.line}: ${warning.message}`);
    this.#options.onUsers(parsed.users);
    this.#applied = digest;
    this.#users = parsed.users.size;
    this.#logger.info({ users: parsed.users.size, warnings: parsed.warnings.length }, 'htpasswd file loaded');
    return { status: 'loaded', users: parsed.users.size, warnings: parsed.warnings };
  }

  #missing(): ReloadOutcome {
    if (this.#applied !== missing) {
      this.#options.onUsers(new Map());
      this.#applied = missing;
      this.#users = 0;
      this.#logger.warn(`the htpasswd file ${this.#file} does not exist: no user can log in`);
    }
    return { status: 'missing' };
  }

  #failed(err: unknown): ReloadOutcome {
    const error = errorMessage(err);
    const keeping = this.#applied === undefined ? '' : `; keeping the previous ${this.#users} users`;
    this.#logger.error({ error }, `the htpasswd file ${this.#file} could not be loaded${keeping}`);
    return { status: 'failed', error };
  }
}
