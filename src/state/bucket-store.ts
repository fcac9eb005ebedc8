/**
 * Where the per-user rate and bandwidth limits keep their token buckets. A bucket holds at most
 * `burst` tokens and refills at `rate` tokens per second; a missing bucket is a full one. Each
 * operation is one atomic step (Redis: one Lua script), so concurrent callers, in one process
 * or several, never take more than the bucket holds. The rates come with every call, so the
 * store keeps no configuration and user-limits.ts keeps the pacing.
 */
import type { Answer } from './awaitable.ts';

/** The outcome of a take: granted, or how long until the tokens will be there. */
export interface TakeResult {
  readonly allowed: boolean;
  /** Milliseconds until `cost` tokens will be there (0 when allowed). */
  readonly waitMs: number;
}

/** Token buckets by key; times are milliseconds since the epoch, passed in by the caller. */
export interface BucketStore<Sync extends boolean = boolean> {
  /** Takes `cost` tokens if they are there; otherwise takes nothing and says how long to wait. */
  take(key: string, cost: number, rate: number, burst: number, now: number): Answer<Sync, TakeResult>;
  /**
   * Takes `cost` tokens now, going into debt if need be; answers the milliseconds until the
   * debt is repaid (0: none), which the caller waits before going on.
   */
  borrow(key: string, cost: number, rate: number, burst: number, now: number): Answer<Sync, number>;
  /** Forgets every bucket (the rules were reloaded): all start full again. */
  clear(): Answer<Sync, void>;
}
