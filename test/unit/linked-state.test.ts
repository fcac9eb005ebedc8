/**
 * The stores of --workers: each worker's stores linked to the state the primary hosts. The
 * conformance suites run through the link (messages copied through JSON, delivered later, as
 * between processes), and what only a primary must do: holds and leases of a worker that dies
 * are freed, a throttle block started through one worker is known to the others without a call,
 * and a reservation race through several workers grants exactly what fits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LinkedBucketStore,
  LinkedJobLease,
  LinkedThrottleStore,
  LinkedUsageStore,
} from '../../src/state/ipc/linked-stores.ts';
import type { Hold } from '../../src/usage/usage-store.ts';
import { linkTo, stateHost } from '../helpers/linked-state.ts';
import { bucketStoreConformance, throttleStoreConformance } from '../helpers/state-conformance.ts';

throttleStoreConformance('linked to a primary', {
  open: () => new LinkedThrottleStore(linkTo(stateHost()).link, 'addresses'),
});
bucketStoreConformance('linked to a primary', {
  open: () => new LinkedBucketStore(linkTo(stateHost()).link),
});

const total = (limit: number): Hold => ({ scope: 'total', limit });

/** Two workers' usage stores on one host, the count done. */
async function twoWorkers() {
  const host = stateHost();
  const a = linkTo(host);
  const b = linkTo(host);
  const usageA = new LinkedUsageStore(a.link);
  const usageB = new LinkedUsageStore(b.link);
  await usageA.markCounted(await usageA.startCount());
  return { host, a, b, usageA, usageB };
}

describe('usage linked to a primary', () => {
  it('grants exactly what fits when workers race for the room', async () => {
    const { a, b, usageA, usageB } = await twoWorkers();
    assert.equal(await usageB.counted(), true, 'one count for every worker');
    const tries = Array.from({ length: 200 }, (_, i) =>
      (i % 2 === 0 ? usageA : usageB).reserve([total(1000)], 7),
    );
    const granted = (await Promise.all(tries)).filter((reserved) => reserved.id !== undefined);
    assert.equal(granted.length, Math.floor(1000 / 7));
    a.gone();
    b.gone();
  });

  it("releases a dead worker's holds, keeps what it stored, and each worker's reports show its own changes at once", async () => {
    const { a, b, usageA, usageB } = await twoWorkers();
    const held = await usageA.reserve([total(100)], 60);
    assert.ok(held.id !== undefined);
    await usageA.settle([held.id], 'alice/laptop', { bytes: 60, type: 'data', objects: 1 });
    assert.equal(usageA.used('total'), 60, 'the change shows in its own reports without waiting');
    const second = await usageA.reserve([total(100)], 40);
    assert.ok(second.id !== undefined);
    assert.deepEqual((await usageB.reserve([total(100)], 1)).full, { scope: 'total', left: 0 });
    a.gone();
    // The 40 held by the dead worker are free again; its 60 stored bytes stay counted.
    const after = await usageB.reserve([total(100)], 40);
    assert.ok(after.id !== undefined, 'the room of the dead worker came back');
    assert.deepEqual(await usageB.full([total(100)], 1), { scope: 'total', left: 0 });
    b.gone();
  });

  it('fails a decision with 503 once the primary is gone, instead of deciding alone', async () => {
    const { a, usageA } = await twoWorkers();
    a.gone();
    assert.throws(() => usageA.assertReachable(), { code: 'UNAVAILABLE' });
    await assert.rejects(usageA.reserve([total(10)], 1), { code: 'UNAVAILABLE' });
  });
});

describe('leases and blocks linked to a primary', () => {
  it('gives a job to one worker at a time and frees it when that worker dies', async () => {
    const host = stateHost();
    const a = linkTo(host);
    const b = linkTo(host);
    const leaseA = new LinkedJobLease(a.link);
    const leaseB = new LinkedJobLease(b.link);
    assert.equal(await leaseA.holds('usage', 60_000), true);
    assert.equal(await leaseB.holds('usage', 60_000), false);
    assert.equal(await leaseA.holds('usage', 60_000), true, 'renewed by its holder');
    a.gone();
    assert.equal(await leaseB.holds('usage', 60_000), true, 'free once its holder died');
    await leaseB.releaseAll();
    const c = linkTo(host);
    assert.equal(await new LinkedJobLease(c.link).holds('usage', 60_000), true, 'released on a clean stop');
    b.gone();
    c.gone();
  });

  it('tells every worker about a block, including workers that start later', async () => {
    const host = stateHost();
    const a = linkTo(host);
    const b = linkTo(host);
    const storeA = new LinkedThrottleStore(a.link, 'pairs');
    const storeB = new LinkedThrottleStore(b.link, 'pairs');
    const now = Date.now();
    await storeA.fail('client', now, 600_000);
    assert.equal(await storeA.block('client', now, now + 60_000, 0, 600_000), true);
    // The push reached B before A heard back: B answers from its copy.
    assert.equal(await storeB.blockedUntil('client', now + 1), now + 60_000);
    const c = linkTo(host);
    const storeC = new LinkedThrottleStore(c.link, 'pairs');
    assert.equal(await storeC.blockedUntil('client', now + 1), 0, 'nothing known before it asks');
    await storeC.load();
    assert.equal(
      await storeC.blockedUntil('client', now + 1),
      now + 60_000,
      'a new worker learns it on joining',
    );
    await storeB.clear('client');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await storeA.blockedUntil('client', now + 1), 0, 'lifted everywhere');
    for (const worker of [a, b, c]) worker.gone();
  });
});
