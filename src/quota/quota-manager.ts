/**
 * Storage quotas: a total for the whole data folder (rest-server's --max-size), per-repository
 * limits chosen by path pattern, and per-user limits on everything below /<user>/.
 *
 * Usage comes from the storage's own summaries (exact, and aware of changes made by others),
 * kept per repository and adjusted by this server's writes; a repository is summarized again
 * after a delete or when its numbers are older than a refresh interval. Uploads reserve their
 * declared length before anything is written, so concurrent uploads cannot together overshoot;
 * a body without a declared length is counted as it streams and cut off when it overflows.
 */
import type { Logger } from 'pino';
import { GrantTable } from '../access/grants.ts';
import { RatchetError } from '../errors.ts';
import type { RepoPath } from '../protocol/route.ts';
import { repoFromKey, repoKey } from '../protocol/route.ts';
import type { Storage } from '../storage/storage.ts';

export interface RepoQuotaRule {
  /** Repository patterns as in access grants; `{user}` is the uploading user. */
  readonly repos: readonly string[];
  readonly maxBytes: number;
}

export interface UserQuotaRule {
  /** User names, or ['*'] for every user: each user's repositories below /<user>/ together. */
  readonly users: readonly string[];
  readonly maxBytes: number;
}

export interface QuotaLimits {
  readonly maxTotalBytes: number | undefined;
  /** The most repositories one user may create below /<user>/ (--max-repos-per-user); not enforced yet. */
  readonly maxReposPerUser?: number;
  readonly repoRules: readonly RepoQuotaRule[];
  readonly userRules: readonly UserQuotaRule[];
}

export const noQuotas: QuotaLimits = { maxTotalBytes: undefined, repoRules: [], userRules: [] };

// Numbers older than this are read again from storage before a decision, to see outside changes.
const refreshMs = 30_000;

interface RepoUsage {
  bytes: number;
  readAt: number;
}

// Bumped by every commit to a repository, so a summary that raced with a commit is not trusted.
type Generation = number;

interface Scope {
  readonly name: string;
  readonly limit: number;
  readonly used: () => number;
}

/** Room an upload holds while it streams; commit or release it exactly once. */
export interface Reservation {
  /** Passes the body through, failing with QUOTA_EXCEEDED as soon as it outgrows the room. */
  limit(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
  /** The upload is finished: count its bytes if it created an object, and free the room. */
  commit(createdBytes: number): void;
  /** The upload failed: free the room. */
  release(): void;
}

const unlimited: Reservation = { limit: (body) => body, commit: () => undefined, release: () => undefined };

export class QuotaManager {
  private limits: QuotaLimits;
  private repoLimits: { table: GrantTable; maxBytes: number }[] = [];
  private readonly usage = new Map<string, RepoUsage>();
  private readonly pending = new Map<string, number>();
  private readonly generations = new Map<string, Generation>();
  private tally: Promise<void> | undefined;
  private readonly storage: Storage;
  private readonly logger: Logger;

  constructor(storage: Storage, limits: QuotaLimits, logger: Logger) {
    this.storage = storage;
    this.logger = logger;
    this.limits = limits;
    this.compile();
  }

  /** True when any limit is configured. */
  get active(): boolean {
    return (
      this.limits.maxTotalBytes !== undefined ||
      this.limits.repoRules.length > 0 ||
      this.limits.userRules.length > 0
    );
  }

  /** Replaces the limits (configuration reload); uploads in flight keep their reservations. */
  update(limits: QuotaLimits): void {
    this.limits = limits;
    this.compile();
  }

  /** Reserves room for an upload of the declared size, or throws QUOTA_EXCEEDED (507). */
  async reserve(
    repo: RepoPath,
    user: string | undefined,
    declared: number | undefined,
  ): Promise<Reservation> {
    if (!this.active) return unlimited;
    const scopes = await this.scopesFor(repo, user);
    if (scopes.length === 0) return unlimited;
    let held = 0;
    const hold = (bytes: number): void => {
      for (const scope of scopes) this.pending.set(scope.name, (this.pending.get(scope.name) ?? 0) + bytes);
      held += bytes;
    };
    const check = (extra: number, what: string): void => {
      for (const scope of scopes) {
        const taken = scope.used() + (this.pending.get(scope.name) ?? 0);
        if (taken + extra > scope.limit) {
          const left = Math.max(0, scope.limit - taken);
          throw new RatchetError(
            'QUOTA_EXCEEDED',
            `${what} would exceed the quota of ${scope.name} (${scope.limit} bytes, ${left} left)`,
          );
        }
      }
    };
    check(declared ?? 0, `an upload of ${declared ?? 0} bytes`);
    hold(declared ?? 0);
    let done = false;
    const free = (): void => {
      if (done) return;
      done = true;
      hold(-held);
    };
    const key = repoKey(repo);
    return {
      limit: async function* (body) {
        let seen = 0;
        for await (const chunk of body) {
          seen += chunk.length;
          if (seen > held) {
            check(seen - held, 'this upload');
            hold(seen - held);
          }
          yield chunk;
        }
      },
      commit: (createdBytes) => {
        free();
        this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
        const entry = this.usage.get(key);
        if (entry !== undefined) entry.bytes += createdBytes;
      },
      release: free,
    };
  }

  /** A delete happened: read the repository's usage again before the next decision. */
  noteDeleted(repo: RepoPath): void {
    const entry = this.usage.get(repoKey(repo));
    if (entry !== undefined) entry.readAt = 0;
  }

  /** Every limit with what it currently holds, as far as this server has read usage (metrics). */
  report(): { scope: string; limit: number; used: number }[] {
    const out: { scope: string; limit: number; used: number }[] = [];
    if (this.limits.maxTotalBytes !== undefined) {
      out.push({ scope: 'total', limit: this.limits.maxTotalBytes, used: this.sum(() => true) });
    }
    // A user's repositories are those below /<user>/: one pass adds them up per first component.
    const perOwner = new Map<string, number>();
    for (const [key, entry] of this.usage) {
      const repo = repoFromKey(key);
      const owner = repo[0];
      if (owner !== undefined) perOwner.set(owner, (perOwner.get(owner) ?? 0) + entry.bytes);
      const rule = this.repoRuleFor(owner, repo);
      if (rule !== undefined) out.push({ scope: `repo:${key}`, limit: rule.maxBytes, used: entry.bytes });
    }
    for (const [user, used] of perOwner) {
      const rule = this.userRuleFor(user);
      if (rule !== undefined) out.push({ scope: `user:${user}`, limit: rule.maxBytes, used });
    }
    return out;
  }

  private compile(): void {
    this.repoLimits = this.limits.repoRules.map((rule) => ({
      table: new GrantTable([{ users: ['*'], repos: rule.repos, role: 'admin' }]),
      maxBytes: rule.maxBytes,
    }));
  }

  private async scopesFor(repo: RepoPath, user: string | undefined): Promise<Scope[]> {
    const scopes: Scope[] = [];
    const key = repoKey(repo);
    const spansRepos =
      this.limits.maxTotalBytes !== undefined || (user !== undefined && this.userRuleFor(user) !== undefined);
    if (spansRepos) {
      await this.tallyAll();
      await Promise.all([...this.usage.keys()].map((k) => this.refresh(repoFromKey(k))));
    }
    await this.refresh(repo);
    if (this.limits.maxTotalBytes !== undefined) {
      scopes.push({
        name: 'the data folder',
        limit: this.limits.maxTotalBytes,
        used: () => this.sum(() => true),
      });
    }
    const repoRule = this.repoRuleFor(user, repo);
    if (repoRule !== undefined) {
      scopes.push({
        name: `repository /${key}/`,
        limit: repoRule.maxBytes,
        used: () => this.usage.get(key)?.bytes ?? 0,
      });
    }
    const userRule = user === undefined ? undefined : this.userRuleFor(user);
    if (user !== undefined && userRule !== undefined) {
      const home = `${user}/`;
      scopes.push({
        name: `user ${user}`,
        limit: userRule.maxBytes,
        used: () => this.sum((k) => k === user || k.startsWith(home)),
      });
    }
    return scopes;
  }

  /** The first repository rule whose patterns cover the repository (as seen by the user). */
  private repoRuleFor(user: string | undefined, repo: RepoPath): { maxBytes: number } | undefined {
    return this.repoLimits.find((rule) => rule.table.roleFor(user ?? '', repo) !== undefined);
  }

  private userRuleFor(user: string): UserQuotaRule | undefined {
    return (
      this.limits.userRules.find((rule) => rule.users.includes(user)) ??
      this.limits.userRules.find((rule) => rule.users.includes('*'))
    );
  }

  private sum(include: (key: string) => boolean): number {
    let total = 0;
    for (const [key, entry] of this.usage) if (include(key)) total += entry.bytes;
    return total;
  }

  /** Summarizes the repository if its numbers are missing or old. */
  private async refresh(repo: RepoPath): Promise<void> {
    const key = repoKey(repo);
    const entry = this.usage.get(key);
    if (entry !== undefined && Date.now() - entry.readAt < refreshMs) return;
    const generation = this.generations.get(key);
    try {
      const summary = await this.storage.summarize(repo);
      // A commit during the summary may or may not be in it: keep the number but read it again soon.
      const raced = this.generations.get(key) !== generation;
      this.usage.set(key, { bytes: summary.bytes, readAt: raced ? 0 : Date.now() });
    } catch (err) {
      if (err instanceof RatchetError && err.code === 'NOT_FOUND') this.usage.delete(key);
      else throw err;
    }
  }

  /** Reads every repository's usage once, for limits that span repositories. */
  private tallyAll(): Promise<void> {
    this.tally ??= (async () => {
      const started = Date.now();
      let count = 0;
      for await (const repo of this.storage.listRepos()) {
        await this.refresh(repo);
        count++;
      }
      this.logger.info({ repositories: count, ms: Date.now() - started }, 'quota usage tallied');
    })().catch((err: unknown) => {
      this.tally = undefined;
      throw err;
    });
    return this.tally;
  }
}
