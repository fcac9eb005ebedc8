/**
 * Scrubbing: every stored object re-read through Storage and its SHA-256 compared with its name
 * (restic names every object but the config by the hash of its content), so that bit rot is
 * found before a restore needs the data. Backend-neutral: it lists and reads like a client.
 *
 * - Order is fixed (repositories, then keys, snapshots, index, data, names sorted), so a pass
 *   can resume after a position. Locks are left out: they come and go within seconds.
 * - Reads are paced by a byte rate; an object removed while the pass runs is skipped.
 * - A mismatch is reported, never repaired here: a verified re-upload of the same name replaces
 *   the damaged copy (the storage's publish rule).
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectType } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoKey } from '../domain/repo-path.ts';
import { RatchetError } from '../errors.ts';
import type { Storage } from '../storage/storage.ts';

/** The types a scrub checks, in the order it checks them. */
export const scrubbedTypes: readonly ObjectType[] = ['keys', 'snapshots', 'index', 'data'];

/** Where a pass stands: the last object checked (resume after it). */
export interface ScrubPosition {
  readonly repo: string;
  readonly type: ObjectType;
  readonly name: string;
}

export interface CheckedObject extends ScrubPosition {
  readonly size: number;
  /** The content's SHA-256; equal to `name` when the object is sound, '' when unreadable. */
  readonly actual: string;
  /** Why the object could not be read (an I/O error is what bit rot often looks like). */
  readonly error?: string;
}

export interface ScrubOptions {
  /** Bytes per second at most (undefined: as fast as storage reads). */
  readonly bytesPerSecond?: number;
  /** Resume after this object (objects up to it, in scrub order, are skipped). */
  readonly after?: ScrubPosition;
  readonly signal?: AbortSignal;
  /** Called after each object, sound or not. */
  readonly onChecked: (object: CheckedObject) => void | Promise<void>;
  /** Called when a repository has been checked to its end, every folder of it listed. */
  readonly onRepoDone?: (repo: string) => void | Promise<void>;
  /** Called when a type of a repository cannot be listed; the scrub goes on with the next. */
  readonly onListError?: (repo: string, type: ObjectType, err: unknown) => void;
}

/** Paces reads so that the bytes read since the start stay within the rate. */
export class BytePacer {
  private readonly bytesPerSecond: number | undefined;
  private readonly started = Date.now();
  private bytes = 0;

  constructor(bytesPerSecond: number | undefined) {
    this.bytesPerSecond = bytesPerSecond;
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    this.bytes += bytes;
    if (this.bytesPerSecond === undefined || this.bytesPerSecond <= 0) return;
    const due = this.started + (this.bytes / this.bytesPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
  }
}

/** The repositories in scrub order. */
export async function reposInOrder(storage: Storage, signal?: AbortSignal): Promise<RepoPath[]> {
  const repos: RepoPath[] = [];
  for await (const repo of storage.listRepos(signal)) repos.push(repo);
  return repos.sort((a, b) => compare(repoKey(a), repoKey(b)));
}

/** Checks the given repositories (in the order given) from `options.after` on. */
export async function scrub(
  storage: Storage,
  repos: readonly RepoPath[],
  options: ScrubOptions,
): Promise<void> {
  const pacer = new BytePacer(options.bytesPerSecond);
  const after = options.after;
  for (const repo of repos) {
    const key = repoKey(repo);
    if (after !== undefined && compare(key, after.repo) < 0) continue;
    let complete = true;
    for (const type of scrubbedTypes) {
      if (after !== undefined && key === after.repo && typeOrder(type) < typeOrder(after.type)) continue;
      const from = after !== undefined && key === after.repo && type === after.type ? after.name : undefined;
      let names: string[];
      try {
        names = await namesOf(storage, repo, type, options.signal);
      } catch (err) {
        if (options.signal?.aborted === true) throw err;
        options.onListError?.(key, type, err);
        complete = false;
        continue;
      }
      for (const name of names) {
        if (from !== undefined && compare(name, from) <= 0) continue;
        options.signal?.throwIfAborted();
        let checked: { size: number; actual: string; error?: string } | undefined;
        try {
          checked = await checkObject(storage, repo, type, name, pacer, options.signal);
        } catch (err) {
          if (options.signal?.aborted === true) throw err;
          // Reported like a corrupt object, and the scrub goes on: one bad sector must not stop it.
          checked = { size: 0, actual: '', error: err instanceof Error ? err.message : String(err) };
        }
        if (checked !== undefined) await options.onChecked({ repo: key, type, name, ...checked });
      }
    }
    // Only a repository checked whole counts as done (its last-pass time).
    if (complete) await options.onRepoDone?.(key);
  }
}

/** The object's names, sorted; none when the repository went away meanwhile. */
async function namesOf(
  storage: Storage,
  repo: RepoPath,
  type: ObjectType,
  signal?: AbortSignal,
): Promise<string[]> {
  const names: string[] = [];
  try {
    // Not cached: a scrub must not fill a listing cache with every repository.
    for await (const entry of storage.list(repo, type, signal, { cache: false })) names.push(entry.name);
  } catch (err) {
    if (err instanceof RatchetError && err.code === 'NOT_FOUND') return [];
    throw err;
  }
  return names.sort(compare);
}

/** Reads and hashes one object; undefined when it was removed before it could be read. */
async function checkObject(
  storage: Storage,
  repo: RepoPath,
  type: ObjectType,
  name: string,
  pacer: BytePacer,
  signal?: AbortSignal,
): Promise<{ size: number; actual: string } | undefined> {
  let read;
  try {
    read = await storage.read({ repo, type, name }, undefined, signal);
  } catch (err) {
    if (err instanceof RatchetError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  }
  const hash = createHash('sha256');
  let size = 0;
  if (read.data !== undefined) {
    hash.update(read.data);
    size = read.data.length;
    await pacer.take(size, signal);
  } else {
    for await (const chunk of read.body) {
      hash.update(chunk);
      size += chunk.length;
      await pacer.take(chunk.length, signal);
    }
  }
  return { size, actual: hash.digest('hex') };
}

function typeOrder(type: ObjectType): number {
  return scrubbedTypes.indexOf(type);
}

/** Plain code-unit order, the same on every machine (no locale). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
