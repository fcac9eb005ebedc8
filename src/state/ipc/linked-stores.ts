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
import type { BlockNotice } from './messages.ts';

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
    return this.#changed(this.#call('markCounted', token), () => this.#copy.markCounted());
  }

  clock(): Promise<number> {
    return this.#call('clock');
  }

  knows(repo: string): Promise<boolean> {
    return this.#call('knows', repo);
  }

  add(repo: string, change: UsageChange): Promise<void> {
    return this.#changed(this.#call('add', repo, change), () => this.#copy.add(repo, change));
  }

  replace(repo: string, usage: RepoUsage, since: number): Promise<boolean> {
    return this.#changed(this.#call<boolean>('replace', repo, usage, since), (done) => {
      if (done) this.#copy.replace(repo, usage, Infinity);
    });
  }

  forget(repo: string, since: number): Promise<boolean> {
    return this.#changed(this.#call<boolean>('forget', repo, since), (done) => {
      if (done) this.#copy.forget(repo, Infinity);
    });
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
    return this.#changed(this.#call('settle', ids, repo, change), () => {
      if (change !== undefined) this.#copy.add(repo, change);
    });
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.#link.call<T>('usage', method, args);
  }

  /**
   * After a change of this worker's: its reports show it at once (applied to the copy), and the
   * copy is fetched again for what other workers changed meanwhile.
   */
  async #changed<T>(answer: Promise<T>, applyHere: (value: T) => void): Promise<T> {
    const value = await answer;
    applyHere(value);
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
export class LinkedThrottleStore implements ThrottleStore<false> {
  readonly #link: PrimaryLink;
  readonly #table: string;
  readonly #blocked = new Map<string, { until: number; expires: number }>();

  constructor(link: PrimaryLink, table: string) {
    this.#link = link;
    this.#table = table;
    link.onBlocks((blocks) => {
      for (const { table: name, key, until, expires } of blocks) {
        if (name !== table) continue;
        if (until > 0) this.#blocked.set(key, { until, expires });
        else this.#blocked.delete(key);
      }
      // Bounded as the primary's table is: entries past their expiry are dropped.
      if (this.#blocked.size > defaultThrottleOptions.maxEntries) {
        const now = Date.now();
        for (const [key, block] of this.#blocked) if (block.expires < now) this.#blocked.delete(key);
      }
    });
  }

  /**
   * Fetches the blocks in force. Every push sent before the answer arrives before it and is in
   * it; every later one arrives after it: the answer replaces the copy.
   */
  async load(): Promise<void> {
    const blocks = await this.#call<BlockNotice[]>('blocks');
    this.#blocked.clear();
    for (const { key, until, expires } of blocks) this.#blocked.set(key, { until, expires });
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

  /** From the copy the primary pushes: the same answer as its table (see ThrottleStore). */
  blockedUntil(key: string, now: number): Promise<number> {
    const block = this.#blocked.get(key);
    if (block === undefined) return Promise.resolve(0);
    if (block.expires >= now) return Promise.resolve(block.until);
    this.#blocked.delete(key);
    return Promise.resolve(0);
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

/** The login throttle of a worker, one for every worker, once it knows the blocks in force. */
export async function linkedLoginThrottle(link: PrimaryLink): Promise<LoginThrottle<false>> {
  const stores = {
    addresses: new LinkedThrottleStore(link, 'addresses'),
    pairs: new LinkedThrottleStore(link, 'pairs'),
    users: new LinkedThrottleStore(link, 'users'),
  };
  await Promise.all(Object.values(stores).map((store) => store.load()));
  return new LoginThrottle<false>({}, stores);
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
