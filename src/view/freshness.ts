/**
 * When a repository counts as stale: its newest snapshot object is older than --stale-after, or
 * than the first `freshness` rule of the configuration file whose patterns cover it (patterns as
 * in access grants, `{user}` being the repository's owner).
 */
import { GrantTable } from '../access/grants.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { RepoUsage } from '../usage/usage-store.ts';

export interface FreshnessRule {
  readonly repos: readonly string[];
  readonly staleAfterMs: number;
}

export interface FreshnessRules {
  /** --stale-after in ms. */
  readonly staleAfterMs: number;
  readonly rules: readonly FreshnessRule[];
}

/**
 * fresh: a snapshot within the period. stale: the newest snapshot is older. never: objects but
 * no snapshot (a backup that never finished). empty: nothing but the repository's keys and config.
 */
export type RepoStatus = 'fresh' | 'stale' | 'never' | 'empty';

export class Freshness {
  private readonly defaultMs: number;
  private readonly tables: { table: GrantTable; staleAfterMs: number }[];

  constructor(rules: FreshnessRules) {
    this.defaultMs = rules.staleAfterMs;
    this.tables = rules.rules.map((rule) => ({
      table: new GrantTable([{ users: ['*'], repos: rule.repos, role: 'read-only' }]),
      staleAfterMs: rule.staleAfterMs,
    }));
  }

  /** The period after which the repository (owned by `owner`, if any) is stale. */
  staleAfterFor(repo: RepoPath, owner: string | undefined): number {
    const rule = this.tables.find((entry) => entry.table.roleFor(owner ?? '', repo) !== undefined);
    return rule?.staleAfterMs ?? this.defaultMs;
  }

  /** The repository's status at `now` (ms). */
  status(usage: RepoUsage, staleAfterMs: number, now: number): RepoStatus {
    if (usage.newestSnapshotMs !== undefined)
      return now - usage.newestSnapshotMs > staleAfterMs ? 'stale' : 'fresh';
    // Locks come and go with every restic command: they say nothing about backups.
    const { data, index } = usage.objects;
    return data + index > 0 ? 'never' : 'empty';
  }
}
