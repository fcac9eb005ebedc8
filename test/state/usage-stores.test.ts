/**
 * The usage store's contract (quota holds, usage sums, change stamps), run against the in-memory
 * store, the Redis one on a real redis-server and a worker's store linked to a primary; then what only a shared store must do: holds of
 * several instances add up exactly under concurrent callers, a dead instance's holds expire, and
 * a Redis restart is seen as a lost count (decisions 503) while live holds come back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { RatchetError } from '../../src/errors.ts';
import { RedisUsageStore } from '../../src/state/redis/redis-usage-store.ts';
import { emptyUsage, MemoryUsageStore } from '../../src/usage/usage-store.ts';
import type { Hold, UsageStore } from '../../src/usage/usage-store.ts';
import { waitFor } from '../helpers/wait.ts';
import { LinkedUsageStore } from '../../src/state/ipc/linked-stores.ts';
import { linkTo, stateHost } from '../helpers/linked-state.ts';
import { useRedis } from '../helpers/redis.ts';

const redisFixture = useRedis();

const opened: RedisUsageStore[] = [];
after(async () => {
  await Promise.all(opened.map((store) => store.stop()));
});

/** A Redis store on a fresh namespace (or the given one: another instance of the same storage). */
function redisStore(namespace = randomUUID(), holdTtlMs = 1500): RedisUsageStore {
  const store = new RedisUsageStore(redisFixture.state.client, namespace, silentLogger(), {
    holdTtlMs,
    refreshMs: 60_000,
  });
  opened.push(store);
  return store;
}

const stores: [string, () => UsageStore][] = [
  ['memory', () => new MemoryUsageStore()],
  ['redis', () => redisStore()],
  // --workers: a worker's store, deciding in the primary's (here in this process, through JSON).
  ['linked to a primary', () => new LinkedUsageStore(linkTo(stateHost()).link)],
];

const total = (limit: number): Hold => ({ scope: 'total', limit });

for (const [kind, make] of stores) {
  describe(`usage store (${kind})`, () => {
    it('refuses decisions until the count is in', async () => {
      const store = make();
      assert.equal(await store.counted(), false);
      if (kind === 'redis') {
        await assert.rejects(Promise.resolve(store.reserve([total(10)], 1)), { code: 'UNAVAILABLE' });
      }
      await store.markCounted(await store.startCount());
      assert.equal(await store.counted(), true);
    });

    it('holds all scopes or none, names the full one with what it has left, and releases', async () => {
      const store = make();
      await store.markCounted(await store.startCount());
      await store.add('alice/laptop', { bytes: 60, type: 'data', objects: 1 });
      const scopes: Hold[] = [total(1000), { scope: 'user:alice', limit: 100 }];
      const first = await store.reserve(scopes, 30);
      assert.ok(first.id !== undefined);
      assert.deepEqual((await store.reserve(scopes, 11)).full, { scope: 'user:alice', left: 10 });
      assert.equal(await store.full(scopes, 10), undefined, '60 used + 30 held + 10 fits 100');
      // Nothing was held by the refused reservation: the total still has 1000 - 60 - 30 left.
      assert.deepEqual(await store.full([total(1000)], 911), { scope: 'total', left: 910 });
      await store.release([first.id]);
      await store.release([first.id]);
      assert.equal(await store.full(scopes, 40), undefined, 'released once, whatever the calls');
    });

    it('settles a hold into counted bytes in one step; trash counts in the total only', async () => {
      const store = make();
      await store.markCounted(await store.startCount());
      const scopes: Hold[] = [total(100), { scope: 'repo:bob/pc', limit: 100 }];
      const hold = await store.reserve(scopes, 70);
      assert.ok(hold.id !== undefined);
      await store.settle([hold.id], 'bob/pc', { bytes: 70, type: 'snapshots', objects: 1, snapshotMs: 5000 });
      assert.deepEqual(await store.full(scopes, 31), { scope: 'total', left: 30 });
      await store.add('bob/pc', {
        bytes: -20,
        type: 'snapshots',
        objects: -1,
        trashBytes: 20,
        trashObjects: 1,
      });
      assert.deepEqual(
        await store.full(scopes, 51),
        { scope: 'total', left: 30 },
        'the trash stays in the total',
      );
      assert.equal(await store.full([{ scope: 'repo:bob/pc', limit: 100 }], 50), undefined);
      assert.equal(await store.knows('bob/pc'), true);
      assert.equal(await store.knows('bob/other'), false);
      if (store instanceof RedisUsageStore) await store.refresh();
      assert.deepEqual(store.get('bob/pc'), {
        bytes: 50,
        objects: { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 },
        newestSnapshotMs: 5000,
        trashBytes: 20,
        trashObjects: 1,
      });
      assert.equal(store.used('user:bob'), 50);
      assert.equal(store.used('repos:bob'), 1);
      assert.equal(store.used('total'), 70);
    });

    it('a measurement that raced with a change does not replace it; forget is stamped too', async () => {
      const store = make();
      await store.markCounted(await store.startCount());
      const since = await store.clock();
      await store.add('carol/a', { bytes: 10, type: 'data', objects: 1 });
      const measured = { ...emptyUsage, bytes: 999 };
      assert.equal(await store.replace('carol/a', measured, since), false, 'raced: kept');
      assert.equal(await store.forget('carol/a', since), false, 'raced: kept');
      assert.equal(await store.replace('carol/a', measured, await store.clock()), true);
      assert.deepEqual(await store.full([{ scope: 'repo:carol/a', limit: 1000 }], 2), {
        scope: 'repo:carol/a',
        left: 1,
      });
      assert.equal(await store.forget('carol/a', await store.clock()), true);
      assert.equal(await store.knows('carol/a'), false);
      assert.equal(await store.full([total(1)], 1), undefined, 'the total fell with it');
    });
  });
}

describe('usage store shared by several instances (redis)', () => {
  it('never holds more than a limit for concurrent callers on two instances', async () => {
    const namespace = randomUUID();
    const a = redisStore(namespace);
    const b = redisStore(namespace);
    await a.markCounted(await a.startCount());
    const limit = 1000;
    const scopes: Hold[] = [total(limit), { scope: 'user:dave', limit: 5000 }];
    const asks = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).reserve(scopes, 7));
    const answers = await Promise.all(asks);
    const granted = answers.filter((answer) => answer.id !== undefined).length;
    assert.equal(granted, Math.floor(limit / 7), 'exactly as many as fit');
    // Settled as stored bytes, the room stays exactly as full.
    const settles: Promise<void>[] = [];
    answers.forEach((answer, i) => {
      if (answer.id !== undefined)
        settles.push((i % 2 === 0 ? a : b).settle([answer.id], 'dave/x', { bytes: 7 }));
    });
    await Promise.all(settles);
    assert.deepEqual(await b.full(scopes, 7), { scope: 'total', left: limit % 7 });
  });

  it("lets a dead instance's holds expire, and a live one's outlive heartbeats", async () => {
    const namespace = randomUUID();
    const dead = redisStore(namespace, 600);
    const live = redisStore(namespace, 600);
    live.start();
    await live.markCounted(await live.startCount());
    const scopes = [total(100)];
    assert.ok((await dead.reserve(scopes, 60)).id !== undefined);
    assert.ok((await live.reserve(scopes, 30)).id !== undefined);
    assert.deepEqual(await live.full(scopes, 11), { scope: 'total', left: 10 });
    // `dead` never beats: its hold is gone after its time to live; `live` keeps renewing its own.
    await waitFor(
      async () => (await live.full(scopes, 70)) === undefined,
      "the dead instance's hold to expire",
      5000,
    );
    assert.deepEqual(await live.full(scopes, 71), { scope: 'total', left: 70 });
  });

  it('sees a Redis restart as a lost count (503 until counted again) and puts live holds back', async () => {
    const namespace = randomUUID();
    const store = redisStore(namespace);
    await store.markCounted(await store.startCount());
    const held = await store.reserve([total(100)], 40);
    assert.ok(held.id !== undefined);
    const before = await store.startCount();
    await redisFixture.server.stop();
    await assert.rejects(Promise.resolve(store.reserve([total(100)], 1)), { code: 'UNAVAILABLE' });
    await redisFixture.server.start();
    await waitFor(() => redisFixture.state.ready(), 'the connection to come back');
    assert.equal(await store.counted(), false, 'a restarted Redis holds no count of this storage');
    const refused = await store.reserve([total(100)], 1).catch((err: unknown) => err);
    assert.ok(refused instanceof RatchetError && refused.code === 'UNAVAILABLE');
    assert.match(refused.message, /being rebuilt/);
    // A count begun in the Redis process that is gone is not recorded in the new one.
    await assert.rejects(Promise.resolve(store.markCounted(before)), /restarted during the usage count/);
    await store.markCounted(await store.startCount());
    await store.heartbeat();
    assert.deepEqual(
      await store.full([total(100)], 61),
      { scope: 'total', left: 60 },
      'the live hold is back',
    );
    await store.release([held.id]);
    assert.equal(await store.full([total(100)], 100), undefined);
  });
});
