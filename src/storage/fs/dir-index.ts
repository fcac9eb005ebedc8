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
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isObjectName } from '../../protocol/route.ts';
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
const statConcurrency = 64;

export class DirectoryIndex {
  private readonly folders = new Map<string, FolderSnapshot>();

  /** The valid objects in a folder, read from disk only when the folder changed. */
  async entries(dir: string): Promise<ReadonlyMap<string, IndexedEntry>> {
    let info;
    try {
      info = await stat(dir);
    } catch (err) {
      if (isMissing(err)) {
        this.folders.delete(dir);
        return new Map();
      }
      throw err;
    }
    const cached = this.folders.get(dir);
    if (cached !== undefined && cached.mtimeMs === info.mtimeMs) return cached.entries;
    const entries = await readFolder(dir, cached?.entries);
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
}

async function readFolder(
  dir: string,
  previous: ReadonlyMap<string, IndexedEntry> | undefined,
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
  for (let i = 0; i < unknown.length; i += statConcurrency) {
    const batch = unknown.slice(i, i + statConcurrency);
    const infos = await Promise.all(
      batch.map((name) =>
        stat(path.join(dir, name)).catch((err: unknown) => {
          if (isMissing(err)) return undefined;
          throw err;
        }),
      ),
    );
    batch.forEach((name, j) => {
      const info = infos[j];
      if (info?.isFile()) entries.set(name, { size: info.size, mtimeMs: info.mtimeMs });
    });
  }
  return entries;
}
