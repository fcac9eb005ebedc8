/**
 * The state stores' contract, run against every implementation: in this process's memory and in
 * a real redis-server (--state). The login throttle's counters and the rate limits' token
 * buckets must answer alike, and the shared ones must stay exact under concurrent callers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BucketStore } from '../../src/state/bucket-store.ts';
import { MemoryBucketStore } from '../../src/state/memory-bucket-store.ts';
import { MemoryThrottleStore } from '../../src/state/memory-throttle-store.ts';
import { soleInstance } from '../../src/state/job-lease.ts';
import { RedisBucketStore } from '../../src/state/redis/redis-bucket-store.ts';
import { RedisJobLease } from '../../src/state/redis/redis-job-lease.ts';
import { RedisThrottleStore } from '../../src/state/redis/redis-throttle-store.ts';
import type { ThrottleStore } from '../../src/state/throttle-store.ts';
import { useRedis } from '../helpers/redis.ts';

const redisFixture = useRedis();

let tables = 0;
const throttleStores: [string, (maxEntries: number) => ThrottleStore][] = [
  ['memory', (maxEntries) => new MemoryThrottleStore(maxEntries)],
  ['redis', (maxEntries) => new RedisThrottleStore(redisFixture.state.client, `t${++tables}`, maxEntries)],
];
const bucketStores: [string, () => BucketStore][] = [
  ['memory', () => new MemoryBucketStore()],
  ['redis', () => new RedisBucketStore(redisFixture.state.client)],
];

const windowMs = 60_000;
const t0 = 1_800_000_000_000;

for (const [kind, make] of throttleStores) {
  describe(`throttle store (${kind})`, () => {
    it('counts failures in a window, and starts a new window once it has passed', async () => {
      const store = make(100);
      assert.equal((await store.fail('a', t0, windowMs)).failures, 1);
      assert.equal((await store.fail('a', t0 + 1000, windowMs)).failures, 2);
      assert.equal(await store.failures('a', t0 + 2000, windowMs), 2);
      assert.equal(await store.failures('b', t0, windowMs), 0, 'another key is untouched');
      assert.equal((await store.fail('a', t0 + windowMs + 1, windowMs)).failures, 1, 'a new window');
    });

    it('blocks once per seen block count, and the entry expires after the block and a window', async () => {
      const store = make(100);
      const record = await store.fail('k', t0, windowMs);
      assert.equal(record.blocks, 0);
      assert.equal(await store.block('k', t0, t0 + 5000, 0, windowMs), true);
      assert.equal(
        await store.block('k', t0, t0 + 9000, 0, windowMs),
        false,
        'a stale count changes nothing',
      );
      assert.equal(await store.blockedUntil('k', t0 + 1), t0 + 5000);
      assert.equal(await store.failures('k', t0 + 1, windowMs), 0, 'a block opens a new window');
      const next = await store.fail('k', t0 + 6000, windowMs);
      assert.deepEqual(next, { failures: 1, blockedUntil: t0 + 5000, blocks: 1 });
      const gone = t0 + 6000 + windowMs + 1;
      assert.equal(await store.blockedUntil('k', gone), 0);
      assert.equal(await store.failures('k', gone, windowMs), 0);
      assert.equal(await store.block('k', gone, gone + 1, 1, windowMs), false, 'an expired entry is gone');
    });

    it('forgets a cleared key', async () => {
      const store = make(100);
      await store.fail('c', t0, windowMs);
      await store.clear('c');
      assert.equal(await store.failures('c', t0, windowMs), 0);
    });

    it('keeps at most maxEntries, dropping the oldest', async () => {
      const store = make(3);
      for (let i = 0; i < 5; i++) await store.fail(`key${i}`, Date.now() + i, windowMs);
      assert.equal(await store.size(), 3);
      assert.equal(await store.failures('key0', Date.now(), windowMs), 0, 'the oldest was dropped');
      assert.equal(await store.failures('key4', Date.now() + 4, windowMs), 1);
    });

    it('counts concurrent failures exactly', async () => {
      const store = make(100);
      await Promise.all(Array.from({ length: 40 }, () => Promise.resolve(store.fail('race', t0, windowMs))));
      assert.equal(await store.failures('race', t0, windowMs), 40);
    });
  });
}

for (const [kind, make] of bucketStores) {
  describe(`bucket store (${kind})`, () => {
    it('grants up to the burst, then says how long to wait, and refills at the rate', async () => {
      const store = make();
      const key = `b-${kind}-${Date.now()}`;
      for (let i = 0; i < 5; i++) assert.equal((await store.take(key, 1, 10, 5, t0)).allowed, true);
      const refused = await store.take(key, 1, 10, 5, t0);
      assert.equal(refused.allowed, false);
      assert.ok(Math.abs(refused.waitMs - 100) < 1, `100 ms for one token at 10/s, got ${refused.waitMs}`);
      assert.equal((await store.take(key, 1, 10, 5, t0 + 100)).allowed, true, 'refilled after 100 ms');
    });

    it('borrows into debt and says how long until it is repaid', async () => {
      const store = make();
      const key = `d-${kind}-${Date.now()}`;
      assert.equal(await store.borrow(key, 3, 10, 5, t0), 0);
      const wait = await store.borrow(key, 7, 10, 5, t0);
      assert.ok(Math.abs(wait - 500) < 1, `5 tokens of debt at 10/s: 500 ms, got ${wait}`);
    });

    it('starts full again after clear', async () => {
      const store = make();
      const key = `c-${kind}-${Date.now()}`;
      await store.take(key, 5, 1, 5, t0);
      assert.equal((await store.take(key, 1, 1, 5, t0)).allowed, false);
      await store.clear();
      assert.equal((await store.take(key, 5, 1, 5, t0)).allowed, true);
    });

    it('never grants more than the bucket holds to concurrent callers', async () => {
      const store = make();
      const key = `r-${kind}-${Date.now()}`;
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => Promise.resolve(store.take(key, 1, 0.001, 10, t0))),
      );
      assert.equal(answers.filter((answer) => answer.allowed).length, 10);
    });
  });
}

describe('job leases in redis', () => {
  it('one instance holds a job; the other takes it over when it expires or is released', async () => {
    const first = new RedisJobLease(redisFixture.state.client, 'leases');
    const second = new RedisJobLease(redisFixture.state.client, 'leases');
    const job = `job-${Date.now()}`;
    assert.equal(await first.holds(job, 300), true);
    assert.equal(await second.holds(job, 300), false, 'held by the first');
    assert.equal(await first.holds(job, 300), true, 'renewed by its holder');
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(await second.holds(job, 60_000), true, 'taken over after the TTL');
    assert.equal(await first.holds(job, 300), false);
    await second.releaseAll();
    assert.equal(await first.holds(job, 300), true, 'free again after a release');
    await first.releaseAll();
  });

  it('holds every job alone in one process, and none while redis-server is down', async () => {
    assert.equal(await soleInstance.holds('anything', 1), true);
    const lease = new RedisJobLease(redisFixture.state.client, 'leases');
    await redisFixture.server.stop();
    try {
      assert.equal(await lease.holds('outage-job', 1000), false);
    } finally {
      await redisFixture.server.start();
    }
  });
});

describe('redis state connection', () => {
  it('answers 503 while redis-server is down, and reconnects on its own', async () => {
    const store = new RedisThrottleStore(redisFixture.state.client, 'outage', 10);
    await redisFixture.server.stop();
    try {
      await assert.rejects(store.fail('x', t0, windowMs), { code: 'UNAVAILABLE' });
      await assert.rejects(redisFixture.state.probe(), { code: 'UNAVAILABLE' });
    } finally {
      await redisFixture.server.start();
    }
    const deadline = Date.now() + 10_000;
    while (!redisFixture.state.ready() && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(redisFixture.state.ready(), 'reconnected');
    assert.equal((await store.fail('x', t0, windowMs)).failures, 1);
  });
});
