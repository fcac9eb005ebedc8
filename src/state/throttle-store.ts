/**
 * Where the login throttle keeps its failure counters: one store per table (client addresses,
 * address and user pairs, user names). The store counts and remembers; the throttle decides
 * when to block and for how long. Each operation is one atomic step, so a shared store can do
 * it as one script (Redis: a Lua script per operation, with the entry's expiry as its TTL).
 */
import type { Answer } from './awaitable.ts';

/** A key's counter as it stands after an operation. */
export interface FailureRecord {
  /** Failures counted in the current window. */
  readonly failures: number;
  /** When the current block ends (0 or past: not blocked). */
  readonly blockedUntil: number;
  /** Consecutive blocks so far (the throttle doubles the block length with each). */
  readonly blocks: number;
}

/**
 * One table of failure counters. Times are milliseconds since the epoch, always passed in by
 * the caller: a store treats an entry as gone once `now` is past its expiry (the later of the
 * window's start and the block's end, plus `windowMs`), whatever its own clock says.
 */
export interface ThrottleStore<Sync extends boolean = boolean> {
  /**
   * Counts one failure for the key. A window of `windowMs` opens at the first failure counted;
   * a failure after the window has passed starts a new one at a count of 1.
   */
  fail(key: string, now: number, windowMs: number): Answer<Sync, FailureRecord>;
  /**
   * Blocks the key until `until` if its block count is still `seenBlocks` (otherwise another
   * caller blocked it meanwhile and nothing changes): the count of blocks goes up by one and a
   * new window of failures opens at `now`. True when this call started the block.
   */
  block(key: string, now: number, until: number, seenBlocks: number, windowMs: number): Answer<Sync, boolean>;
  /** Failures counted in the key's current window (0: none, or the window has passed). */
  failures(key: string, now: number, windowMs: number): Answer<Sync, number>;
  /** When the key's block ends (0: never blocked or expired). */
  blockedUntil(key: string, now: number): Answer<Sync, number>;
  /** Forgets the key (a successful login). */
  clear(key: string): Answer<Sync, void>;
  /** Entries held, expired ones not yet dropped included (for metrics and tests). */
  size(): Answer<Sync, number>;
}
