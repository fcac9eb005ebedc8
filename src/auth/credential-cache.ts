/**
 * Remembers recently verified credentials, so restic's credentials on every request do not each
 * cost a bcrypt check (~80 ms here). No password is kept: the key is an HMAC of user and password
 * under a random key that lives only in this process, so the table is useless to a memory dump
 * and its lookup time says nothing about the password. An entry holds the hash it was verified
 * against and counts only while the user still has that hash, so a changed password or a
 * removed user takes effect at the next reload. Entries expire a fixed time after verification
 * (not after last use), so every credential is re-checked at least that often.
 */
import { createHmac, randomBytes } from 'node:crypto';

interface CacheEntry {
  readonly user: string;
  readonly hash: string;
  readonly expiresAt: number;
}

export interface CredentialCacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

/** A bounded, expiring set of verified (user, password) pairs, keyed by HMAC. */
export class CredentialCache {
  readonly #secret = randomBytes(32);
  readonly #entries = new Map<string, CacheEntry>();
  readonly #options: CredentialCacheOptions;

  constructor(options: CredentialCacheOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cache key of a credential pair. */
  keyOf(user: string, password: string): string {
    // User names never contain NUL, so user + NUL + password is unambiguous.
    return createHmac('sha256', this.#secret).update(`${user}\u0000${password}`, 'utf8').digest('base64');
  }

  /** True when the key was verified against exactly this hash and has not expired. */
  has(key: string, hash: string): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    if (entry.hash !== hash || entry.expiresAt <= this.#options.now()) {
      this.#entries.delete(key);
      return false;
    }
    return true;
  }

  /** Records a successful verification. */
  add(key: string, user: string, hash: string): void {
    if (this.#options.ttlMs <= 0 || this.#options.maxEntries <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { user, hash, expiresAt: this.#options.now() + this.#options.ttlMs });
    // Insertion order is expiry order (fixed TTL): drop expired entries, then the oldest over the cap.
    const now = this.#options.now();
    for (const [oldKey, entry] of this.#entries) {
      if (this.#entries.size > this.#options.maxEntries || entry.expiresAt <= now)
        this.#entries.delete(oldKey);
      else break;
    }
  }

  /** Drops the entries of users whose hash is no longer the one they were verified against. */
  retain(users: ReadonlyMap<string, string>): void {
    for (const [key, entry] of this.#entries) {
      if (users.get(entry.user) !== entry.hash) this.#entries.delete(key);
    }
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear();
  }
}
