/** The in-process bucket store: one token count per key, refilled when the key is next used. */
import type { BucketStore, TakeResult } from './bucket-store.ts';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

const granted: TakeResult = { allowed: true, waitMs: 0 };

/** Token buckets in this process's memory. */
export class MemoryBucketStore implements BucketStore<true> {
  #buckets = new Map<string, Bucket>();

  /** Takes the tokens if they are there (see BucketStore). */
  take(key: string, cost: number, rate: number, burst: number, now: number): TakeResult {
    const bucket = this.#refilled(key, rate, burst, now);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return granted;
    }
    return { allowed: false, waitMs: ((cost - bucket.tokens) / rate) * 1000 };
  }

  /** Takes the tokens, going into debt if need be (see BucketStore). */
  borrow(key: string, cost: number, rate: number, burst: number, now: number): number {
    const bucket = this.#refilled(key, rate, burst, now);
    bucket.tokens -= cost;
    return bucket.tokens >= 0 ? 0 : (-bucket.tokens / rate) * 1000;
  }

  /** Forgets every bucket. */
  clear(): void {
    this.#buckets = new Map();
  }

  #refilled(key: string, rate: number, burst: number, now: number): Bucket {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, updatedAt: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate);
      bucket.updatedAt = now;
    }
    return bucket;
  }
}
