/**
 * The trash verbs on every backend (file and memory): a trashed object is gone for listings,
 * stat and read; it restores under its name, verified; an identical object already there drops
 * the trash copy, a different one is left alone (conflict), a trash copy that no longer matches
 * its name is not restored (damaged, file backend); purging by age removes only what came due.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { sha256 } from '../helpers/http.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { put, trashConformance, trashOf } from './trash-conformance.ts';

const backends: Record<string, (dir: string) => Promise<Storage>> = {
  file: async (dir) => {
    const storage = new FsStorage({ root: dir });
    await storage.init();
    return storage;
  },
  memory: () => Promise.resolve(new MemoryStorage()),
};

for (const [backend, open] of Object.entries(backends)) trashConformance(backend, open);

describe('trash, file backend on disk', () => {
  it('keeps the trash below the repository where no URL and no restic listing reaches', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const ref = await put(storage, randomBytes(50), 'snapshots');
      await storage.moveToTrash(ref, 1234);
      assert.deepEqual(await readdir(path.join(dir, 'r', '.ratchet-trash', 'snapshots')), [
        `${ref.type === 'config' ? '' : ref.name}.1234`,
      ]);
      await storage.close();
    });
  });

  it('restores nothing that no longer matches its name, and never replaces a different object', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const data = randomBytes(400);
      const ref = await put(storage, data);
      await storage.moveToTrash(ref, 1000);
      const [entry] = await trashOf(storage);
      assert.ok(entry);
      const trashFile = path.join(dir, 'r', '.ratchet-trash', 'data', `${sha256(data)}.1000`);
      await writeFile(trashFile, randomBytes(400));
      assert.equal(await storage.restoreFromTrash(entry), 'damaged');
      assert.equal(await storage.stat(ref), undefined);

      await writeFile(trashFile, data);
      // A different (damaged) object under the name now: the restore leaves it to a verified upload.
      const target = path.join(dir, 'r', 'data', sha256(data).slice(0, 2), sha256(data));
      await writeFile(target, randomBytes(400));
      assert.equal(await storage.restoreFromTrash(entry), 'conflict');
      assert.equal((await trashOf(storage)).length, 1, 'the trash copy stays');
      await storage.close();
    });
  });

  it('never follows links: a linked trash folder is refused, a link under the name is a conflict', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const outside = path.join(dir, 'outside');
      await mkdir(outside);
      await symlink(outside, path.join(dir, 'r', '.ratchet-trash'));
      const ref = await put(storage, randomBytes(60));
      await assert.rejects(storage.moveToTrash(ref, 1000), /not a plain folder/);
      assert.equal(await storage.stat(ref), 60, 'the object stays where it was');
      assert.deepEqual(await readdir(outside), []);
      await rm(path.join(dir, 'r', '.ratchet-trash'));

      const data = randomBytes(70);
      const other = await put(storage, data);
      await storage.moveToTrash(other, 2000);
      const [entry] = await trashOf(storage);
      assert.ok(entry);
      // A link with the same content under the name: not an object, so the trash copy stays.
      const copy = path.join(dir, 'copy');
      await writeFile(copy, data);
      await symlink(copy, path.join(dir, 'r', 'data', sha256(data).slice(0, 2), sha256(data)));
      assert.equal(await storage.restoreFromTrash(entry), 'conflict');
      assert.equal((await trashOf(storage)).length, 1);
      await storage.close();
    });
  });

  it('lists only names it wrote, and reports an entry purged meanwhile as gone', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const data = randomBytes(80);
      const ref = await put(storage, data);
      await storage.moveToTrash(ref, 3000);
      const trashDir = path.join(dir, 'r', '.ratchet-trash', 'data');
      for (const odd of [`${sha256(data)}.0123`, `${sha256(data)}.99999999999999999`, 'notes.txt'])
        await writeFile(path.join(trashDir, odd), 'x');
      const entries = await trashOf(storage);
      assert.deepEqual(
        entries.map((entry) => entry.deletedMs),
        [3000],
      );
      const [entry] = entries;
      assert.ok(entry);
      assert.equal(await storage.purgeFromTrash(entry), 80);
      assert.equal(await storage.restoreFromTrash(entry), 'gone');
      await storage.close();
    });
  });
});
