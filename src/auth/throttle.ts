/**
 * Failed-login throttling.
 *
 * Failures are counted in three tables, each count over a window of `windowMs` that opens at the
 * first failure counted:
 *
 * - per client address (IPv6 by /64): `maxFailuresPerAddress` failures, whatever the
 *   user names, block the address. This stops one client guessing many users' passwords.
 * - per (address, user): `maxFailuresPerPair` failures block that user from that
 *   address only. A success clears it, so a mistyped password costs nothing afterwards.
 * - per user, across addresses: never blocks by itself, because then anyone could lock a user
 *   out (restic hosts would stop backing up). Instead, once a user collects `userAlertFailures`
 *   failures in the window (a distributed guess), the per-pair limit for that user drops to one:
 *   each attacking address gets one guess per block, while an address that has not failed for
 *   that user, as a restic host with the right password, still logs in at once.
 *
 * A block lasts `blockMs`, doubling with each consecutive block of the same key up to
 * `maxBlockMs`; blocked requests are refused before any password is checked, even a right one
 * (otherwise the block would still answer guesses). Every table is an LRU map capped at
 * `maxEntries`, and idle entries expire, so memory stays bounded under any flood. Unknown user
 * names are counted like known ones, so the throttle does not reveal which users exist.
 */
export interface ThrottleOptions {
  readonly windowMs: number;
  readonly maxFailuresPerAddress: number;
  readonly maxFailuresPerPair: number;
  readonly userAlertFailures: number;
  readonly blockMs: number;
  readonly maxBlockMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

export const defaultThrottleOptions: ThrottleOptions = {
  windowMs: 10 * 60_000,
  maxFailuresPerAddress: 20,
  maxFailuresPerPair: 5,
  userAlertFailures: 20,
  blockMs: 60_000,
  maxBlockMs: 15 * 60_000,
  maxEntries: 10_000,
  now: Date.now,
};

/** A block that a failure has just started: what is blocked and for how long. */
export interface ThrottleBlock {
  readonly scope: 'address' | 'address+user';
  readonly seconds: number;
}

interface Entry {
  failures: number;
  windowStart: number;
  blockedUntil: number;
  /** Consecutive blocks, for the doubling. */
  blocks: number;
}

/** An LRU map of failure counters whose idle entries expire. */
class CounterTable {
  readonly #entries = new Map<string, Entry>();
  readonly #options: ThrottleOptions;

  constructor(options: ThrottleOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The live entry for the key, if any (expired entries are dropped). */
  peek(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && this.#expired(entry, now)) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Counts one failure and returns the entry. */
  fail(key: string, now: number): Entry {
    let entry = this.peek(key, now);
    if (entry) {
      this.#entries.delete(key);
    } else {
      entry = { failures: 0, windowStart: now, blockedUntil: 0, blocks: 0 };
    }
    if (now - entry.windowStart > this.#options.windowMs) {
      entry.failures = 0;
      entry.windowStart = now;
    }
    entry.failures++;
    // Re-inserting keeps the map in least-recently-failed order for eviction and expiry.
    this.#entries.set(key, entry);
    this.#prune(now);
    return entry;
  }

  /** Starts a block (doubling per consecutive block) and returns its length in milliseconds. */
  block(entry: Entry, now: number): number {
    const ms = Math.min(this.#options.blockMs * 2 ** Math.min(entry.blocks, 30), this.#options.maxBlockMs);
    entry.blockedUntil = now + ms;
    entry.blocks++;
    entry.failures = 0;
    entry.windowStart = now;
    return ms;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  #expired(entry: Entry, now: number): boolean {
    return now > Math.max(entry.windowStart, entry.blockedUntil) + this.#options.windowMs;
  }

  #prune(now: number): void {
    // Oldest first: drop expired entries, then the least recently failed beyond the cap.
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size > this.#options.maxEntries || this.#expired(entry, now))
        this.#entries.delete(key);
      else break;
    }
  }
}

/** Counts failed logins and decides when a client must wait. */
export class LoginThrottle {
  readonly #options: ThrottleOptions;
  readonly #addresses: CounterTable;
  readonly #pairs: CounterTable;
  readonly #users: CounterTable;

  constructor(options: Partial<ThrottleOptions> = {}) {
    this.#options = { ...defaultThrottleOptions, ...options };
    this.#addresses = new CounterTable(this.#options);
    this.#pairs = new CounterTable(this.#options);
    this.#users = new CounterTable(this.#options);
  }

  /** Seconds the client must wait before trying this user (0: go ahead). */
  retryAfter(address: string, user: string | undefined): number {
    const now = this.#options.now();
    let until = this.#addresses.peek(address, now)?.blockedUntil ?? 0;
    if (user !== undefined)
      until = Math.max(until, this.#pairs.peek(pairKey(address, user), now)?.blockedUntil ?? 0);
    return until > now ? Math.ceil((until - now) / 1000) : 0;
  }

  /** Records a failed login (user undefined: malformed credentials); returns a block it started. */
  recordFailure(address: string, user: string | undefined): ThrottleBlock | undefined {
    const now = this.#options.now();
    let started: ThrottleBlock | undefined;
    const byAddress = this.#addresses.fail(address, now);
    if (byAddress.failures >= this.#options.maxFailuresPerAddress) {
      started = { scope: 'address', seconds: Math.ceil(this.#addresses.block(byAddress, now) / 1000) };
    }
    if (user === undefined) return started;
    const byUser = this.#users.fail(user, now);
    const pairLimit =
      byUser.failures >= this.#options.userAlertFailures ? 1 : this.#options.maxFailuresPerPair;
    const byPair = this.#pairs.fail(pairKey(address, user), now);
    if (byPair.failures >= pairLimit) {
      const seconds = Math.ceil(this.#pairs.block(byPair, now) / 1000);
      started ??= { scope: 'address+user', seconds };
    }
    return started;
  }

  /** Records a successful login: the user's failures from this address are forgiven. */
  recordSuccess(address: string, user: string): void {
    this.#pairs.delete(pairKey(address, user));
  }

  /** How many entries each table holds (for metrics and tests). */
  sizes(): { addresses: number; pairs: number; users: number } {
    return { addresses: this.#addresses.size, pairs: this.#pairs.size, users: this.#users.size };
  }
}

function pairKey(address: string, user: string): string {
  // User names cannot contain NUL (the header parser refuses it), so the key is unambiguous.
  return `${address}\u0000${user}`;
}
