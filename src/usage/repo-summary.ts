/** What a repository holds, computed from Storage's own listings (no backend-specific walk). */
import type { ObjectType } from '../domain/object-types.ts';
import { objectTypes } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { Storage } from '../storage/storage.ts';

/** Totals of one repository, for quotas and metrics. */
export interface RepoSummary {
  /** Bytes of all objects and the config. */
  readonly bytes: number;
  readonly objects: Readonly<Record<ObjectType, number>>;
  /** When the newest snapshot object was stored (ms since the epoch), if there is one. */
  readonly newestSnapshotMs: number | undefined;
}

/** Lists every type of the repository and adds it up; NOT_FOUND when the repository does not exist. */
export async function summarizeRepo(
  storage: Storage,
  repo: RepoPath,
  signal?: AbortSignal,
): Promise<RepoSummary> {
  let bytes = (await storage.stat({ repo, type: 'config' }, signal)) ?? 0;
  const objects = { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 };
  let newestSnapshotMs: number | undefined;
  for (const type of objectTypes) {
    for await (const entry of storage.list(repo, type, signal)) {
      bytes += entry.size;
      objects[type]++;
      if (type === 'snapshots' && entry.modifiedMs !== undefined) {
        newestSnapshotMs = Math.max(newestSnapshotMs ?? entry.modifiedMs, entry.modifiedMs);
      }
    }
  }
  return { bytes, objects, newestSnapshotMs };
}
