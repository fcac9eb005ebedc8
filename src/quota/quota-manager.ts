/**
 * Storage quotas: a total for the whole data folder (rest-server's --max-size), per-repository
 * limits chosen by path pattern, per-user limits on everything below /<user>/, and a limit on
 * how many repositories may exist below /<user>/.
 *
 * Usage comes from the usage ledger (seeded from storage at start, kept by this server's writes
 * and deletes, reconciled in the background), so a decision does no storage walk and no work
 * that grows with the number of repositories; decisions wait for the start-up count. Uploads
 * reserve their declared length before anything is written, so concurrent uploads cannot
 * together overshoot; a body without a declared length is counted as it streams and cut off
 * when it overflows. With a shared store (--state) the reservations and usage live in Redis, so
 * several instances together keep every limit exactly. Creating a repository counts 0 bytes (it makes six folders: the
 * repository and its type folders) but is refused when a byte quota that applies is full.
 *
 * The trash (--delete-grace) counts in the total only. When the total is what is full, the
 * reclaimer (the trash keeper) may purge old trash early, and the reservation is tried again.
 */
import { GrantTable } from '../access/grants.ts';
import { RatchetError } from '../errors.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoFromKey, repoKey } from '../domain/repo-path.ts';
import type { ObjectRef } from '../domain/object-ref.ts';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import { ownerOf } from '../usage/usage-store.ts';
import type { Awaitable } from '../state/awaitable.ts';
import type { Full, Hold, ScopeKey } from '../usage/usage-store.ts';

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
  readonly repoRules: readonly RepoQuotaRule[];
  readonly userRules: readonly UserQuotaRule[];
  /** Repositories allowed below /<user>/ (--max-repos-per-user); undefined: defaultMaxReposPerUser. */
  readonly maxReposPerUser?: number;
  /** Largest lock object accepted (--max-lock-size); undefined: defaultMaxLockBytes. */
  readonly maxLockBytes?: number;
  /** Lock objects one repository may hold (--max-locks-per-repo); undefined: defaultMaxLocksPerRepo. */
  readonly maxLocksPerRepo?: number;
}

/** Frees room in the total by removing what may go (old trash); resolves to the bytes freed. */
export interface Reclaimer {
  reclaim(bytes: number): Promise<number>;
}

export const noQuotas: QuotaLimits = { maxTotalBytes: undefined, repoRules: [], userRules: [] };

/** Repositories allowed below /<user>/ when the configuration does not say. */
export const defaultMaxReposPerUser = 1000;

/**
 * Lock objects: every role may write them (restic locks even to read), so they are bounded on
 * their own, whatever the byte quotas: restic's are a few hundred bytes and a repository has a
 * handful at a time. At the defaults, locks can hold at most 1.6 MiB of a repository.
 */
export const defaultMaxLockBytes = 16 * 1024;
export const defaultMaxLocksPerRepo = 100;

/** A limit an upload or creation is checked against, with the name its refusal uses. */
interface Scope extends Hold {
  readonly name: string;
}

/** Room an upload holds while it streams; commit or release it exactly once. */
export interface Reservation {
  /** Passes the body through, failing with QUOTA_EXCEEDED as soon as it outgrows the room. */
  limit(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
  /** The upload is finished: count its bytes if it created an object, and free the room. */
  commit(createdBytes: number): Awaitable<void>;
  /** The upload failed: free the room. */
  release(): Awaitable<void>;
}

/** A repository creation admitted under the repository count; commit or release it exactly once. */
export interface Admission {
  /** The repository exists now: count it. */
  commit(): Awaitable<void>;
  /** The creation failed: free its place. */
  release(): Awaitable<void>;
}

export class QuotaManager {
  private limits: QuotaLimits;
  private repoLimits: { table: GrantTable; maxBytes: number }[] = [];
  private readonly ledger: UsageLedger;
  private readonly reclaimer: Reclaimer | undefined;

  constructor(ledger: UsageLedger, limits: QuotaLimits, reclaimer?: Reclaimer) {
    this.ledger = ledger;
    this.limits = limits;
    this.reclaimer = reclaimer;
    this.compile();
  }

  /** True when any byte limit is configured. */
  get active(): boolean {
    const { maxTotalBytes, repoRules, userRules } = this.limits;
    return maxTotalBytes !== undefined || repoRules.length > 0 || userRules.length > 0;
  }

  /** Replaces the limits (configuration reload); uploads in flight keep their reservations. */
  update(limits: QuotaLimits): void {
    this.limits = limits;
    this.compile();
  }

  /** Reserves room for an upload of the declared size, or throws QUOTA_EXCEEDED (507). */
  async reserve(
    ref: ObjectRef,
    user: string | undefined,
    declared: number | undefined,
  ): Promise<Reservation> {
    return ref.type === 'locks'
      ? this.reserveLock(ref, user, declared)
      : this.reserveBytes(ref, user, declared);
  }

  /**
   * Holds the declared bytes against every byte quota that applies. `carried` holds (a lock's
   * place) are settled in the same step as the bytes.
   */
  private async reserveBytes(
    ref: ObjectRef,
    user: string | undefined,
    declared: number | undefined,
    carried: readonly string[] = [],
  ): Promise<Reservation> {
    if (!this.active) {
      // Nothing shared decides, but an upload the shared usage could not count is refused (503)
      // like every change that needs the shared state, rather than counted late.
      this.ledger.store.assertReachable();
      return {
        limit: (body) => body,
        commit: (bytes) => this.ledger.wrote(ref, bytes, carried),
        release: () => (carried.length === 0 ? undefined : this.released(carried)),
      };
    }
    await this.counted();
    const scopes = this.scopesFor(ref.repo, user);
    const store = this.ledger.store;
    const ids: string[] = [...carried];
    let held = 0;
    const hold = async (bytes: number, what: string): Promise<void> => {
      let answer = await store.reserve(scopes, bytes);
      const full = answer.full;
      const reclaimer = full?.scope === 'total' ? await this.reclaimerFor(scopes, bytes) : undefined;
      if (full !== undefined && reclaimer !== undefined && (await reclaimer.reclaim(bytes - full.left)) > 0)
        answer = await store.reserve(scopes, bytes);
      if (answer.full !== undefined)
        throw exceeded(scopes, await this.ownFirst(scopes, bytes, answer.full), `${what} would exceed`);
      ids.push(answer.id);
      held += bytes;
    };
    await hold(declared ?? 0, `an upload of ${declared ?? 0} bytes`);
    let settled = false;
    const settle = (createdBytes: number | undefined): Awaitable<void> => {
      if (settled) return;
      settled = true;
      // One step: the room is given back as the bytes are counted.
      if (createdBytes !== undefined) return this.ledger.wrote(ref, createdBytes, ids);
      return this.released(ids);
    };
    return {
      limit: async function* (body) {
        let seen = 0;
        for await (const chunk of body) {
          seen += chunk.length;
          if (seen > held) await hold(seen - held, 'this upload');
          yield chunk;
        }
      },
      commit: (createdBytes) => settle(createdBytes),
      release: () => settle(undefined),
    };
  }

  /** Gives holds back; a store that cannot take it now lets them expire (a shared store) instead. */
  private released(ids: readonly string[]): Awaitable<void> {
    try {
      const done = this.ledger.store.release(ids);
      return done instanceof Promise ? done.catch(() => undefined) : done;
    } catch {
      return undefined;
    }
  }

  /**
   * A lock upload: at most maxLockBytes (413 beyond, also for a body that overflows while it
   * streams), at most maxLocksPerRepo in the repository (507), then the byte quotas as usual.
   */
  private async reserveLock(
    ref: ObjectRef,
    user: string | undefined,
    declared: number | undefined,
  ): Promise<Reservation> {
    const maxBytes = this.limits.maxLockBytes ?? defaultMaxLockBytes;
    const tooLarge = (): RatchetError =>
      new RatchetError('TOO_LARGE', `a lock object may hold at most ${maxBytes} bytes (--max-lock-size)`);
    if (declared !== undefined && declared > maxBytes) throw tooLarge();
    await this.counted();
    const maxLocks = this.limits.maxLocksPerRepo ?? defaultMaxLocksPerRepo;
    const key = repoKey(ref.repo);
    const count: Hold[] = [{ scope: `locks:${key}`, limit: maxLocks }];
    const place = await this.ledger.store.reserve(count, 1);
    if (place.full !== undefined) {
      throw new RatchetError(
        'QUOTA_EXCEEDED',
        `repository /${key}/ already holds ${maxLocks} lock objects, the most allowed (--max-locks-per-repo); remove stale ones with restic unlock`,
      );
    }
    let inner: Reservation;
    try {
      // The lock's place is given back as its bytes are counted: one step, no gap.
      inner = await this.reserveBytes(ref, user, declared, [place.id]);
    } catch (err) {
      await this.released([place.id]);
      throw err;
    }
    return {
      limit: async function* (body) {
        let seen = 0;
        for await (const chunk of inner.limit(body)) {
          seen += chunk.length;
          if (seen > maxBytes) throw tooLarge();
          yield chunk;
        }
      },
      commit: (createdBytes) => inner.commit(createdBytes),
      release: () => inner.release(),
    };
  }

  /**
   * Waits for the usage count decisions are made from. A shared store out of reach answers 503
   * at once instead of a wait that lasts as long as the outage.
   */
  private async counted(): Promise<void> {
    this.ledger.store.assertReachable();
    await this.ledger.ready;
  }

  /** This server deleted an object that held `bytes`. */
  deleted(ref: ObjectRef, bytes: number): Awaitable<void> {
    return this.ledger.deleted(ref, bytes);
  }

  /**
   * Admits the creation of a repository, or throws QUOTA_EXCEEDED (507): when /<owner>/ already
   * holds the most repositories allowed, or a byte quota that applies has no room left. An
   * existing repository is always admitted (creating it again changes nothing).
   */
  async admitRepo(
    repo: RepoPath,
    user: string | undefined,
    exists: () => Promise<boolean>,
  ): Promise<Admission> {
    await this.counted();
    const known: Admission = { commit: () => this.ledger.created(repo), release: () => undefined };
    const store = this.ledger.store;
    if ((await store.knows(repoKey(repo))) || (await exists())) return known;
    const scopes = this.scopesFor(repo, user);
    const owner = ownerOf(repoKey(repo));
    const max = this.limits.maxReposPerUser ?? defaultMaxReposPerUser;
    const count: Scope = { scope: `repos:${owner}`, limit: max, name: `/${owner}/` };
    const tooMany = (): RatchetError =>
      new RatchetError(
        'QUOTA_EXCEEDED',
        `/${owner}/ already holds ${max} repositories, the most allowed (--max-repos-per-user)`,
      );
    // Checked first: old trash is purged below only for a creation that is then admitted.
    if ((await store.full([count], 1)) !== undefined) throw tooMany();
    // A creation counts 0 bytes but is not admitted into a full quota: it needs a byte of room.
    let full = await store.full(scopes, 1);
    const reclaimer = full?.scope === 'total' ? await this.reclaimerFor(scopes, 1) : undefined;
    if (reclaimer !== undefined && (await reclaimer.reclaim(1)) > 0) full = await store.full(scopes, 1);
    if (full !== undefined)
      throw exceeded(scopes, await this.ownFirst(scopes, 1, full), 'a new repository would exceed');
    const place = await store.reserve([count], 1);
    if (place.full !== undefined) throw tooMany();
    let settled = false;
    return {
      commit: () => {
        if (settled) return;
        settled = true;
        return this.ledger.created(repo, [place.id]);
      },
      release: () => {
        if (settled) return;
        settled = true;
        return this.released([place.id]);
      },
    };
  }

  /**
   * The quota a repository is held to, with what it holds: its own rule, else its owner's user
   * quota (the owner's whole folder); undefined when neither applies.
   */
  limitFor(repo: RepoPath, owner: string | undefined): { usedBytes: number; limitBytes: number } | undefined {
    const store = this.ledger.store;
    const own = this.repoRuleFor(owner, repo);
    if (own !== undefined)
      return { usedBytes: store.used(`repo:${repoKey(repo)}`), limitBytes: own.maxBytes };
    const user = owner === undefined ? undefined : this.userRuleFor(owner);
    if (owner === undefined || user === undefined) return undefined;
    return { usedBytes: store.used(`user:${owner}`), limitBytes: user.maxBytes };
  }

  /** Every limit with what it holds, once the start-up count is done (metrics); empty before. */
  report(): { scope: string; limit: number; used: number }[] {
    if (!this.ledger.isReady) return [];
    const store = this.ledger.store;
    const out: { scope: string; limit: number; used: number }[] = [];
    if (this.limits.maxTotalBytes !== undefined) {
      out.push({ scope: 'total', limit: this.limits.maxTotalBytes, used: store.used('total') });
    }
    const owners = new Set<string>();
    for (const [key, usage] of store.repos()) {
      const owner = ownerOf(key);
      owners.add(owner);
      const rule = this.repoRuleFor(owner, repoFromKey(key));
      if (rule !== undefined) out.push({ scope: `repo:${key}`, limit: rule.maxBytes, used: usage.bytes });
    }
    for (const owner of owners) {
      const rule = this.userRuleFor(owner);
      if (rule !== undefined)
        out.push({ scope: `user:${owner}`, limit: rule.maxBytes, used: store.used(`user:${owner}`) });
    }
    return out;
  }

  /**
   * The reclaimer, when the total is the one scope without room: old trash is purged only for an
   * upload that then fits, never for one that another quota refuses anyway.
   */
  private async reclaimerFor(scopes: readonly Scope[], bytes: number): Promise<Reclaimer | undefined> {
    const others = scopes.filter((scope) => scope.scope !== 'total');
    return (await this.ledger.store.full(others, bytes)) === undefined ? this.reclaimer : undefined;
  }

  /** The scope a refusal names: a full scope of the user's own before the server's total. */
  private async ownFirst(scopes: readonly Scope[], bytes: number, full: Full): Promise<Full> {
    if (full.scope !== 'total') return full;
    const own = await this.ledger.store.full(
      scopes.filter((scope) => scope.scope !== 'total'),
      bytes,
    );
    return own ?? full;
  }

  private compile(): void {
    this.repoLimits = this.limits.repoRules.map((rule) => ({
      table: new GrantTable([{ users: ['*'], repos: rule.repos, role: 'admin' }]),
      maxBytes: rule.maxBytes,
    }));
  }

  /** The byte limits an upload by this user into this repository is checked against. */
  private scopesFor(repo: RepoPath, user: string | undefined): Scope[] {
    const scopes: Scope[] = [];
    if (this.limits.maxTotalBytes !== undefined) {
      scopes.push({ scope: 'total', limit: this.limits.maxTotalBytes, name: 'the data folder' });
    }
    const repoRule = this.repoRuleFor(user, repo);
    if (repoRule !== undefined) {
      const key = repoKey(repo);
      scopes.push({ scope: `repo:${key}`, limit: repoRule.maxBytes, name: `repository /${key}/` });
    }
    const userRule = user === undefined ? undefined : this.userRuleFor(user);
    if (user !== undefined && userRule !== undefined) {
      scopes.push({ scope: `user:${user}`, limit: userRule.maxBytes, name: `user ${user}` });
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
}

/** The QUOTA_EXCEEDED error for the scope that has no room. */
function exceeded(
  scopes: readonly Scope[],
  full: { scope: ScopeKey; left: number },
  what: string,
): RatchetError {
  const scope = scopes.find((s) => s.scope === full.scope);
  const numbers = `${scope?.limit ?? 0} bytes, ${full.left} left`;
  // The whole data folder's usage is the operator's business: users see only their own scopes.
  if (full.scope === 'total') {
    return new RatchetError('QUOTA_EXCEEDED', `${what} the server's storage limit`, {
      cause: new Error(`the data folder's quota (--max-size): ${numbers}`),
    });
  }
  return new RatchetError('QUOTA_EXCEEDED', `${what} the quota of ${scope?.name ?? full.scope} (${numbers})`);
}
