/**
 * The state stores behind the login throttle and the per-user limits: the conformance suites
 * run against the in-memory stores, as they are and answering through promises on later turns
 * of the event loop (as a shared store does), and the throttle, the authenticator and the
 * limits make the same decisions through stores that answer later.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { basicAuthorization } from '../../src/auth/basic-credentials.ts';
import { CryptWorker } from '../../src/auth/crypt-worker.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { LoginThrottle } from '../../src/auth/throttle.ts';
import type { ThrottleStores } from '../../src/auth/throttle.ts';
import { RatchetError } from '../../src/errors.ts';
import { UserLimits } from '../../src/limits/user-limits.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { BucketStore } from '../../src/state/bucket-store.ts';
import { MemoryBucketStore } from '../../src/state/memory-bucket-store.ts';
import { MemoryThrottleStore } from '../../src/state/memory-throttle-store.ts';
import type { ThrottleStore } from '../../src/state/throttle-store.ts';
import { bucketStoreConformance, throttleStoreConformance } from '../helpers/state-conformance.ts';

/** A store whose every operation runs on a later turn of the event loop and answers a promise. */
type Later<Store> = {
  [K in keyof Store]: Store[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : never;
};

function later<Store extends object>(store: Store, methods: readonly (keyof Store & string)[]): Later<Store> {
  const wrapped: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const method of methods) {
    const run = (store[method] as (...args: unknown[]) => unknown).bind(store);
    wrapped[method] = (...args: unknown[]) => setImmediatePromise().then(() => run(...args));
  }
  return wrapped as Later<Store>;
}

const laterThrottleStore = (): ThrottleStore<false> =>
  later(new MemoryThrottleStore(10_000), ['fail', 'failures', 'block', 'blockedUntil', 'clear', 'size']);
const laterBucketStore = (): BucketStore<false> =>
  later(new MemoryBucketStore(), ['take', 'borrow', 'clear']);
const laterThrottleStores = (): ThrottleStores<false> => ({
  addresses: laterThrottleStore(),
  pairs: laterThrottleStore(),
  users: laterThrottleStore(),
});

throttleStoreConformance('memory', { open: () => new MemoryThrottleStore(10_000) });
throttleStoreConformance('memory, answering later', { open: laterThrottleStore });
bucketStoreConformance('memory', { open: () => new MemoryBucketStore() });
bucketStoreConformance('memory, answering later', { open: laterBucketStore });

describe('decisions through stores that answer later', () => {
  it('the throttle blocks, doubles and forgives as with memory stores', async () => {
    const clock = { now: 1_000_000 };
    const throttle = new LoginThrottle({ now: () => clock.now, maxBlockMs: 200_000 }, laterThrottleStores());
    for (let i = 0; i < 4; i++) assert.equal(await throttle.recordFailure('a', 'alice'), undefined);
    assert.deepEqual(await throttle.recordFailure('a', 'alice'), { scope: 'address+user', seconds: 60 });
    assert.equal(await throttle.retryAfter('a', 'alice'), 60);
    assert.equal(await throttle.retryAfter('b', 'alice'), 0);
    clock.now += 60_000;
    for (let i = 0; i < 4; i++) await throttle.recordFailure('a', 'alice');
    assert.deepEqual(await throttle.recordFailure('a', 'alice'), { scope: 'address+user', seconds: 120 });
    clock.now += 120_000;
    await throttle.recordSuccess('a', 'alice');
    for (let i = 0; i < 4; i++) assert.equal(await throttle.recordFailure('a', 'alice'), undefined);
    assert.deepEqual(await throttle.sizes(), { addresses: 1, pairs: 1, users: 1 });
  });

  it('racing failures start one block, not one per racer', async () => {
    const throttle = new LoginThrottle({ now: () => 1_000_000 }, laterThrottleStores());
    const blocks = await Promise.all(Array.from({ length: 10 }, () => throttle.recordFailure('a', 'alice')));
    assert.deepEqual(
      blocks.filter((block) => block !== undefined),
      [{ scope: 'address+user', seconds: 60 }],
    );
    assert.equal(await throttle.retryAfter('a', 'alice'), 60);
  });

  it('the authenticator refuses a blocked client', async () => {
    const worker = new CryptWorker();
    const authenticator = new Authenticator({
      logger: silentLogger(),
      cryptEngine: worker,
      throttle: new LoginThrottle({}, laterThrottleStores()),
    });
    after(async () => {
      await authenticator.close();
      await worker.close();
    });
    authenticator.setUsers(new Map([['alice', await hashPassword('alice-secret', 4)]]));
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      codes.push(
        await authenticator.authenticate(basicAuthorization('alice', `guess${i}`), '192.0.2.1').then(
          () => 'OK',
          (err: RatchetError) => err.code,
        ),
      );
    }
    assert.deepEqual(codes, [...Array<string>(5).fill('UNAUTHORIZED'), 'TOO_MANY_REQUESTS']);
    assert.equal(
      await authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), '192.0.2.2'),
      'alice',
    );
  });

  it('the rate limit admits the burst of concurrent requests and refuses the rest with 429', async () => {
    const limits = new UserLimits([{ users: ['*'], requestsPerSecond: 0.001, burst: 3 }], laterBucketStore());
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => limits.admit('alice')));
    assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 3);
    for (const outcome of outcomes)
      if (outcome.status === 'rejected') {
        assert.ok(outcome.reason instanceof RatchetError);
        assert.equal(outcome.reason.code, 'TOO_MANY_REQUESTS');
        assert.match(outcome.reason.headers['Retry-After'] ?? '', /^[1-9]\d*$/);
      }
    await limits.admit('bob');
  });

  it('bandwidth pacing waits for the store and passes every byte through', async () => {
    const limits = new UserLimits([{ users: ['*'], uploadBytesPerSecond: 1 << 20 }], laterBucketStore());
    const parts = Array.from({ length: 8 }, (_, i) => Buffer.alloc(64 * 1024, i));
    async function* body(): AsyncIterable<Uint8Array> {
      for (const part of parts) {
        await Promise.resolve();
        yield part;
      }
    }
    const started = Date.now();
    const chunks: Uint8Array[] = [];
    for await (const chunk of limits.paceUpload('alice', body())) chunks.push(chunk);
    const elapsed = Date.now() - started;
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat(parts));
    // 512 KiB at 1 MiB/s, less the 100 KiB the full bucket holds: 0.4 s (a third of it unpaced).
    assert.ok(elapsed >= 350, `took ${elapsed} ms`);
  });
});
