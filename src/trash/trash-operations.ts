/**
 * The trash's operations over any Storage (--delete-grace): gather, restore and purge entries.
 * The `ratchet trash` commands and the server (its endpoints, background purge and early purge)
 * run the same loops, so a restore or purge means the same thing wherever it is asked for.
 */
import type { RepoPath } from '../domain/repo-path.ts';
import { errorMessage } from '../errors.ts';
import type { RestoreOutcome, Storage, TrashEntry } from '../storage/storage.ts';

/** The repositories to work on: these, or every repository the storage lists. */
export type RepoSelection = Iterable<RepoPath> | AsyncIterable<RepoPath> | undefined;

/**
 * Every trash entry of the repositories, oldest deletion first. With `onError`, a repository
 * whose trash cannot be read is reported and left out; without, the failure is thrown.
 */
export async function gatherTrash(
  storage: Storage,
  repos: RepoSelection,
  signal?: AbortSignal,
  onError?: (repo: RepoPath, err: unknown) => void,
): Promise<TrashEntry[]> {
  const entries: TrashEntry[] = [];
  for await (const repo of repos ?? storage.listRepos(signal)) {
    const found: TrashEntry[] = [];
    try {
      for await (const entry of storage.listTrash(repo, signal)) found.push(entry);
    } catch (err) {
      if (onError === undefined || signal?.aborted === true) throw err;
      onError(repo, err);
      continue;
    }
    entries.push(...found);
  }
  return entries.sort((a, b) => a.deletedMs - b.deletedMs);
}

/** What a restore did with one entry: an outcome, or why it failed. */
export interface RestoreReport {
  readonly entry: TrashEntry;
  readonly outcome: RestoreOutcome | 'failed';
  readonly error?: string;
}

/** True when the object is back under its name (`gone`, purged meanwhile, is not). */
export function restoreSucceeded(report: RestoreReport): boolean {
  return report.outcome === 'restored' || report.outcome === 'already-there';
}

/**
 * Puts the entries back, newest deletion first (an older copy of the same name then finds it
 * there), going on past an entry that fails: one object that cannot be restored must not leave
 * the others to the purge.
 */
export async function restoreTrash(
  storage: Storage,
  entries: readonly TrashEntry[],
  onReport: (report: RestoreReport) => void,
  signal?: AbortSignal,
): Promise<RestoreReport[]> {
  const reports: RestoreReport[] = [];
  for (const entry of [...entries].sort((a, b) => b.deletedMs - a.deletedMs)) {
    signal?.throwIfAborted();
    let report: RestoreReport;
    try {
      report = { entry, outcome: await storage.restoreFromTrash(entry, signal) };
    } catch (err) {
      if (signal?.aborted === true) throw err;
      report = { entry, outcome: 'failed', error: errorMessage(err) };
    }
    reports.push(report);
    onReport(report);
  }
  return reports;
}

export interface PurgeOptions {
  /** Only these repositories (default: every repository the storage lists). */
  readonly repos?: RepoSelection;
  /** Hears of each entry removed, with the bytes freed. */
  readonly onPurged?: (entry: TrashEntry, bytes: number) => void;
  readonly signal?: AbortSignal;
}

/** Removes every trash entry deleted before `before` (ms); returns the entries and bytes freed. */
export async function purgeTrash(
  storage: Storage,
  before: number,
  options: PurgeOptions = {},
): Promise<{ objects: number; bytes: number }> {
  const { signal } = options;
  let objects = 0;
  let bytes = 0;
  for await (const repo of options.repos ?? storage.listRepos(signal)) {
    for await (const entry of storage.listTrash(repo, signal)) {
      if (entry.deletedMs >= before) continue;
      const freed = await purgeEntry(storage, entry, signal);
      if (freed === undefined) continue;
      bytes += freed;
      objects++;
      options.onPurged?.(entry, freed);
    }
  }
  return { objects, bytes };
}

/** Removes one entry; the bytes freed, or undefined when it was gone already (a restore, a purge). */
export async function purgeEntry(
  storage: Storage,
  entry: TrashEntry,
  signal?: AbortSignal,
): Promise<number | undefined> {
  const freed = await storage.purgeFromTrash(entry, signal);
  return freed === 0 && entry.size > 0 ? undefined : freed;
}
