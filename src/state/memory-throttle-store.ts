/**
 * The in-process throttle store: an LRU map capped at `maxEntries` whose idle entries expire,
 * so memory stays bounded under any flood of addresses or names.
 */
import type { FailureRecord, ThrottleStore } from './throttle-store.ts';

interface Entry {
  failures: number;
  windowStart: number;
  blockedUntil: number;
  blocks: number;
  expiresAt: number;
}

/** Failure counters in this process's memory. */
export class MemoryThrottleStore implements ThrottleStore<true> {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** Counts one failure for the key (see ThrottleStore). */
  fail(key: string, now: number, windowMs: number): FailureRecord {
    let entry = this.#live(key, now);
    if (entry) {
      this.#entries.delete(key);
    } else {
      entry = { failures: 0, windowStart: now, blockedUntil: 0, blocks: 0, expiresAt: 0 };
    }
    if (now - entry.windowStart > windowMs) {
      entry.failures = 0;
      entry.windowStart = now;
    }
    entry.failures++;
    entry.expiresAt = Math.max(entry.windowStart, entry.blockedUntil) + windowMs;
    // Re-inserting keeps the map in least-recently-failed order for eviction and expiry.
    this.#entries.set(key, entry);
    this.#prune(now);
    return { failures: entry.failures, blockedUntil: entry.blockedUntil, blocks: entry.blocks };
  }

  /** Blocks the key if no one else has since `seenBlocks` (see ThrottleStore). */
  block(key: string, now: number, until: number, seenBlocks: number, windowMs: number): boolean {
    const entry = this.#live(key, now);
    if (entry === undefined || entry.blocks !== seenBlocks) return false;
    entry.blockedUntil = until;
    entry.blocks++;
    entry.failures = 0;
    entry.windowStart = now;
    entry.expiresAt = Math.max(now, until) + windowMs;
    return true;
  }

  /** Failures in the key's current window (see ThrottleStore). */
  failures(key: string, now: number, windowMs: number): number {
    const entry = this.#live(key, now);
    return entry === undefined || now - entry.windowStart > windowMs ? 0 : entry.failures;
  }

  /** When the key's block ends (0: none). */
  blockedUntil(key: string, now: number): number {
    return this.#live(key, now)?.blockedUntil ?? 0;
  }

  /** Forgets the key. */
  clear(key: string): void {
    this.#entries.delete(key);
  }

  /** Entries held. */
  size(): number {
    return this.#entries.size;
  }

  /** The key's entry unless it has expired (an expired one is dropped). */
  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined && now > entry.expiresAt) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #prune(now: number): void {
    // Oldest first: drop expired entries, then the least recently failed beyond the cap.
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size > this.#maxEntries || now > entry.expiresAt) this.#entries.delete(key);
      else break;
    }
  }
}
