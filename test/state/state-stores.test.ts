/**
 * The Redis state stores (--state) on a real redis-server: the login throttle's counters and the
 * rate limits' token buckets pass the contract the in-memory stores pass, exact under concurrent
 * callers; then what only Redis has: the entry cap, job leases and outages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { soleInstance } from '../../src/state/job-lease.ts';
import { RedisBucketStore } from '../../src/state/redis/redis-bucket-store.ts';
import { RedisJobLease } from '../../src/state/redis/redis-job-lease.ts';
import { RedisThrottleStore } from '../../src/state/redis/redis-throttle-store.ts';
import { useRedis } from '../helpers/redis.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { bucketStoreConformance, throttleStoreConformance } from '../helpers/state-conformance.ts';

const redisFixture = useRedis();

let tables = 0;
const redisThrottle = (maxEntries: number): RedisThrottleStore =>
  new RedisThrottleStore(redisFixture.state.client, `t${++tables}`, maxEntries);

// The same contract the in-memory stores pass (test/unit/state-stores.test.ts).
throttleStoreConformance('redis', { open: () => redisThrottle(10_000) });
bucketStoreConformance('redis', { open: () => new RedisBucketStore(redisFixture.state.client) });

const windowMs = 60_000;
const t0 = 1_800_000_000_000;

describe('throttle store in redis', () => {
  it('keeps at most maxEntries, dropping the oldest', async () => {
    const store = redisThrottle(3);
    for (let i = 0; i < 5; i++) await store.fail(`key${i}`, Date.now() + i, windowMs);
    assert.equal(await store.size(), 3);
    assert.equal(await store.failures('key0', Date.now(), windowMs), 0, 'the oldest was dropped');
    assert.equal(await store.failures('key4', Date.now() + 4, windowMs), 1);
  });
});

describe('job leases in redis', () => {
  it('one instance holds a job; the other takes it over when it expires or is released', async () => {
    const first = new RedisJobLease(redisFixture.state.client, 'leases');
    const second = new RedisJobLease(redisFixture.state.client, 'leases');
    const job = `job-${Date.now()}`;
    assert.equal(await first.holds(job, 300), true);
    assert.equal(await second.holds(job, 300), false, 'held by the first');
    assert.equal(await first.holds(job, 300), true, 'renewed by its holder');
    await sleep(400);
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
    await waitFor(() => redisFixture.state.ready(), 'the connection to come back');
    assert.equal((await store.fail('x', t0, windowMs)).failures, 1);
  });
});
