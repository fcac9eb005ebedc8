/**
 * The trash verbs every backend must have: a trashed object is gone for listings, stat and read;
 * it restores under its name; an identical object already there drops the trash copy; purging by
 * age removes only what came due. test/storage/trash.test.ts runs it on the file and memory
 * backends, test/s3/ on S3.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { ObjectRef } from '../../src/domain/object-ref.ts';
import type { Storage, TrashEntry } from '../../src/storage/storage.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import { purgeTrash } from '../../src/trash/trash-operations.ts';
import { sha256 } from '../helpers/http.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

/** Stores the data under its hash in repository r. */
export async function put(
  storage: Storage,
  data: Buffer,
  type: 'data' | 'snapshots' = 'data',
): Promise<ObjectRef> {
  const ref: ObjectRef = { repo: ['r'], type, name: sha256(data) };
  await writeChecked(storage, ref, Readable.from([data]), { sha256: sha256(data), length: data.length });
  return ref;
}

/** Repository r's trash. */
export async function trashOf(storage: Storage): Promise<TrashEntry[]> {
  const entries: TrashEntry[] = [];
  for await (const entry of storage.listTrash(['r'])) entries.push(entry);
  return entries;
}

/** The data objects repository r lists. */
export async function names(storage: Storage): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of storage.list(['r'], 'data')) out.push(entry.name);
  return out.sort();
}

/** Registers the trash tests for one backend; `open` gets a fresh temporary folder. */
export function trashConformance(backend: string, open: (dir: string) => Promise<Storage>): void {
  describe(`trash, ${backend} backend`, () => {
    it('hides a trashed object and restores it under its name', async () => {
      await withTempDir(async (dir) => {
        const storage = await open(dir);
        await storage.createRepo(['r']);
        const data = randomBytes(500);
        const ref = await put(storage, data);
        assert.deepEqual(await storage.moveToTrash(ref, 1000), { existed: true, bytes: 500 });
        assert.deepEqual(await storage.moveToTrash(ref, 2000), { existed: false, bytes: 0 }, 'idempotent');
        assert.equal(await storage.stat(ref), undefined);
        assert.deepEqual(await names(storage), []);
        const [entry, ...rest] = await trashOf(storage);
        assert.deepEqual(rest, []);
        assert.deepEqual(entry, {
          repo: ['r'],
          type: 'data',
          name: sha256(data),
          size: 500,
          deletedMs: 1000,
        });
        assert.ok(entry);
        assert.equal(await storage.restoreFromTrash(entry), 'restored');
        assert.equal(await storage.stat(ref), 500);
        assert.deepEqual(await names(storage), [sha256(data)]);
        assert.deepEqual(await trashOf(storage), []);
        await storage.close();
      });
    });

    it('drops the trash copy when the same object is back, and keeps both apart from a conflict', async () => {
      await withTempDir(async (dir) => {
        const storage = await open(dir);
        await storage.createRepo(['r']);
        const data = randomBytes(300);
        const ref = await put(storage, data);
        await storage.moveToTrash(ref, 1000);
        await put(storage, data); // restic uploaded it again meanwhile
        const [entry] = await trashOf(storage);
        assert.ok(entry);
        assert.equal(await storage.restoreFromTrash(entry), 'already-there');
        assert.deepEqual(await trashOf(storage), []);
        await storage.close();
      });
    });

    it('purges only what was deleted before the limit, and frees its bytes', async () => {
      await withTempDir(async (dir) => {
        const storage = await open(dir);
        await storage.createRepo(['r']);
        const old = await put(storage, randomBytes(100));
        const young = await put(storage, randomBytes(200));
        await storage.moveToTrash(old, 1000);
        await storage.moveToTrash(young, 5000);
        assert.deepEqual(await purgeTrash(storage, 3000), { objects: 1, bytes: 100 });
        assert.deepEqual(
          (await trashOf(storage)).map((entry) => entry.deletedMs),
          [5000],
        );
        await storage.close();
      });
    });
  });
}
