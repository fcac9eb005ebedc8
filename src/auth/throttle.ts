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
 * Attempts count when they start: a password check may begin only while the failures counted
 * plus the checks still running (in flight, in this process) stay below each limit, so no burst
 * of concurrent requests gets more guesses checked than the limits allow; the others get 429.
 *
 * A block lasts `blockMs`, doubling with each consecutive block of the same key up to
 * `maxBlockMs`; blocked requests are refused before any password is checked, even a right one
 * (otherwise the block would still answer guesses). Idle entries expire after the window, and
 * the in-memory tables (the default stores) are LRU maps capped at `maxEntries`, so memory stays
 * bounded under any flood. Unknown user names are counted like known ones, so the throttle does
 * not reveal which users exist. The counters live in ThrottleStores (src/state/), which count;
 * the decisions (when to block, for how long) are made here.
 */
import { Counts } from '../util/counts.ts';
import { andThen, whenAll } from '../state/awaitable.ts';
import type { Answer, Awaitable } from '../state/awaitable.ts';
import { MemoryThrottleStore } from '../state/memory-throttle-store.ts';
import type { ThrottleStore } from '../state/throttle-store.ts';

export interface ThrottleOptions {
  readonly windowMs: number;
  readonly maxFailuresPerAddress: number;
  readonly maxFailuresPerPair: number;
  readonly userAlertFailures: number;
  readonly blockMs: number;
  readonly maxBlockMs: number;
  /** Entries per table in the in-memory stores. */
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

/** Where each table's counters live (default: this process's memory). */
export interface ThrottleStores<Sync extends boolean = boolean> {
  readonly addresses: ThrottleStore<Sync>;
  readonly pairs: ThrottleStore<Sync>;
  readonly users: ThrottleStore<Sync>;
}

/**
 * Counts failed logins and decides when a client must wait. With in-memory stores (the
 * default) every method answers at once; with a shared store, with a promise.
 */
export class LoginThrottle<Sync extends boolean = true> {
  readonly #options: ThrottleOptions;
  readonly #stores: ThrottleStores;
  /** Checks begun and not yet finished, per address and per pair (this process only). */
  readonly #running = { addresses: new Counts(), pairs: new Counts() };

  constructor(options?: Partial<ThrottleOptions>);
  constructor(options: Partial<ThrottleOptions>, stores: ThrottleStores<Sync>);
  constructor(options: Partial<ThrottleOptions> = {}, stores?: ThrottleStores<Sync>) {
    this.#options = { ...defaultThrottleOptions, ...options };
    const { maxEntries } = this.#options;
    this.#stores = stores ?? {
      addresses: new MemoryThrottleStore(maxEntries),
      pairs: new MemoryThrottleStore(maxEntries),
      users: new MemoryThrottleStore(maxEntries),
    };
  }

  /** Seconds the client must wait before trying this user (0: go ahead). */
  retryAfter(address: string, user: string | undefined): Answer<Sync, number> {
    const now = this.#options.now();
    const until = [this.#stores.addresses.blockedUntil(address, now)];
    if (user !== undefined) until.push(this.#stores.pairs.blockedUntil(pairKey(address, user), now));
    return whenAll(until, (ends) => {
      const end = Math.max(...ends);
      return end > now ? Math.ceil((end - now) / 1000) : 0;
    }) as Answer<Sync, number>;
  }

  /**
   * Asks to begin a password check for the user from the address: seconds to wait (a block, or
   * the limits already taken by failures and checks in flight), or 0, and the check then counts
   * against the limits until `finish` (call it once the outcome is recorded).
   */
  begin(address: string, user: string): Answer<Sync, number> {
    const now = this.#options.now();
    const { windowMs, maxFailuresPerAddress, maxFailuresPerPair, userAlertFailures } = this.#options;
    const { addresses, pairs, users } = this.#stores;
    const pair = pairKey(address, user);
    const reads = [
      addresses.failures(address, now, windowMs),
      pairs.failures(pair, now, windowMs),
      users.failures(user, now, windowMs),
    ];
    return andThen(this.retryAfter(address, user), (wait) =>
      wait > 0
        ? wait
        : whenAll(reads, ([byAddress = 0, byPair = 0, byUser = 0]) => {
            const pairLimit = byUser >= userAlertFailures ? 1 : maxFailuresPerPair;
            const running = this.#running;
            if (
              byAddress + running.addresses.get(address) >= maxFailuresPerAddress ||
              byPair + running.pairs.get(pair) >= pairLimit
            )
              return 1;
            running.addresses.add(address, 1);
            running.pairs.add(pair, 1);
            return 0;
          }),
    ) as Answer<Sync, number>;
  }

  /** Ends a check that `begin` let start. */
  finish(address: string, user: string): void {
    this.#running.addresses.add(address, -1);
    this.#running.pairs.add(pairKey(address, user), -1);
  }

  /** Records a failed login (user undefined: malformed credentials); answers a block it started. */
  recordFailure(address: string, user: string | undefined): Answer<Sync, ThrottleBlock | undefined> {
    const now = this.#options.now();
    const { addresses, pairs, users } = this.#stores;
    const { maxFailuresPerAddress, maxFailuresPerPair, userAlertFailures, windowMs } = this.#options;
    return andThen(this.#count(addresses, address, maxFailuresPerAddress, now), (addressMs) => {
      const started = blockOf('address', addressMs);
      if (user === undefined) return started;
      return andThen(users.fail(user, now, windowMs), (byUser) => {
        const pairLimit = byUser.failures >= userAlertFailures ? 1 : maxFailuresPerPair;
        return andThen(
          this.#count(pairs, pairKey(address, user), pairLimit, now),
          (pairMs) => started ?? blockOf('address+user', pairMs),
        );
      });
    }) as Answer<Sync, ThrottleBlock | undefined>;
  }

  /** Records a successful login: the user's failures from this address are forgiven. */
  recordSuccess(address: string, user: string): Answer<Sync, void> {
    return this.#stores.pairs.clear(pairKey(address, user)) as Answer<Sync, void>;
  }

  /** How many entries each table holds (for metrics and tests). */
  sizes(): Answer<Sync, { addresses: number; pairs: number; users: number }> {
    const { addresses, pairs, users } = this.#stores;
    return whenAll([addresses.size(), pairs.size(), users.size()], ([a = 0, p = 0, u = 0]) => ({
      addresses: a,
      pairs: p,
      users: u,
    })) as Answer<Sync, { addresses: number; pairs: number; users: number }>;
  }

  /**
   * Counts a failure for the key and, once it reaches `limit`, starts a block (doubling per
   * consecutive block up to maxBlockMs); answers the block's length in ms when this call started one.
   */
  #count(store: ThrottleStore, key: string, limit: number, now: number): Awaitable<number | undefined> {
    const { blockMs, maxBlockMs, windowMs } = this.#options;
    return andThen(store.fail(key, now, windowMs), (record) => {
      if (record.failures < limit) return undefined;
      const ms = Math.min(blockMs * 2 ** Math.min(record.blocks, 30), maxBlockMs);
      return andThen(store.block(key, now, now + ms, record.blocks, windowMs), (started) =>
        started ? ms : undefined,
      );
    });
  }
}

function blockOf(scope: ThrottleBlock['scope'], ms: number | undefined): ThrottleBlock | undefined {
  return ms === undefined ? undefined : { scope, seconds: Math.ceil(ms / 1000) };
}

function pairKey(address: string, user: string): string {
  // User names cannot contain NUL (the header parser refuses it), so the key is unambiguous.
  return `${address}\u0000${user}`;
}
