/**
 * A cache of what each object folder holds (name → size and mtime), so listings and usage sums
 * do not stat every file. A folder's cached entries are trusted while the folder's mtime is
 * unchanged: adding, removing or renaming an entry, by this server or anyone else, changes it.
 * Object files are immutable (their name is their hash), so entries that are still listed keep
 * their cached size and only new names are stat'ed when a folder is read again.
 *
 * A folder whose mtime is very recent when it is read might change again within the same clock
 * tick without its mtime moving, so such a snapshot is re-read next time ("racy" entries, as git
 * handles its index).
 */
import type { Dirent, Stats } from 'node:fs';
import { statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isObjectName } from '../../protocol/route.ts';
import { statPath } from './fast-fs.ts';
import type { SyncGuard } from './fast-fs.ts';
import { isMissing } from './fs-errors.ts';

export interface IndexedEntry {
  readonly size: number;
  readonly mtimeMs: number;
}

export interface FolderSnapshot {
  /** mtime of the folder when it was read; -1 forces a re-read. */
  mtimeMs: number;
  readonly entries: Map<string, IndexedEntry>;
}

// A folder modified less than this long before it was read is read again next time.
const racyWindowMs = 2000;
// Thread-pool stats of new entries run this many at a time.
const statConcurrency = 64;
// Synchronous stats of new entries run this many between turns of the event loop (~1 ms).
const syncStatSlice = 256;

export class DirectoryIndex {
  private readonly folders = new Map<string, FolderSnapshot>();
  private readonly guard: SyncGuard | undefined;

  /** With a guard, folders and new entries are stat'ed synchronously while it allows. */
  constructor(guard?: SyncGuard) {
    this.guard = guard;
  }

  /** The valid objects in a folder, read from disk only when the folder changed. */
  async entries(dir: string): Promise<ReadonlyMap<string, IndexedEntry>> {
    let info;
    try {
      info = await this.statOf(dir);
    } catch (err) {
      if (isMissing(err)) {
        this.folders.delete(dir);
        return new Map();
      }
      throw err;
    }
    const cached = this.folders.get(dir);
    if (cached !== undefined && cached.mtimeMs === info.mtimeMs) return cached.entries;
    const entries = await readFolder(dir, cached?.entries, this.guard);
    const racy = Date.now() - info.mtimeMs < racyWindowMs;
    this.folders.set(dir, { mtimeMs: racy ? -1 : info.mtimeMs, entries });
    return entries;
  }

  /** Records an object this server just stored; the folder is re-validated on next use. */
  noteAdded(dir: string, name: string, entry: IndexedEntry): void {
    const cached = this.folders.get(dir);
    if (cached === undefined) return;
    cached.entries.set(name, entry);
    cached.mtimeMs = -1;
  }

  /** Records an object this server just removed. */
  noteRemoved(dir: string, name: string): void {
    const cached = this.folders.get(dir);
    if (cached === undefined) return;
    cached.entries.delete(name);
    cached.mtimeMs = -1;
  }

  /** Every cached folder, for persisting the index across restarts. */
  snapshot(): IterableIterator<[string, FolderSnapshot]> {
    return this.folders.entries();
  }

  /** Seeds a folder from a persisted snapshot; it is trusted only while its mtime matches. */
  restore(dir: string, snapshot: FolderSnapshot): void {
    if (!this.folders.has(dir)) this.folders.set(dir, snapshot);
  }

  private async statOf(file: string): Promise<Stats> {
    const started = this.guard?.begin();
    if (started === undefined) return statPath(file);
    const info = statSync(file);
    this.guard?.end(started);
    return info;
  }
}

async function readFolder(
  dir: string,
  previous: ReadonlyMap<string, IndexedEntry> | undefined,
  guard: SyncGuard | undefined,
): Promise<Map<string, IndexedEntry>> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return new Map();
    throw err;
  }
  const entries = new Map<string, IndexedEntry>();
  const unknown: string[] = [];
  for (const dirent of dirents) {
    if (dirent.isDirectory() || !isObjectName(dirent.name)) continue;
    const known = previous?.get(dirent.name);
    if (known !== undefined) entries.set(dirent.name, known);
    else unknown.push(dirent.name);
  }
  const record = (name: string, info: Stats | undefined): void => {
    if (info?.isFile()) entries.set(name, { size: info.size, mtimeMs: info.mtimeMs });
  };
  let i = 0;
  while (i < unknown.length) {
    const started = guard?.begin();
    if (started !== undefined) {
      // Synchronous stats of cached inodes: a few µs each instead of a thread-pool round trip.
      const end = Math.min(unknown.length, i + syncStatSlice);
      const calls = end - i;
      for (; i < end; i++) {
        const name = unknown[i]!;
        let info: Stats | undefined;
        try {
          info = statSync(dir + path.sep + name, { throwIfNoEntry: false });
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
        record(name, info);
      }
      guard?.end(started, calls);
      if (i < unknown.length) await nextTurn();
      continue;
    }
    const batch = unknown.slice(i, i + statConcurrency);
    i += batch.length;
    const infos = await Promise.all(
      batch.map((name) =>
        statPath(path.join(dir, name)).catch((err: unknown) => {
          if (isMissing(err)) return undefined;
          throw err;
        }),
      ),
    );
    batch.forEach((name, j) => record(name, infos[j]));
  }
  return entries;
}
