/**
 * The usage ledger: what each repository holds (bytes, objects per type, newest snapshot time),
 * kept in a UsageStore so that quota decisions and metrics never walk storage.
 *
 * - Seeded at start by one walk over Storage's listings (`listRepos`, then `list` per type and the
 *   config's size); `ready` resolves when that walk is done. A shared store (several instances)
 *   is counted once, by the instance holding the `usage` lease; the others wait for that count.
 *   A shared store that lost its count (Redis restarted empty) is counted again the same way.
 * - Updated by explicit calls for every create, write and delete this server makes.
 * - Reconciled in the background from the same listings, one repository per tick on an unref'd
 *   timer that is armed again only when the previous tick has finished: never more than one walk
 *   at a time, never on a request's path. A pass goes through every repository Storage lists,
 *   so repositories added by other processes are counted and those removed are forgotten. With
 *   several instances only the holder of the `usage` lease runs passes.
 * - A change the store could not take (Redis away) is logged and its repository measured again.
 * - A measurement that raced with this server's own change to the repository (the store's stamp
 *   moved while it listed) does not replace the numbers. A repository that had to be measured
 *   (unknown, or a snapshot deleted) is measured again on the next tick; any other waits for the
 *   next pass, since this server's own calls keep it current: a repository under constant
 *   upload is not walked again and again.
 */
import type { Logger } from 'pino';
import { RatchetError } from '../errors.ts';
import type { Awaitable } from '../state/awaitable.ts';
import { soleInstance } from '../state/job-lease.ts';
import type { JobLease } from '../state/job-lease.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoFromKey, repoKey } from '../domain/repo-path.ts';
import type { ObjectRef } from '../domain/object-ref.ts';
import type { Storage } from '../storage/storage.ts';
import { measureRepo } from './measure.ts';
import type { RepoUsage, UsageChange, UsageStore } from './usage-store.ts';

/** Least time between two reconcile ticks (each measures one repository). */
const defaultTickMs = 1000;
// A pass starts no sooner than this many ticks after the previous one started (a minute by
// default), and after a tick that took t ms the next waits at least workRatio × t: the
// reconcile takes at most about 5% of one core, however large the repositories are.
const ticksPerPass = 60;
const workRatio = 19;
/** Repositories measured at once by the start-up count. */
const seedConcurrency = 8;
/**
 * The lease of the count and the reconcile passes, renewed by every tick of its holder and every
 * few repositories of its count: another instance takes over a minute after the holder died.
 */
const usageJob = 'usage';
const usageLeaseMs = 60_000;
const renewEveryMs = 15_000;
/** How often an instance waiting for another's count looks whether it is done. */
const countPollMs = 1000;

export interface LedgerOptions {
  readonly tickMs?: number;
  /** Who counts and reconciles when several instances share the store (default: this process). */
  readonly lease?: JobLease;
}

/** What a measurement that raced with this server's own change does. */
interface RaceRule {
  /** Keep it anyway (the start-up count: nothing better exists yet). */
  readonly force: boolean;
  /** Measure the repository again on the next tick. */
  readonly retry: boolean;
}

/** One walk over every repository Storage lists, a repository per step. */
interface Pass {
  readonly repos: AsyncIterator<RepoPath>;
  readonly seen: Set<string>;
  /** The store's clock when the pass began: repositories changed since are not forgotten. */
  readonly since: number;
}

export class UsageLedger {
  readonly store: UsageStore;
  /** Resolves when the start-up count is done (also when it failed: the reconcile then repairs). */
  readonly ready: Promise<void>;
  private readonly storage: Storage;
  private readonly logger: Logger;
  private readonly tickMs: number;
  private readonly lease: JobLease;
  private markReady: () => void = () => undefined;
  private seeded = false;
  private pass: Pass | undefined;
  /** Repositories to measure before the pass goes on: raced, unknown, or a snapshot deleted. */
  private readonly again = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** When the latest pass began (0: none yet). */
  private passStartedAt = 0;
  /** The start-up count or the reconcile tick in progress, if any. */
  private running: Promise<void> | undefined;
  private stopped = false;
  /** A store call failed during the count in progress: it is not recorded as complete. */
  private countSpoiled = false;

  constructor(storage: Storage, store: UsageStore, logger: Logger, options: LedgerOptions = {}) {
    this.storage = storage;
    this.store = store;
    this.logger = logger;
    this.tickMs = options.tickMs ?? defaultTickMs;
    this.lease = options.lease ?? soleInstance;
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  /** True once the start-up count is done: totals are then complete. */
  get isReady(): boolean {
    return this.seeded;
  }

  /** Counts every repository once, then reconciles one repository per tick until stop(). */
  start(): void {
    this.running = this.count().finally(() => this.schedule());
  }

  /**
   * Waits until the store holds a complete count, making it when this instance holds the lease
   * (always, in one process); another instance's count is waited for.
   */
  private async count(): Promise<void> {
    while (!this.stopped) {
      if (await this.storeCounted()) break;
      if (await this.lease.holds(usageJob, usageLeaseMs)) {
        try {
          // The count is recorded only for the store it was made in, and only when the store
          // took every measurement: a count with holes would let quotas be passed.
          const token = await this.store.startCount();
          this.countSpoiled = false;
          await this.seed();
          if (this.countSpoiled) throw new Error('the usage store failed during the count');
          await this.store.markCounted(token);
          break;
        } catch (err) {
          this.logger.warn({ err }, 'the usage count could not be recorded; counting again');
        }
      }
      await new Promise((resolve) => setTimeout(resolve, countPollMs).unref());
    }
    this.seeded = true;
    this.markReady();
  }

  /** True when the store holds a complete count; false when it cannot say. */
  private async storeCounted(): Promise<boolean> {
    try {
      return await this.store.counted();
    } catch {
      return false;
    }
  }

  /** Stops the background work; resolves when the count or tick in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /**
   * This server stored an object of `bytes` (0 when identical content was already there); the
   * quota holds `holds` of the upload are given back in the same step.
   */
  wrote(ref: ObjectRef, bytes: number, holds: readonly string[] = []): Awaitable<void> {
    if (bytes === 0) return this.apply(ref.repo, undefined, holds);
    if (ref.type === 'config') return this.apply(ref.repo, { bytes }, holds);
    const snapshotMs = ref.type === 'snapshots' ? Date.now() : undefined;
    return this.apply(ref.repo, { bytes, type: ref.type, objects: 1, snapshotMs }, holds);
  }

  /** This server deleted an object that held `bytes`. */
  deleted(ref: ObjectRef, bytes: number): Awaitable<void> {
    return this.moved(ref, { bytes: -bytes, objects: -1 });
  }

  /** This server moved an object of `bytes` into the repository's trash. */
  trashed(ref: ObjectRef, bytes: number): Awaitable<void> {
    return this.moved(ref, { bytes: -bytes, objects: -1, trashBytes: bytes, trashObjects: 1 });
  }

  /** This server put a trashed object of `bytes` back under its name. */
  restored(ref: ObjectRef, bytes: number): Awaitable<void> {
    return this.moved(ref, { bytes, objects: 1, trashBytes: -bytes, trashObjects: -1 });
  }

  /** This server removed a trashed object of `bytes` for good. */
  purged(repo: RepoPath, bytes: number): Awaitable<void> {
    return this.apply(repo, { bytes: 0, trashBytes: -bytes, trashObjects: -1 });
  }

  /** Applies a change of live objects (and of the trash) to the object's repository. */
  private moved(ref: ObjectRef, change: UsageChange & { objects: number }): Awaitable<void> {
    // The newest snapshot time may have been the deleted one's, and a restored one keeps its own
    // (older) time: read it again soon.
    if (ref.type === 'snapshots') this.again.add(repoKey(ref.repo));
    if (ref.type === 'config') return this.apply(ref.repo, { ...change, objects: undefined });
    return this.apply(ref.repo, { ...change, type: ref.type });
  }

  /** This server created the repository (its folders count as 0 bytes), under the hold of its admission. */
  created(repo: RepoPath, holds: readonly string[] = []): Awaitable<void> {
    return this.apply(repo, { bytes: 0 }, holds);
  }

  /**
   * Gives back the holds and applies the change in one step. A store that cannot take it (Redis
   * away) loses nothing for good: the repository is measured again from storage.
   */
  private apply(
    repo: RepoPath,
    change: UsageChange | undefined,
    holds: readonly string[] = [],
  ): Awaitable<void> {
    const key = this.noteTouched(repo);
    const lost = (err: unknown): void => {
      this.again.add(key);
      this.logger.warn(
        { err, repo: key },
        'the usage store did not take a change; the repository is measured again',
      );
    };
    try {
      const done = this.store.settle(holds, key, change);
      return done instanceof Promise ? done.catch(lost) : done;
    } catch (err) {
      lost(err);
    }
  }

  /** Every known repository with its numbers. */
  repos(): Iterable<[string, RepoUsage]> {
    return this.store.repos();
  }

  /**
   * Does one tick's work: measures one repository (a queued one first, else the pass's next),
   * or ends the pass. Resolves false when the pass ended.
   */
  async step(): Promise<boolean> {
    // The queue waits for the start-up count, which must end however busy the server is.
    const queued = this.seeded ? this.again.values().next() : undefined;
    if (queued !== undefined && queued.done !== true) {
      this.again.delete(queued.value);
      // Queued again when the store could not take it: nothing else would bring it back.
      if ((await this.measureOrSkip(repoFromKey(queued.value), { force: false, retry: true })) === 'store')
        this.again.add(queued.value);
      return true;
    }
    // Passes are the lease holder's (always this process's when nothing is shared).
    if (!(await this.lease.holds(usageJob, usageLeaseMs))) {
      this.pass = undefined;
      return false;
    }
    if (this.pass === undefined) {
      this.passStartedAt = Date.now();
      this.pass = {
        repos: this.storage.listRepos()[Symbol.asyncIterator](),
        seen: new Set(),
        since: await fromStore(() => this.store.clock()),
      };
    }
    const { repos, seen, since } = this.pass;
    const next = await repos.next();
    if (next.done === true) {
      this.pass = undefined;
      await this.forgetUnseen(seen, since);
      return false;
    }
    seen.add(repoKey(next.value));
    await this.measureOrSkip(next.value, { force: !this.seeded, retry: !this.seeded });
    return true;
  }

  /** Measures, logging a repository that cannot be read (it keeps its numbers; the pass goes on). */
  private async measureOrSkip(repo: RepoPath, race: RaceRule): Promise<'ok' | 'store' | 'storage'> {
    try {
      await this.measure(repo, race);
      return 'ok';
    } catch (err) {
      const store = err instanceof StoreFailure;
      if (store) this.countSpoiled = true;
      this.logger.warn(
        { err: store ? err.cause : err, repo: repoKey(repo) },
        store ? 'the usage store did not take a measurement' : 'reading the usage of a repository failed',
      );
      return store ? 'store' : 'storage';
    }
  }

  private async seed(): Promise<void> {
    const started = Date.now();
    try {
      await this.seedPass();
    } catch (err) {
      if (err instanceof StoreFailure) this.countSpoiled = true;
      // Listing the repositories failed: what was counted stands, the reconcile goes on.
      this.logger.warn(
        { err },
        'counting repository usage at start failed; the background reconcile repairs it',
      );
      return;
    }
    const repositories = [...this.store.repos()].length;
    this.logger.info({ repositories, ms: Date.now() - started }, 'repository usage counted');
  }

  /**
   * The start-up count: every repository measured once, a few at a time (each is a handful of
   * folder reads; one at a time, 5000 repositories took 30 s here). Repositories the store knew
   * but the listing no longer has are forgotten, as at the end of a reconcile pass.
   */
  private async seedPass(): Promise<void> {
    const since = await fromStore(() => this.store.clock());
    const seen = new Set<string>();
    const inFlight = new Set<Promise<void>>();
    let renewed = Date.now();
    for await (const repo of this.storage.listRepos()) {
      if (this.stopped) break;
      if (Date.now() - renewed > renewEveryMs) {
        renewed = Date.now();
        await this.lease.holds(usageJob, usageLeaseMs);
      }
      seen.add(repoKey(repo));
      const measuring: Promise<void> = this.measureOrSkip(repo, { force: true, retry: true })
        .then(() => undefined)
        .finally(() => inFlight.delete(measuring));
      inFlight.add(measuring);
      if (inFlight.size >= seedConcurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (this.stopped) return;
    await this.forgetUnseen(seen, since);
  }

  /** Forgets the repositories a finished listing did not show (unless changed since it began). */
  private async forgetUnseen(seen: ReadonlySet<string>, since: number): Promise<void> {
    for (const [key] of [...this.store.repos()]) {
      if (!seen.has(key) && (await fromStore(() => this.store.forget(key, since))))
        this.logger.info({ repo: key }, 'repository gone');
    }
  }

  private schedule(delayMs = this.tickMs): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      let passGoesOn = true;
      this.running = this.recount()
        .then(() => this.step())
        .then(
          (more) => {
            passGoesOn = more;
          },
          (err: unknown) => {
            this.pass = undefined;
            this.logger.warn(
              { err },
              'listing repositories for the usage reconcile failed; it is tried again',
            );
          },
        )
        .finally(() => {
          const now = Date.now();
          const rest = Math.max(this.tickMs, (now - started) * workRatio);
          const nextPass = this.passStartedAt + this.tickMs * ticksPerPass - now;
          this.schedule(passGoesOn ? rest : Math.max(rest, nextPass));
        });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * Reads a repository's numbers from its listings. A measurement that raced with this server's
   * own change is kept only when `race.force` (the start-up count, where nothing better exists
   * yet), and the repository is queued again when `race.retry`.
   */
  private async measure(repo: RepoPath, race: RaceRule): Promise<void> {
    const key = repoKey(repo);
    const since = await fromStore(() => this.store.clock());
    let usage: RepoUsage;
    try {
      usage = await measureRepo(this.storage, repo);
    } catch (err) {
      if (err instanceof RatchetError && err.code === 'NOT_FOUND') {
        await fromStore(() => this.store.forget(key, since));
        return;
      }
      throw err;
    }
    if (await fromStore(() => this.store.replace(key, usage, since))) return;
    if (race.force) await fromStore(() => this.store.replace(key, usage, Infinity));
    if (race.retry) this.again.add(key);
  }

  /**
   * A shared store that lost its count (Redis restarted empty) is counted again before the tick's
   * work; decisions meanwhile get UNAVAILABLE from the store itself.
   */
  private async recount(): Promise<void> {
    let counted: boolean;
    try {
      counted = await this.store.counted();
    } catch {
      return; // the store cannot answer now: nothing is known to be lost
    }
    if (counted) return;
    this.logger.warn('the shared usage store holds no complete count (restarted?); counting again');
    this.pass = undefined;
    await this.count();
  }

  /** The repository's key; a repository the ledger does not know yet is measured on the next tick. */
  private noteTouched(repo: RepoPath): string {
    const key = repoKey(repo);
    if (this.store.get(key) === undefined) this.again.add(key);
    return key;
  }
}

/** A call to the usage store (not to storage) failed: the measurement is lost, not wrong. */
class StoreFailure extends Error {
  constructor(cause: unknown) {
    super('the usage store did not answer', { cause });
  }
}

/** The store's answer; its failure as a StoreFailure. */
async function fromStore<T>(call: () => Awaitable<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new StoreFailure(err);
  }
}
