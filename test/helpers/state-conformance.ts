/**
 * One conformance suite per state-store interface, run against every implementation: today the
 * in-memory stores (and the same stores answering through promises); a Redis store is passed
 * the same way later. Keys are fresh per test and times start at the real clock, so a store
 * shared between runs can be tested as it is.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Awaitable } from '../../src/state/awaitable.ts';
import type { BucketStore } from '../../src/state/bucket-store.ts';
import type { ThrottleStore } from '../../src/state/throttle-store.ts';

/** Makes a store for one test; `dispose`, if given, runs after the test. */
export interface StoreFactory<Store> {
  readonly open: () => Awaitable<Store>;
  readonly dispose?: (store: Store) => Awaitable<void>;
}

/** Runs `test` against a fresh store and a fresh key prefix. */
function withStore<Store>(
  factory: StoreFactory<Store>,
  test: (store: Store, key: (name: string) => string) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const store = await factory.open();
    const prefix = randomUUID();
    try {
      await test(store, (name) => `${prefix}:${name}`);
    } finally {
      await factory.dispose?.(store);
    }
  };
}

const windowMs = 10 * 60_000;

/** Starts `count` operations at once (all issued before any answer) and waits for every answer. */
function concurrently<T>(operation: () => Awaitable<T>, count = 50): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, () => Promise.resolve(operation())));
}

/** The ThrottleStore contract: counting in a window, blocks once per observed count, expiry, clear. */
export function throttleStoreConformance(name: string, factory: StoreFactory<ThrottleStore>): void {
  describe(`ThrottleStore conformance: ${name}`, () => {
    it(
      'counts failures in a window that opens at the first one, then starts a new window',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        const counts: number[] = [];
        for (let i = 0; i < 3; i++) counts.push((await store.fail(key('a'), t0 + i, windowMs)).failures);
        assert.deepEqual(counts, [1, 2, 3]);
        assert.equal(await store.failures(key('a'), t0 + 3, windowMs), 3, 'reading does not count');
        assert.equal(await store.failures(key('a'), t0 + windowMs + 1, windowMs), 0, 'the window passed');
        assert.equal(await store.failures(key('never-failed'), t0, windowMs), 0);
        // The window runs from the first failure (t0), not the last.
        const later = await store.fail(key('a'), t0 + windowMs + 1, windowMs);
        assert.deepEqual(later, { failures: 1, blockedUntil: 0, blocks: 0 });
        assert.equal((await store.fail(key('b'), t0, windowMs)).failures, 1, 'keys are independent');
      }),
    );

    it(
      'blocks once per observed block count, reopening the window',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        const first = await store.fail(key('a'), t0, windowMs);
        assert.equal(await store.block(key('a'), t0, t0 + 60_000, first.blocks, windowMs), true);
        assert.equal(await store.blockedUntil(key('a'), t0 + 1), t0 + 60_000);
        // A caller that saw the same count before the block lost the race: nothing changes.
        assert.equal(await store.block(key('a'), t0, t0 + 120_000, first.blocks, windowMs), false);
        assert.equal(await store.blockedUntil(key('a'), t0 + 1), t0 + 60_000);
        assert.deepEqual(await store.fail(key('a'), t0 + 2, windowMs), {
          failures: 1,
          blockedUntil: t0 + 60_000,
          blocks: 1,
        });
        assert.equal(await store.block(key('never-failed'), t0, t0 + 60_000, 0, windowMs), false);
        assert.equal(await store.blockedUntil(key('never-failed'), t0), 0);
      }),
    );

    it(
      'forgets an entry once the window after its block has passed',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        const until = t0 + 60_000;
        await store.fail(key('a'), t0, windowMs);
        await store.block(key('a'), t0, until, 0, windowMs);
        assert.equal(
          await store.blockedUntil(key('a'), until + windowMs),
          until,
          'kept to the end of the window',
        );
        assert.equal(await store.blockedUntil(key('a'), until + windowMs + 1), 0);
        // Forgotten entirely: the consecutive-block count starts again.
        assert.deepEqual(await store.fail(key('a'), until + windowMs + 2, windowMs), {
          failures: 1,
          blockedUntil: 0,
          blocks: 0,
        });
        // An entry that never blocked expires a window after its first failure.
        await store.fail(key('b'), t0, windowMs);
        assert.equal((await store.fail(key('b'), t0 + windowMs + 1, windowMs)).failures, 1);
      }),
    );

    it(
      'counts every one of many concurrent failures and starts one block among racing callers',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        const records = await concurrently(() => store.fail(key('a'), t0, windowMs));
        const counts = records.map((record) => record.failures).sort((x, y) => x - y);
        assert.deepEqual(
          counts,
          Array.from({ length: 50 }, (_, i) => i + 1),
        );
        const started = await concurrently(() => store.block(key('a'), t0, t0 + 60_000, 0, windowMs));
        assert.equal(started.filter(Boolean).length, 1);
      }),
    );

    it(
      'clears a key: no block, no failures, no block count',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        await store.fail(key('a'), t0, windowMs);
        await store.block(key('a'), t0, t0 + 60_000, 0, windowMs);
        await store.fail(key('b'), t0, windowMs);
        await store.clear(key('a'));
        await store.clear(key('absent'));
        assert.equal(await store.blockedUntil(key('a'), t0 + 1), 0);
        assert.deepEqual(await store.fail(key('a'), t0 + 2, windowMs), {
          failures: 1,
          blockedUntil: 0,
          blocks: 0,
        });
        assert.equal((await store.fail(key('b'), t0 + 3, windowMs)).failures, 2, 'other keys are kept');
      }),
    );
  });
}

/** Asserts a wait in milliseconds to within 1 ms (a shared store may round to whole ms). */
function assertWait(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) <= 1, `waited ${actual} ms, expected ${expected}`);
}

/** The BucketStore contract: burst then rate, atomic takes, debt, clear. */
export function bucketStoreConformance(name: string, factory: StoreFactory<BucketStore>): void {
  describe(`BucketStore conformance: ${name}`, () => {
    // 2 tokens a second, at most 4.
    const rate = 2;
    const burst = 4;

    it(
      'grants the burst, then the rate, and a refused take takes nothing',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        for (let i = 0; i < burst; i++)
          assert.equal((await store.take(key('a'), 1, rate, burst, t0)).allowed, true);
        const refused = await store.take(key('a'), 1, rate, burst, t0);
        assert.equal(refused.allowed, false);
        assertWait(refused.waitMs, 500);
        assert.equal((await store.take(key('a'), 1, rate, burst, t0 + 500)).allowed, true);
        assert.equal((await store.take(key('a'), 1, rate, burst, t0 + 500)).allowed, false);
        assert.equal(
          (await store.take(key('b'), burst, rate, burst, t0)).allowed,
          true,
          'keys are independent',
        );
      }),
    );

    it(
      'refills to the burst and no further',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        for (let i = 0; i < burst; i++) await store.take(key('a'), 1, rate, burst, t0);
        const later = t0 + 3_600_000;
        let granted = 0;
        while ((await store.take(key('a'), 1, rate, burst, later)).allowed) granted++;
        assert.equal(granted, burst);
      }),
    );

    it(
      'never grants more than the burst to many concurrent takes',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        const results = await concurrently(() => store.take(key('a'), 1, rate, burst, t0));
        assert.equal(results.filter((result) => result.allowed).length, burst);
      }),
    );

    it(
      'lends beyond the burst and makes the borrower wait out the debt',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        assert.equal(await store.borrow(key('a'), burst, rate, burst, t0), 0);
        assertWait(await store.borrow(key('a'), 2, rate, burst, t0), 1000);
        // The debt is owed by everyone using the bucket: a take waits for it too.
        const refused = await store.take(key('a'), 1, rate, burst, t0 + 1000);
        assert.equal(refused.allowed, false);
        assertWait(refused.waitMs, 500);
        // Concurrent borrowers each queue behind the others' debt.
        const waits = await concurrently(() => store.borrow(key('b'), 2, rate, burst, t0), 4);
        waits.sort((x, y) => x - y);
        [0, 0, 1000, 2000].forEach((expected, i) => assertWait(waits[i]!, expected));
      }),
    );

    it(
      'clear refills every bucket',
      withStore(factory, async (store, key) => {
        const t0 = Date.now();
        await store.take(key('a'), burst, rate, burst, t0);
        await store.borrow(key('b'), burst * 2, rate, burst, t0);
        await store.clear();
        assert.equal((await store.take(key('a'), burst, rate, burst, t0)).allowed, true);
        assert.equal((await store.take(key('b'), burst, rate, burst, t0)).allowed, true);
      }),
    );
  });
}
