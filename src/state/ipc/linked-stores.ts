/**
 * A worker's stores (--workers without --state): each decision is a call to the state the
 * primary hosts (state-host.ts), so quotas, the login throttle, rate limits and job leases hold
 * exactly across workers. Two things are answered here without a call: the usage reports
 * (metrics, web view) from a copy fetched again when it changed, never used for a decision; and
 * whether a client is blocked by the login throttle, from the blocks the primary pushes to every
 * worker when one starts (a block always starts in the primary, which tells every worker before
 * it answers the worker that started it).
 */
import { LoginThrottle, defaultThrottleOptions } from '../../auth/throttle.ts';
import { RatchetError } from '../../errors.ts';
import { MemoryUsageStore } from '../../usage/usage-store.ts';
import type {
  Full,
  Hold,
  RepoUsage,
  Reserved,
  ScopeKey,
  UsageChange,
  UsageStore,
} from '../../usage/usage-store.ts';
import type { BucketStore, TakeResult } from '../bucket-store.ts';
import type { JobLease } from '../job-lease.ts';
import type { FailureRecord, ThrottleStore } from '../throttle-store.ts';
import type { PrimaryLink } from './primary-link.ts';

interface Snapshot {
  readonly version: number;
  readonly counted: boolean;
  readonly repos: readonly (readonly [string, RepoUsage])[];
}

/** How often the reports' copy is checked for changes (one small call when nothing changed). */
const reportRefreshMs = 1000;

/** The usage store of a worker: decisions in the primary, reports from a copy. */
export class LinkedUsageStore implements UsageStore {
  readonly #link: PrimaryLink;
  #copy = new MemoryUsageStore();
  #version = -1;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #again = false;

  constructor(link: PrimaryLink) {
    this.#link = link;
  }

  start(): void {
    this.#timer = setInterval(() => this.#refresh(), reportRefreshMs).unref();
    this.#refresh();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  get(repo: string): RepoUsage | undefined {
    return this.#copy.get(repo);
  }

  repos(): Iterable<[string, RepoUsage]> {
    return this.#copy.repos();
  }

  used(scope: ScopeKey): number {
    return this.#copy.used(scope);
  }

  assertReachable(): void {
    if (this.#link.closed) throw new RatchetError('UNAVAILABLE', 'the shared state of this server is gone');
  }

  counted(): Promise<boolean> {
    return this.#call('counted');
  }

  startCount(): Promise<string> {
    return this.#call('startCount');
  }

  markCounted(token: string): Promise<void> {
    return this.#changed(this.#call('markCounted', token));
  }

  clock(): Promise<number> {
    return this.#call('clock');
  }

  knows(repo: string): Promise<boolean> {
    return this.#call('knows', repo);
  }

  add(repo: string, change: UsageChange): Promise<void> {
    return this.#changed(this.#call('add', repo, change));
  }

  replace(repo: string, usage: RepoUsage, since: number): Promise<boolean> {
    return this.#changed(this.#call('replace', repo, usage, since));
  }

  forget(repo: string, since: number): Promise<boolean> {
    return this.#changed(this.#call('forget', repo, since));
  }

  async full(holds: readonly Hold[], amount: number): Promise<Full | undefined> {
    return (await this.#call<Full | null>('full', holds, amount)) ?? undefined;
  }

  reserve(holds: readonly Hold[], amount: number): Promise<Reserved> {
    return this.#call('reserve', holds, amount);
  }

  release(ids: readonly string[]): Promise<void> {
    return this.#call('release', ids);
  }

  settle(ids: readonly string[], repo: string, change: UsageChange | undefined): Promise<void> {
    return this.#changed(this.#call('settle', ids, repo, change));
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.#link.call<T>('usage', method, args);
  }

  /** After a change of this worker's, its reports show it as soon as the copy is fetched. */
  async #changed<T>(answer: Promise<T>): Promise<T> {
    const value = await answer;
    this.#refresh();
    return value;
  }

  /** Fetches the copy if it changed; a refresh asked for during one runs once more after it. */
  #refresh(): void {
    if (this.#refreshing !== undefined) {
      this.#again = true;
      return;
    }
    this.#refreshing = this.#link
      .call<Snapshot | undefined>('usage', 'snapshot', [this.#version])
      .then(
        (snapshot) => {
          if (snapshot === undefined || snapshot === null) return;
          const copy = new MemoryUsageStore();
          for (const [repo, usage] of snapshot.repos) copy.replace(repo, usage, 0);
          if (snapshot.counted) copy.markCounted();
          this.#copy = copy;
          this.#version = snapshot.version;
        },
        () => undefined, // the next tick tries again
      )
      .finally(() => {
        this.#refreshing = undefined;
        if (this.#again) {
          this.#again = false;
          this.#refresh();
        }
      });
  }
}

/** One table of the login throttle: counting in the primary, blocks from the pushed copy. */
class LinkedThrottleStore implements ThrottleStore<false> {
  readonly #link: PrimaryLink;
  readonly #table: string;
  readonly #blocked = new Map<string, number>();

  constructor(link: PrimaryLink, table: string) {
    this.#link = link;
    this.#table = table;
    link.onBlocks((blocks) => {
      for (const { table: name, key, until } of blocks) {
        if (name !== table) continue;
        if (until > 0) this.#blocked.set(key, until);
        else this.#blocked.delete(key);
      }
      // Bounded as the primary's table is: blocks that ended are dropped.
      if (this.#blocked.size > defaultThrottleOptions.maxEntries) {
        const now = Date.now();
        for (const [key, until] of this.#blocked) if (until <= now) this.#blocked.delete(key);
      }
    });
  }

  fail(key: string, now: number, windowMs: number): Promise<FailureRecord> {
    return this.#call('fail', key, now, windowMs);
  }

  block(key: string, now: number, until: number, seenBlocks: number, windowMs: number): Promise<boolean> {
    return this.#call('block', key, now, until, seenBlocks, windowMs);
  }

  failures(key: string, now: number, windowMs: number): Promise<number> {
    return this.#call('failures', key, now, windowMs);
  }

  blockedUntil(key: string, now: number): Promise<number> {
    const until = this.#blocked.get(key) ?? 0;
    if (until !== 0 && until <= now) this.#blocked.delete(key);
    return Promise.resolve(until > now ? until : 0);
  }

  clear(key: string): Promise<void> {
    return this.#call('clear', key);
  }

  size(): Promise<number> {
    return this.#call('size');
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.#link.call<T>('throttle', method, [this.#table, ...args]);
  }
}

/** The login throttle of a worker: one throttle for every worker. */
export function linkedLoginThrottle(link: PrimaryLink): LoginThrottle<false> {
  return new LoginThrottle<false>(
    {},
    {
      addresses: new LinkedThrottleStore(link, 'addresses'),
      pairs: new LinkedThrottleStore(link, 'pairs'),
      users: new LinkedThrottleStore(link, 'users'),
    },
  );
}

/** The rate limit buckets of a worker, kept in the primary. */
export class LinkedBucketStore implements BucketStore<false> {
  readonly #link: PrimaryLink;

  constructor(link: PrimaryLink) {
    this.#link = link;
  }

  take(key: string, cost: number, rate: number, burst: number, now: number): Promise<TakeResult> {
    return this.#link.call('buckets', 'take', [key, cost, rate, burst, now]);
  }

  borrow(key: string, cost: number, rate: number, burst: number, now: number): Promise<number> {
    return this.#link.call('buckets', 'borrow', [key, cost, rate, burst, now]);
  }

  clear(): Promise<void> {
    return this.#link.call('buckets', 'clear');
  }
}

/** Job leases among the workers, kept in the primary (a dead worker's are freed at once). */
export class LinkedJobLease implements JobLease {
  readonly #link: PrimaryLink;

  constructor(link: PrimaryLink) {
    this.#link = link;
  }

  async holds(job: string, ttlMs: number): Promise<boolean> {
    // The primary out of reach: nobody can prove they hold the lease, so nobody runs the pass.
    return this.#link.call<boolean>('lease', 'holds', [job, ttlMs]).catch(() => false);
  }

  async releaseAll(): Promise<void> {
    await this.#link.call('lease', 'releaseAll').catch(() => undefined);
  }
}
