/**
 * Per-user request rate and bandwidth limits (the seed chose nginx partly for its rate
 * limiting). A request over the rate gets 429 with Retry-After; bandwidth limits slow a
 * transfer down to the user's rate, shared by all of the user's transfers, and never fail it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RatchetError } from '../errors.ts';
import { andThen } from '../state/awaitable.ts';
import type { Answer } from '../state/awaitable.ts';
import type { BucketStore } from '../state/bucket-store.ts';
import { MemoryBucketStore } from '../state/memory-bucket-store.ts';

export interface LimitRule {
  /** User names, or ['*'] for every user (anonymous requests count as the user ''). */
  readonly users: readonly string[];
  readonly requestsPerSecond?: number | undefined;
  /** Requests allowed at once above the steady rate (default: one second's worth). */
  readonly burst?: number | undefined;
  readonly uploadBytesPerSecond?: number | undefined;
  readonly downloadBytesPerSecond?: number | undefined;
}

/** A bucket of one user's: its key in the store and its rule. */
interface BucketRule {
  readonly key: string;
  readonly rate: number;
  readonly burst: number;
}

interface UserBuckets {
  readonly requests: BucketRule | undefined;
  readonly upload: BucketRule | undefined;
  readonly download: BucketRule | undefined;
}

// Bandwidth is metered in slices of at most this many bytes, so a large chunk waits in steps.
const sliceBytes = 64 * 1024;

/**
 * Applies the rules; the buckets themselves live in a BucketStore (default: this process's
 * memory, where every answer comes at once; a shared store answers with promises).
 */
export class UserLimits<Sync extends boolean = true> {
  #rules: readonly LimitRule[];
  /** Each user's buckets, resolved from the rules once. */
  #resolved = new Map<string, UserBuckets>();
  readonly #store: BucketStore;

  constructor(rules: readonly LimitRule[]);
  constructor(rules: readonly LimitRule[], store: BucketStore<Sync>);
  constructor(rules: readonly LimitRule[], store?: BucketStore<Sync>) {
    this.#rules = rules;
    this.#store = store ?? new MemoryBucketStore();
  }

  /** True when any rule is configured (the pipeline skips all of this otherwise). */
  get active(): boolean {
    return this.#rules.length > 0;
  }

  /** Replaces the rules (configuration reload); buckets start afresh. */
  update(rules: readonly LimitRule[]): Answer<Sync, void> {
    this.#rules = rules;
    this.#resolved = new Map();
    return this.#store.clear() as Answer<Sync, void>;
  }

  /** Counts a request against the user's rate; TOO_MANY_REQUESTS with Retry-After when over it. */
  admit(user: string | undefined): Answer<Sync, void> {
    const bucket = this.#bucketsFor(user).requests;
    if (bucket === undefined) return undefined as Answer<Sync, void>;
    const taken = this.#store.take(bucket.key, 1, bucket.rate, bucket.burst, Date.now());
    return andThen(taken, ({ allowed, waitMs }) => {
      if (allowed) return;
      throw new RatchetError('TOO_MANY_REQUESTS', 'request rate limit reached, slow down', {
        headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
      });
    }) as Answer<Sync, void>;
  }

  /** Paces an upload body to the user's upload bandwidth. */
  paceUpload(user: string | undefined, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    const bucket = this.#bucketsFor(user).upload;
    return bucket === undefined ? body : paced(body, this.#store, bucket);
  }

  /** Paces a download stream to the user's download bandwidth. */
  paceDownload(user: string | undefined, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    const bucket = this.#bucketsFor(user).download;
    return bucket === undefined ? body : paced(body, this.#store, bucket);
  }

  #bucketsFor(user: string | undefined): UserBuckets {
    const name = user ?? '';
    let buckets = this.#resolved.get(name);
    if (buckets === undefined) {
      const rule =
        this.#rules.find((r) => r.users.includes(name)) ?? this.#rules.find((r) => r.users.includes('*'));
      // User names cannot contain NUL (the header parser refuses it), so the keys are unambiguous.
      const bucket = (kind: string, rate: number | undefined, burst: number): BucketRule | undefined =>
        rate === undefined ? undefined : { key: `${kind}\u0000${name}`, rate, burst };
      const bandwidth = (kind: string, rate: number | undefined): BucketRule | undefined =>
        bucket(kind, rate, Math.max((rate ?? 0) / 10, sliceBytes));
      const requests = rule?.requestsPerSecond;
      buckets = {
        requests: bucket('requests', requests, rule?.burst ?? requests ?? 0),
        upload: bandwidth('upload', rule?.uploadBytesPerSecond),
        download: bandwidth('download', rule?.downloadBytesPerSecond),
      };
      this.#resolved.set(name, buckets);
    }
    return buckets;
  }
}

async function* paced(
  body: AsyncIterable<Uint8Array>,
  store: BucketStore,
  bucket: BucketRule,
): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    for (let offset = 0; offset < chunk.length; offset += sliceBytes) {
      const slice = chunk.subarray(offset, offset + sliceBytes);
      const waitMs = await store.borrow(bucket.key, slice.length, bucket.rate, bucket.burst, Date.now());
      if (waitMs > 0) await sleep(waitMs);
      yield slice;
    }
  }
}
