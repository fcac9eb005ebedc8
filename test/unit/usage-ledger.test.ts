/**
 * The usage ledger over real filesystem storage: the start-up count, bounded work per reconcile
 * tick, changes by other processes found by a pass, and a reconcile that races with this
 * server's own writes never clobbering them.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import type { ObjectRef } from '../../src/domain/object-ref.ts';
import type { ObjectType } from '../../src/domain/object-types.ts';
import { UsageLedger } from '../../src/usage/usage-ledger.ts';
import { MemoryUsageStore } from '../../src/usage/usage-store.ts';
import { countingStorage } from '../helpers/counting-storage.ts';
import type { CountingStorage } from '../helpers/counting-storage.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Puts an object on disk the way another process would: the ledger is not told. */
async function writeBehindItsBack(dir: string, repo: string, data: Buffer): Promise<void> {
  const name = sha(data);
  const folder = path.join(dir, repo, 'data', name.slice(0, 2));
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, name), data);
}

/** Stores an object through the storage and tells the ledger, as the request handler does. */
async function writeAndNote(
  storage: CountingStorage,
  ledger: UsageLedger,
  repo: string[],
  data: Buffer,
  type: ObjectType = 'data',
): Promise<void> {
  const ref: ObjectRef = { repo, type, name: sha(data) };
  const result = await writeChecked(storage, ref, Readable.from([data]), {
    sha256: ref.name,
    length: data.length,
  });
  ledger.wrote(ref, result.created ? result.size : 0);
}

/** Deletes an object through the storage and tells the ledger, as the request handler does. */
async function deleteAndNote(
  storage: CountingStorage,
  ledger: UsageLedger,
  repo: string[],
  data: Buffer,
  type: ObjectType,
): Promise<void> {
  const ref: ObjectRef = { repo, type, name: sha(data) };
  ledger.deleted(ref, (await storage.delete(ref)).bytes);
}

/** A started ledger whose timer never fires (tests drive its steps), over counting FsStorage. */
async function withLedger(
  fn: (ledger: UsageLedger, storage: CountingStorage, dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const fs = new FsStorage({ root: dir });
    await fs.init();
    const storage = countingStorage(fs);
    const ledger = new UsageLedger(storage, new MemoryUsageStore(), silentLogger(), { tickMs: 2 ** 30 });
    ledger.start();
    await ledger.ready;
    try {
      await fn(ledger, storage, dir);
    } finally {
      await ledger.stop();
    }
  });
}

/** One ledger step that measures r while this server writes `bytes` into it (after the listing). */
async function stepRacingAWrite(ledger: UsageLedger, storage: CountingStorage, bytes: number): Promise<void> {
  let finish = (): void => undefined;
  storage.holdListing(
    'r',
    new Promise<void>((resolve) => {
      finish = resolve;
    }),
  );
  const step = ledger.step();
  while (storage.walks.list < 5) await new Promise((resolve) => setImmediate(resolve));
  await writeAndNote(storage, ledger, ['r'], randomBytes(bytes));
  finish();
  await step;
}

/** Runs steps until the pass ends; returns how many it took. */
async function finishPass(ledger: UsageLedger): Promise<number> {
  let steps = 1;
  while (await ledger.step()) steps++;
  return steps;
}

describe('usage ledger', () => {
  it('counts every repository at start and is ready only then', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      for (const repo of ['a', 'b', 'c/d']) await storage.createRepo(repo.split('/'));
      await writeBehindItsBack(dir, 'a', randomBytes(700));
      await writeBehindItsBack(dir, 'c/d', randomBytes(300));
      const ledger = new UsageLedger(storage, new MemoryUsageStore(), silentLogger());
      assert.equal(ledger.isReady, false);
      ledger.start();
      await ledger.ready;
      await ledger.stop();
      assert.equal(ledger.isReady, true);
      assert.equal(ledger.store.used('total'), 1000);
      assert.equal(ledger.store.used('user:c'), 300);
      assert.equal(ledger.store.used('repos:c'), 1);
      assert.deepEqual(ledger.store.get('a')?.objects, {
        data: 1,
        keys: 0,
        locks: 0,
        snapshots: 0,
        index: 0,
      });
    });
  });

  it('measures one repository per tick, and a pass finds repositories added and removed by others', async () => {
    await withLedger(async (ledger, storage, dir) => {
      for (let i = 0; i < 10; i++) await storage.createRepo([`r${i}`]);
      assert.equal(await finishPass(ledger), 11, 'ten repositories, then the end of the pass');
      storage.resetWalks();
      assert.equal(await ledger.step(), true);
      assert.deepEqual(storage.walks, { listRepos: 1, list: 5 }, 'one repository: a listing per type');
      assert.equal(await ledger.step(), true);
      assert.deepEqual(storage.walks, { listRepos: 1, list: 10 }, 'the next repository, the same pass');
      await finishPass(ledger);

      // Another process adds a repository with an object and removes one.
      await storage.createRepo(['new']);
      await writeBehindItsBack(dir, 'new', randomBytes(1234));
      await rm(path.join(dir, 'r3'), { recursive: true });
      assert.equal(ledger.store.get('new'), undefined);
      assert.notEqual(ledger.store.get('r3'), undefined);
      assert.equal(await finishPass(ledger), 11);
      assert.equal(ledger.store.get('new')?.bytes, 1234);
      assert.equal(ledger.store.get('r3'), undefined, 'the removed repository is forgotten');
      assert.equal(ledger.store.used('total'), 1234);
    });
  });

  it('never lets a measurement that raced with its own write replace the numbers', async () => {
    await withLedger(async (ledger, storage) => {
      await storage.createRepo(['r']);
      await finishPass(ledger);
      const before = randomBytes(500);
      await writeAndNote(storage, ledger, ['r'], before);
      assert.equal(ledger.store.used('total'), 500);

      // A reconcile reads r's listing, then this server writes 800 bytes before it finishes.
      await stepRacingAWrite(ledger, storage, 800);
      assert.equal(ledger.store.used('total'), 1300, 'the write is kept');

      // This server's own calls keep r current: the pass goes on (and ends) without walking r
      // again, and the next pass's listing is taken.
      storage.holdListing('r', Promise.resolve());
      storage.resetWalks();
      assert.equal(await ledger.step(), false, 'the pass ends');
      assert.deepEqual(storage.walks, { listRepos: 0, list: 0 });
      assert.equal(await ledger.step(), true);
      assert.deepEqual(storage.walks, { listRepos: 1, list: 5 });
      assert.equal(ledger.store.used('total'), 1300);
    });
  });

  it('measures a repository it had to read again when that measurement raced', async () => {
    await withLedger(async (ledger, storage) => {
      await storage.createRepo(['r']);
      await finishPass(ledger);
      const snapshot = randomBytes(300);
      await writeAndNote(storage, ledger, ['r'], snapshot, 'snapshots');
      await finishPass(ledger);
      // A deleted snapshot queues r (its newest snapshot time); that measurement races with a write.
      await deleteAndNote(storage, ledger, ['r'], snapshot, 'snapshots');
      await stepRacingAWrite(ledger, storage, 800);
      storage.holdListing('r', Promise.resolve());
      storage.resetWalks();
      assert.equal(await ledger.step(), true);
      assert.deepEqual(storage.walks, { listRepos: 0, list: 5 }, 'queued again, ahead of the pass');
      assert.equal(ledger.store.used('total'), 800);
      assert.equal(ledger.store.get('r')?.newestSnapshotMs, undefined);
    });
  });

  it('does not forget a repository this server created during a pass', async () => {
    await withLedger(async (ledger, storage) => {
      await storage.createRepo(['a']);
      assert.equal(await ledger.step(), true, 'the pass has listed a');
      await storage.createRepo(['b']);
      ledger.created(['b']);
      // The pass may or may not reach b; either way it must still be known afterwards.
      await finishPass(ledger);
      assert.notEqual(ledger.store.get('b'), undefined);
      assert.equal(ledger.store.used('repos:b'), 1);
    });
  });
});
