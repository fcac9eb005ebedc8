/**
 * Checks Basic credentials against the current htpasswd users, with a verified-credential cache,
 * failed-login throttling, a check queue no client can fill, and failures that take as long for
 * unknown users and cheap hashes as for the costliest hash (timing.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { hasCode, RatchetError } from '../errors.ts';
import { clientKey, parseBasicAuthorization } from './basic-credentials.ts';
import { CheckQueue } from './check-queue.ts';
import { CredentialCache } from './credential-cache.ts';
import { CryptWorker } from './crypt-worker.ts';
import { LoginThrottle } from './throttle.ts';
import type { ThrottleOptions } from './throttle.ts';
import { decoyFor, failurePaddingMs, slowestHash } from './timing.ts';
import { checkHash, decoyHashLike, verifyPassword } from './verifiers.ts';
import type { CryptEngine } from './verifiers.ts';

export interface AuthenticatorOptions {
  readonly logger: Logger;
  /** The realm in `WWW-Authenticate` (default `restic`). */
  readonly realm?: string;
  /** How long a verified credential is trusted before it is checked again (default 5 minutes). */
  readonly cacheTtlMs?: number;
  /** How many verified credentials are remembered (default 1000). */
  readonly cacheMaxEntries?: number;
  /** A throttle to share (its stores may be shared ones), or options for a new in-memory one. */
  readonly throttle?: LoginThrottle<boolean> | Partial<ThrottleOptions>;
  /** Password checks running at once (default 2), so logins never take all of libuv's threads. */
  readonly maxConcurrentChecks?: number;
  /** Checks allowed to wait for a slot (default 100); beyond, 429 with Retry-After: 1. */
  readonly maxQueuedChecks?: number;
  /** Checks one client address, or one user name, may have waiting (default 4); beyond, 429. */
  readonly maxQueuedChecksPerClient?: number;
  /** Where SHA-crypt and MD5-crypt run (default: a worker thread owned by the authenticator). */
  readonly cryptEngine?: CryptEngine;
  readonly now?: () => number;
}

/** Counters for metrics and tests. */
export interface AuthenticatorStats {
  readonly users: number;
  /** Password hashes computed (cache misses, including decoy checks for unknown users). */
  readonly checks: number;
  readonly cacheHits: number;
  readonly failures: number;
  readonly throttled: number;
  readonly cachedCredentials: number;
  /** Password checks waiting for a slot. */
  readonly waitingChecks: number;
  /** Failed checks answered later than they finished, to take as long as the slowest hash. */
  readonly padded: number;
  /** The measured duration of the slowest hash's check in ms (undefined until measured). */
  readonly slowestCheckMs: number | undefined;
}

export const defaultCacheTtlMs = 5 * 60_000;

/** The costliest hash's kind and its check's latest measured duration. */
interface SlowestHash {
  readonly costKey: string;
  ms: number | undefined;
  /** Settles once the first measurement is in. */
  measured: Promise<void>;
}

/** Verifies Basic credentials against a set of users that can be replaced at any time. */
export class Authenticator {
  readonly #logger: Logger;
  readonly #challenge: string;
  readonly #cache: CredentialCache;
  readonly #throttle: LoginThrottle<boolean>;
  readonly #queue: CheckQueue;
  readonly #engine: CryptEngine;
  readonly #ownedWorker: CryptWorker | undefined;
  readonly #inFlight = new Map<string, Promise<boolean>>();
  #users = new Map<string, string>();
  #decoy = decoyFor(new Map());
  /** The costliest hash among the users and its measured check duration (see timing.ts). */
  #slowest: SlowestHash | undefined;
  #checks = 0;
  #padded = 0;
  #cacheHits = 0;
  #failures = 0;
  #throttled = 0;

  constructor(options: AuthenticatorOptions) {
    const now = options.now ?? Date.now;
    this.#logger = options.logger;
    this.#challenge = `Basic realm="${(options.realm ?? 'restic').replace(/["\\]/g, '')}"`;
    this.#cache = new CredentialCache({
      ttlMs: options.cacheTtlMs ?? defaultCacheTtlMs,
      maxEntries: options.cacheMaxEntries ?? 1000,
      now,
    });
    this.#throttle =
      options.throttle instanceof LoginThrottle
        ? options.throttle
        : new LoginThrottle({ now, ...options.throttle });
    this.#queue = new CheckQueue({
      maxRunning: options.maxConcurrentChecks ?? 2,
      maxQueued: options.maxQueuedChecks ?? 100,
      maxQueuedPerOwner: options.maxQueuedChecksPerClient ?? 4,
    });
    if (options.cryptEngine) {
      this.#engine = options.cryptEngine;
    } else {
      this.#ownedWorker = new CryptWorker();
      this.#engine = this.#ownedWorker;
    }
  }

  /** The number of users that can log in. */
  get userCount(): number {
    return this.#users.size;
  }

  /** Replaces the users (name → hash); cached credentials of changed or removed users are dropped. */
  setUsers(users: ReadonlyMap<string, string>): void {
    const next = new Map(users);
    this.#users = next;
    this.#cache.retain(next);
    this.#decoy = decoyFor(next);
    this.#measureSlowest(next);
  }

  /**
   * The user name the Authorization header proves. Throws RatchetError UNAUTHORIZED (with
   * WWW-Authenticate) for missing, malformed or wrong credentials and unknown users alike, and
   * TOO_MANY_REQUESTS (with Retry-After) while the client is throttled.
   */
  async authenticate(authorization: string | undefined, remoteAddress: string | undefined): Promise<string> {
    if (authorization === undefined || authorization === '')
      throw this.#unauthorized('authentication required');
    const started = performance.now();
    const address = clientKey(remoteAddress);
    const credentials = parseBasicAuthorization(authorization);
    let wait: number;
    try {
      wait = await this.#throttle.retryAfter(address, credentials?.user);
    } catch (err) {
      // A shared throttle that cannot answer (Redis away) fails closed, except for credentials
      // this instance verified already: answering those lets no one guess a password.
      if (credentials === undefined || !hasCode(err, 'UNAVAILABLE')) throw err;
      const { user, password } = credentials;
      if (!this.#cached(user, this.#cache.keyOf(user, password))) throw err;
      this.#cacheHits++;
      return user;
    }
    this.#refuseWhileWaiting(wait);
    if (credentials === undefined) {
      await this.#fail(address, undefined, remoteAddress);
      throw this.#unauthorized('malformed credentials');
    }
    const { user, password } = credentials;
    const key = this.#cache.keyOf(user, password);
    // An unknown user is checked against a decoy of the common scheme and cost.
    const target = this.#users.get(user) ?? this.#decoy;
    // Identical concurrent requests (restic opens several) share one attempt: one check, one count.
    const flightKey = `${key}\u0000${target}`;
    let attempt = this.#inFlight.get(flightKey);
    if (attempt === undefined) {
      attempt = this.#attempt(address, remoteAddress, user, password, key).finally(() =>
        this.#inFlight.delete(flightKey),
      );
      this.#inFlight.set(flightKey, attempt);
    }
    if (await attempt) return user;
    await this.#pad(started);
    throw this.#unauthorized('invalid credentials');
  }

  /** Counters for metrics and tests. */
  stats(): AuthenticatorStats {
    return {
      users: this.#users.size,
      checks: this.#checks,
      cacheHits: this.#cacheHits,
      failures: this.#failures,
      throttled: this.#throttled,
      cachedCredentials: this.#cache.size,
      waitingChecks: this.#queue.waiting,
      padded: this.#padded,
      slowestCheckMs: this.#slowest?.ms,
    };
  }

  /** Stops the crypt worker this authenticator started. */
  async close(): Promise<void> {
    this.#cache.clear();
    await this.#ownedWorker?.close();
  }

  /**
   * One login attempt: answered from the cache, or counted by the throttle from its start (so a
   * burst cannot have more guesses checked than the limits allow), checked in the queue and
   * recorded as a success or failure. True when the password is right for the user's current hash.
   */
  async #attempt(
    address: string,
    remoteAddress: string | undefined,
    user: string,
    password: string,
    key: string,
  ): Promise<boolean> {
    // Verified before (and not blocked: authenticate asked): no guess, so nothing to count or
    // clear. With a shared throttle this keeps a cached login to one round trip to the store.
    if (this.#cached(user, key)) {
      this.#cacheHits++;
      return true;
    }
    const hash = this.#users.get(user);
    this.#refuseWhileWaiting(await this.#throttle.begin(address, user));
    try {
      const target = hash ?? this.#decoy;
      const ok = await this.#queue.run([`address ${address}`, `user ${user}`], async () => {
        this.#checks++;
        const started = performance.now();
        const matches = await verifyPassword(password, target, this.#engine);
        this.#measured(target, performance.now() - started);
        return matches;
      });
      // The users may have been reloaded meanwhile: only the hash still in force counts.
      if (ok && hash !== undefined && this.#users.get(user) === hash) {
        this.#cache.add(key, user, hash);
        await this.#throttle.recordSuccess(address, user);
        return true;
      }
      await this.#fail(address, user, remoteAddress);
      return false;
    } finally {
      this.#throttle.finish(address, user);
    }
  }

  /** True when the credential (its cache key) was verified against the user's current hash. */
  #cached(user: string, key: string): boolean {
    const hash = this.#users.get(user);
    return hash !== undefined && this.#cache.has(key, hash);
  }

  /** Throws 429 with Retry-After when the throttle says to wait. */
  #refuseWhileWaiting(wait: number): void {
    if (wait <= 0) return;
    this.#throttled++;
    throw new RatchetError('TOO_MANY_REQUESTS', 'too many failed logins; try again later', {
      headers: { 'Retry-After': String(wait) },
    });
  }

  /** Measures the costliest hash's check once, off the queue, with a decoy of its parameters. */
  #measureSlowest(users: ReadonlyMap<string, string>): void {
    const slowest = slowestHash(users);
    if (slowest === undefined || slowest.costKey === this.#slowest?.costKey) {
      if (slowest === undefined) this.#slowest = undefined;
      return;
    }
    const decoy = decoyHashLike(slowest.hash);
    const entry: SlowestHash = {
      costKey: slowest.costKey,
      ms: undefined,
      measured: Promise.resolve(),
    };
    this.#slowest = entry;
    const started = performance.now();
    entry.measured = verifyPassword('', decoy, this.#engine).then(
      () => this.#measured(decoy, performance.now() - started),
      (err: unknown) => this.#logger.error({ err }, 'measuring the slowest password hash failed'),
    );
  }

  /** Keeps the latest duration of a check of the costliest hash's kind, the padding's target. */
  #measured(hash: string, ms: number): void {
    const slowest = this.#slowest;
    const check = checkHash(hash);
    if (slowest !== undefined && check.ok && check.costKey === slowest.costKey) slowest.ms = ms;
  }

  /** Waits until a failed login started at `started` has taken as long as the slowest hash. */
  async #pad(started: number): Promise<void> {
    await this.#slowest?.measured;
    const ms = failurePaddingMs(this.#slowest?.ms, performance.now() - started);
    if (ms <= 0) return;
    this.#padded++;
    await sleep(ms);
  }

  async #fail(address: string, user: string | undefined, remoteAddress: string | undefined): Promise<void> {
    this.#failures++;
    const block = await this.#throttle.recordFailure(address, user);
    // The user name is logged (to spot attacks); the password and header never are.
    this.#logger.info({ user, client: remoteAddress }, 'login failed');
    if (block)
      this.#logger.warn(
        { user: block.scope === 'address' ? undefined : user, client: remoteAddress, seconds: block.seconds },
        block.scope === 'address'
          ? 'too many failed logins from this address: blocked'
          : 'too many failed logins for this user from this address: blocked',
      );
  }

  #unauthorized(message: string): RatchetError {
    return new RatchetError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': this.#challenge } });
  }
}
