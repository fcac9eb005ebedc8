/**
 * Runs a reload whenever some files change: watches their folders, polls their stat as a
 * fallback, debounces change events and serialises the reloads.
 *
 * `fs.watch(file)` follows the inode and goes quiet after a rename-replace, so the containing
 * folders are watched instead. The stat poll catches what the watch misses (network file
 * systems, symlink swaps, folders that appear later) and retries the watch meanwhile.
 */
import { watch } from 'node:fs';
import type { BigIntStats, FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** How a ChangeWatcher notices changes and what it runs on one. */
export interface ChangeWatcherOptions<T> {
  /** The files to follow (absolute paths). */
  readonly files: readonly string[];
  /** Reads the files again; runs at most once at a time. */
  readonly reload: () => Promise<T>;
  /** Wait this long after a change event before reloading, to let a writer finish. */
  readonly debounceMs: number;
  /** How often the files are stat'ed for changes, in ms (default 5000; 0 turns polling off). */
  readonly pollIntervalMs?: number;
  /** Watch the files' folders for immediate reloads (default true). */
  readonly watch?: boolean;
  /** One file's change detector (default: identity, size and times). */
  readonly signature?: (info: BigIntStats) => string;
  /** A folder could not be watched (`lost`: its watch failed after starting); polling carries on. */
  readonly onWatchError: (err: unknown, folder: string, lost: boolean) => void;
  /** A reload triggered by a change rejected. */
  readonly onReloadError: (err: unknown) => void;
}

/** The default change detector: identity, size and times of a file. */
export function statSignature(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

/** Calls `reload` when the files change (after start()) or on request, one reload at a time. */
export class ChangeWatcher<T> {
  readonly #options: ChangeWatcherOptions<T>;
  readonly #watchers: FSWatcher[] = [];
  #poller: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<T> | undefined;
  #queued: Promise<T> | undefined;
  /** The stat signature last seen by the poller. */
  #signature: string | undefined;
  #closed = false;

  constructor(options: ChangeWatcherOptions<T>) {
    this.#options = options;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Records the files' current state as seen, so that only later changes trigger a reload. */
  async snapshot(): Promise<void> {
    this.#signature = await this.#stat();
  }

  /** Starts watching the folders and polling. */
  start(): void {
    if (this.#options.watch !== false) this.#watchFolders();
    const interval = this.#options.pollIntervalMs ?? 5000;
    if (interval > 0) {
      this.#poller = setInterval(() => void this.#poll(), interval);
      this.#poller.unref();
    }
  }

  /** Reloads now; concurrent calls share one reload that starts after the call. */
  reload(): Promise<T> {
    if (this.#queued) return this.#queued;
    if (!this.#running) return this.#begin();
    this.#queued = this.#running.then(() => {
      this.#queued = undefined;
      return this.#begin();
    });
    return this.#queued;
  }

  /** Stops watching, polling and any pending debounced reload. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.splice(0)) watcher.close();
    clearInterval(this.#poller);
    clearTimeout(this.#debounce);
  }

  #begin(): Promise<T> {
    const running = this.#options.reload().finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  async #stat(): Promise<string> {
    const signature = this.#options.signature ?? statSignature;
    const parts = await Promise.all(
      this.#options.files.map(async (file) => {
        try {
          return signature(await stat(file, { bigint: true }));
        } catch {
          return 'missing';
        }
      }),
    );
    return parts.join('|');
  }

  async #poll(): Promise<void> {
    if (this.#closed) return;
    if (this.#options.watch !== false && this.#watchers.length === 0) this.#watchFolders();
    const signature = await this.#stat();
    if (signature === this.#signature || this.#closed) return;
    this.#signature = signature;
    this.#schedule();
  }

  #watchFolders(): void {
    const byFolder = new Map<string, Set<string>>();
    for (const file of this.#options.files) {
      const folder = path.dirname(file);
      const names = byFolder.get(folder) ?? new Set<string>();
      names.add(path.basename(file));
      byFolder.set(folder, names);
    }
    for (const [folder, names] of byFolder) {
      try {
        const watcher = watch(folder, { persistent: false }, (_event, name) => {
          if (name === null || names.has(name)) this.#schedule();
        });
        watcher.on('error', (err) => {
          this.#options.onWatchError(err, folder, true);
          watcher.close();
          const at = this.#watchers.indexOf(watcher);
          if (at >= 0) this.#watchers.splice(at, 1);
        });
        this.#watchers.push(watcher);
      } catch (err) {
        // A missing folder, or no inotify watches left: the poll still sees changes.
        this.#options.onWatchError(err, folder, false);
      }
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.reload()
        .then(async () => {
          // The reload saw the files as they are now: don't let the next poll repeat it.
          this.#signature = await this.#stat();
        })
        .catch((err: unknown) => this.#options.onReloadError(err));
    }, this.#options.debounceMs);
    this.#debounce.unref();
  }
}
