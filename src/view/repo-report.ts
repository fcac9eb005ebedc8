/**
 * What the web view and `/.ratchet/api/repos` show per repository: numbers from the usage ledger
 * (no storage walk, however many repositories), the status against --stale-after, the quota
 * that applies, the trash and the refused changes of the last day. Only the repositories a
 * caller may see are reported; until the ledger's start-up count is done, none are (a partial
 * table would show repositories as missing).
 */
import { objectTypes } from '../domain/object-types.ts';
import type { ObjectType } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoDisplay, repoFromKey } from '../domain/repo-path.ts';
import type { QuotaManager } from '../quota/quota-manager.ts';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import type { Freshness, RepoStatus } from './freshness.ts';
import type { RecentRefusals } from './recent-refusals.ts';
import type { SizeHistory } from './size-history.ts';

/** What the background scrub found, by repository key (cumulative since this process started). */
export interface ScrubResults {
  readonly lastPassMs: ReadonlyMap<string, number>;
  readonly corrupt: ReadonlyMap<string, number>;
  readonly unreadable: ReadonlyMap<string, number>;
}

export interface RepoRow {
  /** The repository's path, as `/host1/`. */
  readonly repo: string;
  /** The user a `{user}` grant gives it to, if any. */
  readonly owner: string | undefined;
  readonly bytes: number;
  readonly objects: Readonly<Record<ObjectType, number>>;
  /** When the newest snapshot object was stored (ISO 8601), if there is one. */
  readonly newestSnapshot: string | undefined;
  /** Seconds since then. */
  readonly ageSeconds: number | undefined;
  readonly status: RepoStatus;
  readonly staleAfterSeconds: number;
  /** The repository's own quota (or its owner's), if one applies. */
  readonly quota: { readonly usedBytes: number; readonly limitBytes: number } | undefined;
  readonly trashBytes: number;
  readonly refusedChanges24h: number;
  /** The size on each of the last days, oldest first (today last); undefined where unknown. */
  readonly sizeHistory: readonly (number | undefined)[];
  /** The background scrub's findings; undefined when it is off. */
  readonly scrub:
    | {
        /** When it last checked the repository to its end (ISO 8601), if it has since start. */
        readonly lastPass: string | undefined;
        readonly corrupt: number;
        readonly unreadable: number;
      }
    | undefined;
}

export interface RepoReportSources {
  readonly ledger: UsageLedger;
  readonly freshness: Freshness;
  readonly quota: QuotaManager;
  readonly refusals: RecentRefusals;
  readonly ownerOf: (repo: RepoPath) => string | undefined;
  readonly history: SizeHistory;
  /** Absent when the background scrub is off. */
  readonly scrub?: ScrubResults;
}

/** The rows of the repositories `visible` admits, by path; undefined before the start-up count. */
export function repoReport(
  sources: RepoReportSources,
  visible: (repo: RepoPath) => boolean,
  now = Date.now(),
): RepoRow[] | undefined {
  const { ledger, freshness, quota, refusals, history, scrub } = sources;
  if (!ledger.isReady) return undefined;
  const rows: RepoRow[] = [];
  const window = history.window(now);
  for (const [key, usage] of ledger.repos()) {
    const repo = repoFromKey(key);
    if (!visible(repo)) continue;
    const owner = sources.ownerOf(repo);
    const staleAfterMs = freshness.staleAfterFor(repo, owner);
    const objects = Object.fromEntries(objectTypes.map((type) => [type, usage.objects[type]])) as Record<
      ObjectType,
      number
    >;
    const newest = usage.newestSnapshotMs;
    rows.push({
      repo: repoDisplay(repo),
      owner,
      bytes: usage.bytes,
      objects,
      newestSnapshot: newest === undefined ? undefined : new Date(newest).toISOString(),
      ageSeconds: newest === undefined ? undefined : Math.max(0, Math.round((now - newest) / 1000)),
      status: freshness.status(usage, staleAfterMs, now),
      staleAfterSeconds: Math.round(staleAfterMs / 1000),
      quota: quota.limitFor(repo, owner),
      trashBytes: usage.trashBytes,
      refusedChanges24h: refusals.last24h(key, now),
      sizeHistory: history.series(key, window),
      scrub: scrub === undefined ? undefined : scrubOf(scrub, key),
    });
  }
  return rows.sort((a, b) => (a.repo < b.repo ? -1 : a.repo > b.repo ? 1 : 0));
}

function scrubOf(scrub: ScrubResults, key: string): RepoRow['scrub'] {
  const lastPassMs = scrub.lastPassMs.get(key);
  return {
    lastPass: lastPassMs === undefined ? undefined : new Date(lastPassMs).toISOString(),
    corrupt: scrub.corrupt.get(key) ?? 0,
    unreadable: scrub.unreadable.get(key) ?? 0,
  };
}
