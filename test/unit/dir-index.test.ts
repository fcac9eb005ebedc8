/**
 * The directory index's decisions, asserted through its work counts: which folders are read
 * again, which entries are stat'ed, which sizes are trusted and which folders may be saved.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DirectoryIndex } from '../../src/storage/fs/dir-index.ts';
import { SyncGuard } from '../../src/storage/fs/fast-fs.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

let clock = Date.now() - 86_400_000;
/** Sets the path's mtime to a new moment in the past (outside the racy window). */
async function age(file: string): Promise<void> {
  clock -= 1000;
  await utimes(file, new Date(clock), new Date(clock));
}

/** Writes an object file of the size (a random valid name) and ages it; returns the name. */
async function object(dir: string, size: number, aged = true): Promise<string> {
  const name = randomBytes(32).toString('hex');
  await writeFile(path.join(dir, name), Buffer.alloc(size));
  if (aged) await age(path.join(dir, name));
  return name;
}

function newIndex(syncCalls: boolean, onSizeChange?: (file: string, cached: number, actual: number) => void) {
  return new DirectoryIndex({
    guard: new SyncGuard({ enabled: syncCalls }),
    keepsMtimes: (dir) => path.basename(dir) === 'snapshots',
    onSizeChange,
  });
}

async function sizesOf(index: DirectoryIndex, dir: string): Promise<Record<string, number>> {
  return Object.fromEntries((await index.entries(dir)).sizes);
}

for (const syncCalls of [true, false]) {
  describe(`directory index (${syncCalls ? 'synchronous' : 'thread-pool'} stats)`, () => {
    it('reads a racy folder again, and an aged one only once', async () => {
      await withTempDir(async (dir) => {
        const index = newIndex(syncCalls);
        await object(dir, 10);
        // The folder was just modified: racy.
        await index.entries(dir);
        await index.entries(dir);
        assert.equal(index.counts.folderReads, 2);
        await age(dir);
        await index.entries(dir);
        await index.entries(dir);
        await index.entries(dir);
        assert.equal(index.counts.folderReads, 3);
      });
    });

    it('reads a folder again when its mtime changed, stat-ing only names it did not know', async () => {
      await withTempDir(async (dir) => {
        const index = newIndex(syncCalls);
        const names = [];
        for (let i = 0; i < 10; i++) names.push(await object(dir, i));
        await age(dir);
        await index.entries(dir);
        assert.deepEqual(index.counts, { folderReads: 1, entryStats: 10 });
        const added = await object(dir, 99);
        await age(dir);
        const sizes = await sizesOf(index, dir);
        assert.deepEqual(index.counts, { folderReads: 2, entryStats: 11 });
        assert.equal(sizes[added], 99);
        assert.equal(Object.keys(sizes).length, 11);
      });
    });

    it('stats a size read while its file was changing on every use until it settles, and trusts it then', async () => {
      await withTempDir(async (dir) => {
        const index = newIndex(syncCalls);
        const name = await object(dir, 100, false);
        await age(dir);
        assert.equal((await sizesOf(index, dir))[name], 100);
        assert.equal(index.counts.entryStats, 1);
        await writeFile(path.join(dir, name), Buffer.alloc(300)); // still being written
        assert.equal((await sizesOf(index, dir))[name], 300);
        assert.equal(index.counts.entryStats, 2);
        await age(path.join(dir, name)); // the writer finished long ago
        assert.equal((await sizesOf(index, dir))[name], 300);
        assert.equal(index.counts.entryStats, 3);
        await sizesOf(index, dir);
        await sizesOf(index, dir);
        assert.deepEqual(index.counts, { folderReads: 1, entryStats: 3 });
      });
    });

    it('corrects a settled size rewritten in place when sizes are checked, and reports it', async () => {
      await withTempDir(async (dir) => {
        const changes: [string, number, number][] = [];
        const index = newIndex(syncCalls, (file, cached, actual) => changes.push([file, cached, actual]));
        const name = await object(dir, 100);
        await object(dir, 5);
        await age(dir);
        await index.entries(dir);
        await writeFile(path.join(dir, name), Buffer.alloc(700));
        await age(path.join(dir, name));
        // The folder's mtime did not move: a listing alone keeps the cached size.
        assert.equal((await sizesOf(index, dir))[name], 100);
        assert.equal(await index.checkSizes(dir), 2);
        assert.equal((await sizesOf(index, dir))[name], 700);
        assert.deepEqual(changes, [[path.join(dir, name), 100, 700]]);
      });
    });

    it('offers for saving only folders whose mtime is unchanged and whose every size is settled', async () => {
      await withTempDir(async (root) => {
        const index = newIndex(syncCalls);
        const dirs = ['settled', 'unsettled', 'changed', 'racy'].map((name) => path.join(root, name));
        const { mkdir } = await import('node:fs/promises');
        for (const dir of dirs) await mkdir(dir);
        const [settled = '', unsettled = '', changed = '', racy = ''] = dirs;
        await object(settled, 1);
        await object(unsettled, 1, false);
        await object(changed, 1);
        await object(racy, 1);
        for (const dir of [settled, unsettled, changed]) await age(dir);
        for (const dir of dirs) await index.entries(dir);
        await age(changed);
        const offered = [];
        for await (const [dir] of index.verified()) offered.push(dir);
        assert.deepEqual(offered, [settled]);
      });
    });
  });
}
