/**
 * Per-user request rate and bandwidth limits (the seed chose nginx partly for its rate
 * limiting). A request over the rate gets 429 with Retry-After; bandwidth limits slow a
 * transfer down to the user's rate, shared by all of the user's transfers, and never fail it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RatchetError } from '../errors.ts';
import { TokenBucket } from './token-bucket.ts';

export interface LimitRule {
  /** User names, or ['*'] for every user (anonymous requests count as the user ''). */
  readonly users: readonly string[];
  readonly requestsPerSecond?: number | undefined;
  /** Requests allowed at once above the steady rate (default: one second's worth). */
  readonly burst?: number | undefined;
  readonly uploadBytesPerSecond?: number | undefined;
  readonly downloadBytesPerSecond?: number | undefined;
}

interface UserBuckets {
  readonly requests: TokenBucket | undefined;
  readonly upload: TokenBucket | undefined;
  readonly download: TokenBucket | undefined;
}

// Bandwidth is metered in slices of at most this many bytes, so a large chunk waits in steps.
const sliceBytes = 64 * 1024;

export class UserLimits {
  private rules: readonly LimitRule[];
  private buckets = new Map<string, UserBuckets>();

  constructor(rules: readonly LimitRule[]) {
    this.rules = rules;
  }

  /** True when any rule is configured (the pipeline skips all of this otherwise). */
  get active(): boolean {
    return this.rules.length > 0;
  }

  /** Replaces the rules (configuration reload); buckets start afresh. */
  update(rules: readonly LimitRule[]): void {
    this.rules = rules;
    this.buckets = new Map();
  }

  /** Counts a request against the user's rate; TOO_MANY_REQUESTS with Retry-After when over it. */
  admit(user: string | undefined): void {
    const bucket = this.bucketsFor(user).requests;
    if (bucket === undefined) return;
    const wait = bucket.tryTake(1);
    if (wait > 0) {
      throw new RatchetError('TOO_MANY_REQUESTS', 'request rate limit reached, slow down', {
        headers: { 'Retry-After': String(Math.max(1, Math.ceil(wait))) },
      });
    }
  }

  /** Paces an upload body to the user's upload bandwidth. */
  paceUpload(user: string | undefined, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    const bucket = this.bucketsFor(user).upload;
    return bucket === undefined ? body : paced(body, bucket);
  }

  /** Paces a download stream to the user's download bandwidth. */
  paceDownload(user: string | undefined, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    const bucket = this.bucketsFor(user).download;
    return bucket === undefined ? body : paced(body, bucket);
  }

  private bucketsFor(user: string | undefined): UserBuckets {
    const name = user ?? '';
    let buckets = this.buckets.get(name);
    if (buckets === undefined) {
      const rule =
        this.rules.find((r) => r.users.includes(name)) ?? this.rules.find((r) => r.users.includes('*'));
      const bandwidth = (rate: number | undefined): TokenBucket | undefined =>
        rate === undefined ? undefined : new TokenBucket(rate, Math.max(rate / 10, sliceBytes));
      buckets = {
        requests:
          rule?.requestsPerSecond === undefined
            ? undefined
            : new TokenBucket(rule.requestsPerSecond, rule.burst ?? rule.requestsPerSecond),
        upload: bandwidth(rule?.uploadBytesPerSecond),
        download: bandwidth(rule?.downloadBytesPerSecond),
      };
      this.buckets.set(name, buckets);
    }
    return buckets;
  }
}

async function* paced(body: AsyncIterable<Uint8Array>, bucket: TokenBucket): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    for (let offset = 0; offset < chunk.length; offset += sliceBytes) {
      const slice = chunk.subarray(offset, offset + sliceBytes);
      const waitMs = bucket.takeWithDebt(slice.length);
      if (waitMs > 0) await sleep(waitMs);
      yield slice;
    }
  }
}
