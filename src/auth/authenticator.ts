/**
 * Checks Basic credentials against the current htpasswd users, with a verified-credential cache,
 * failed-login throttling, and the same cost for unknown users as for wrong passwords.
 */
import type { Logger } from 'pino';
import { RatchetError } from '../errors.ts';
import { clientKey, parseBasicAuthorization } from './basic-credentials.ts';
import { CredentialCache } from './credential-cache.ts';
import { CryptWorker } from './crypt-worker.ts';
import { LoginThrottle } from './throttle.ts';
import type { ThrottleOptions } from './throttle.ts';
import { checkHash, decoyBcryptHash, decoyHashLike, verifyPassword } from './verifiers.ts';
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
}

export const defaultCacheTtlMs = 5 * 60_000;
const defaultDecoyBcryptCost = 10;

/** Runs at most `max` tasks at once, with a bounded queue. */
class Limiter {
  #active = 0;
  readonly #queue: (() => void)[] = [];
  readonly #max: number;
  readonly #maxQueued: number;

  constructor(max: number, maxQueued: number) {
    this.#max = Math.max(1, max);
    this.#maxQueued = maxQueued;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active < this.#max) {
      this.#active++;
    } else {
      if (this.#queue.length >= this.#maxQueued)
        throw new RatchetError('TOO_MANY_REQUESTS', 'too many logins in progress', {
          headers: { 'Retry-After': '1' },
        });
      // The finishing task hands its slot over, so #active stays counted.
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

/** Verifies Basic credentials against a set of users that can be replaced at any time. */
export class Authenticator {
  readonly #logger: Logger;
  readonly #challenge: string;
  readonly #cache: CredentialCache;
  readonly #throttle: LoginThrottle<boolean>;
  readonly #limiter: Limiter;
  readonly #engine: CryptEngine;
  readonly #ownedWorker: CryptWorker | undefined;
  readonly #inFlight = new Map<string, Promise<boolean>>();
  #users = new Map<string, string>();
  #decoy = decoyBcryptHash(defaultDecoyBcryptCost);
  #checks = 0;
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
    this.#limiter = new Limiter(options.maxConcurrentChecks ?? 2, options.maxQueuedChecks ?? 100);
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
  }

  /**
   * The user name the Authorization header proves. Throws RatchetError UNAUTHORIZED (with
   * WWW-Authenticate) for missing, malformed or wrong credentials and unknown users alike, and
   * TOO_MANY_REQUESTS (with Retry-After) while the client is throttled.
   */
  async authenticate(authorization: string | undefined, remoteAddress: string | undefined): Promise<string> {
    if (authorization === undefined || authorization === '')
      throw this.#unauthorized('authentication required');
    const address = clientKey(remoteAddress);
    const credentials = parseBasicAuthorization(authorization);
    const wait = await this.#throttle.retryAfter(address, credentials?.user);
    if (wait > 0) {
      this.#throttled++;
      throw new RatchetError('TOO_MANY_REQUESTS', 'too many failed logins; try again later', {
        headers: { 'Retry-After': String(wait) },
      });
    }
    if (credentials === undefined) {
      await this.#fail(address, undefined, remoteAddress);
      throw this.#unauthorized('malformed credentials');
    }
    const { user, password } = credentials;
    const hash = this.#users.get(user);
    const key = this.#cache.keyOf(user, password);
    if (hash !== undefined && this.#cache.has(key, hash)) {
      this.#cacheHits++;
      await this.#throttle.recordSuccess(address, user);
      return user;
    }
    // An unknown user is checked against a decoy of the common scheme and cost, so the answer
    // takes as long as a wrong password for a real user.
    const ok = await this.#check(key, password, hash ?? this.#decoy);
    // The users may have been reloaded meanwhile: only the hash still in force counts.
    if (ok && hash !== undefined && this.#users.get(user) === hash) {
      this.#cache.add(key, user, hash);
      await this.#throttle.recordSuccess(address, user);
      return user;
    }
    await this.#fail(address, user, remoteAddress);
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
    };
  }

  /** Stops the crypt worker this authenticator started. */
  async close(): Promise<void> {
    this.#cache.clear();
    await this.#ownedWorker?.close();
  }

  /** Checks a password, sharing the work between identical concurrent requests (restic opens several). */
  #check(key: string, password: string, hash: string): Promise<boolean> {
    const flightKey = `${key}\u0000${hash}`;
    const running = this.#inFlight.get(flightKey);
    if (running) return running;
    const check = this.#limiter
      .run(() => {
        this.#checks++;
        return verifyPassword(password, hash, this.#engine);
      })
      .finally(() => this.#inFlight.delete(flightKey));
    this.#inFlight.set(flightKey, check);
    return check;
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

/** A decoy hash like the most common scheme and cost among the users (bcrypt 10 when none). */
function decoyFor(users: ReadonlyMap<string, string>): string {
  const counts = new Map<string, { count: number; hash: string }>();
  for (const hash of users.values()) {
    const check = checkHash(hash);
    if (!check.ok) continue;
    const group = counts.get(check.costKey);
    if (group) group.count++;
    else counts.set(check.costKey, { count: 1, hash });
  }
  let best: { count: number; hash: string } | undefined;
  for (const group of counts.values()) if (!best || group.count > best.count) best = group;
  return best ? decoyHashLike(best.hash) : decoyBcryptHash(defaultDecoyBcryptCost);
}
