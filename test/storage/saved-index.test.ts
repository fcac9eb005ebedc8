/**
 * Issue 19, case 1: a saved index is used only when it proves itself. Edited (still valid JSON),
 * foreign and older index files are discarded with a logged reason, and listings then come from
 * the disk.
 */
import assert from 'node:assert/strict';
import { cp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { capturingLogger } from '../helpers/logger.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import {
  assertListingsTrue,
  backdate,
  editFolderLines,
  indexFile,
  listedObjects,
  objectFolder,
  writeObject,
} from './index-helpers.ts';

const repos = ['r'];

/** A data folder with a repository of a few packs and a snapshot, its index saved by a first run. */
async function savedFolder(root: string): Promise<{ packs: string[]; snapshot: string }> {
  const storage = new FsStorage({ root });
  await storage.init();
  await storage.createRepo(['r']);
  const packs = [];
  for (let i = 0; i < 6; i++) packs.push(await writeObject(root, 'r', 'data', 1000 + i));
  const snapshot = await writeObject(root, 'r', 'snapshots', 300);
  await backdate(root);
  await listedObjects(storage, repos);
  await storage.close();
  return { packs, snapshot };
}

/** Starts storage on root, asserts listings equal the disk, and returns the start's log reasons. */
async function startAndCheck(root: string): Promise<{ discarded: string[]; loaded: number }> {
  const { logger, lines } = capturingLogger();
  const storage = new FsStorage({ root, logger });
  await storage.init();
  try {
    await assertListingsTrue(storage, root, repos);
  } finally {
    await storage.close();
  }
  return {
    discarded: lines.filter((l) => /discarded/.test(l.msg)).map((l) => l.reason ?? ''),
    loaded: lines.filter((l) => l.msg === 'loaded the object index').length,
  };
}

describe('a saved index proves itself', () => {
  it('is used when nothing changed, and then lists what is on disk', async () => {
    await withTempDir(async (root) => {
      await savedFolder(root);
      assert.deepEqual(await startAndCheck(root), { discarded: [], loaded: 1 });
    });
  });

  const edits: [string, (lines: string[], packs: string[]) => string[]][] = [
    [
      'one pack entry removed',
      (lines, packs) => lines.map((line) => line.replace(new RegExp(`\\["${packs[0]}",\\d+\\],?`), '')),
    ],
    [
      'one size changed',
      (lines, packs) => lines.map((line) => line.replace(`"${packs[1]}",1001`, `"${packs[1]}",7`)),
    ],
    [
      'the snapshots entry emptied',
      (lines) =>
        lines.map((line) =>
          line.includes('"dir":"r/snapshots"')
            ? line.replace(/"sizes":.*$/, '"sizes":[],"mtimes":[]}')
            : line,
        ),
    ],
  ];
  for (const [what, edit] of edits) {
    it(`is discarded when edited, still valid JSON: ${what}`, async () => {
      await withTempDir(async (root) => {
        const { packs } = await savedFolder(root);
        const before = await readFile(indexFile(root), 'utf8');
        await editFolderLines(root, (lines) => edit(lines, packs));
        assert.notEqual(await readFile(indexFile(root), 'utf8'), before, 'the edit changed the file');
        const { discarded, loaded } = await startAndCheck(root);
        assert.deepEqual(discarded, ['the checksum does not match']);
        assert.equal(loaded, 0);
      });
    });
  }

  it('is discarded when it belongs to another data folder, even with the same folder times', async () => {
    await withTempDir(async (root) => {
      const mine = path.join(root, 'mine');
      const other = path.join(root, 'other');
      await savedFolder(mine);
      await savedFolder(other);
      // The other folder's objects differ; give every folder the same mtime in both, so that
      // only the index's identity can tell them apart.
      const when = new Date(Date.now() - 7200_000);
      for (const base of [mine, other]) {
        for (const type of ['data', 'keys', 'locks', 'snapshots', 'index'] as const) {
          await utimes(path.join(base, 'r', type), when, when);
        }
        for (const sub of await readdir(path.join(base, 'r', 'data'))) {
          await utimes(path.join(base, 'r', 'data', sub), when, when);
        }
      }
      // Re-save both with the aligned times.
      for (const base of [mine, other]) {
        const storage = new FsStorage({ root: base });
        await storage.init();
        await listedObjects(storage, repos);
        await storage.close();
      }
      // The index alone, and the index with the other folder's state file.
      await cp(indexFile(other), indexFile(mine));
      assert.deepEqual((await startAndCheck(mine)).discarded, ['it belongs to another data folder']);
      await cp(indexFile(other), indexFile(mine));
      await cp(path.join(other, '.ratchet', 'state.json'), path.join(mine, '.ratchet', 'state.json'));
      assert.deepEqual((await startAndCheck(mine)).discarded, ['it belongs to another data folder']);
    });
  });

  it('is discarded when an older index of the same folder is put back, checksum and all', async () => {
    await withTempDir(async (root) => {
      const { packs } = await savedFolder(root);
      const older = await readFile(indexFile(root));
      // A later run sees a pack rewritten in place (its folder's mtime does not move) and saves.
      const pack = packs[2] ?? '';
      const file = path.join(objectFolder(root, 'r', 'data', pack), pack);
      const storage = new FsStorage({ root });
      await storage.init();
      await listedObjects(storage, repos);
      await writeFile(file, Buffer.alloc(5000));
      await backdate(root);
      await storage.close();
      assert.match(await readFile(indexFile(root), 'utf8'), new RegExp(`"${pack}",5000`));
      // The older file is put back: valid checksum, this data folder, folder times unchanged.
      await writeFile(indexFile(root), older);
      const { discarded } = await startAndCheck(root);
      assert.equal(discarded.length, 1);
      assert.match(discarded[0] ?? '', /saved by run 1, not by the previous run \(2\)/);
    });
  });

  it('is discarded when damaged: truncated, or a line that is not JSON', async () => {
    await withTempDir(async (root) => {
      await savedFolder(root);
      const whole = await readFile(indexFile(root));
      await writeFile(indexFile(root), whole.subarray(0, whole.length - 78));
      assert.deepEqual((await startAndCheck(root)).discarded, ['the file is truncated']);
      await rm(indexFile(root), { force: true });
      const storage = new FsStorage({ root });
      await storage.init();
      await listedObjects(storage, repos);
      await storage.close();
      const text = await readFile(indexFile(root), 'utf8');
      await writeFile(indexFile(root), text.replace('{"dir"', '{dir'));
      assert.deepEqual((await startAndCheck(root)).discarded, ['a line is not JSON']);
    });
  });
});
