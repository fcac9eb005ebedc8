/** Reads a repository's usage from Storage's own listings: the ledger's seed and reconcile. */
import { objectTypes } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { Storage } from '../storage/storage.ts';
import type { RepoUsage } from './usage-store.ts';

/** Bytes, objects per type, newest snapshot time and trash of a repository; NOT_FOUND when it is gone. */
export async function measureRepo(
  storage: Storage,
  repo: RepoPath,
  signal?: AbortSignal,
): Promise<RepoUsage> {
  let bytes = (await storage.stat({ repo, type: 'config' }, signal)) ?? 0;
  const objects = { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 };
  let newestSnapshotMs: number | undefined;
  for (const type of objectTypes) {
    // Not cached: counting must not keep every repository's listing in memory (a 100k-object
    // repository is 11 MiB of index and makes every full garbage collection slower).
    for await (const entry of storage.list(repo, type, signal, { cache: false })) {
      bytes += entry.size;
      objects[type]++;
      const at = entry.modifiedMs;
      if (
        type === 'snapshots' &&
        at !== undefined &&
        (newestSnapshotMs === undefined || at > newestSnapshotMs)
      )
        newestSnapshotMs = at;
    }
  }
  let trashBytes = 0;
  let trashObjects = 0;
  for await (const entry of storage.listTrash(repo, signal)) {
    trashBytes += entry.size;
    trashObjects++;
  }
  return { bytes, objects, newestSnapshotMs, trashBytes, trashObjects };
}
