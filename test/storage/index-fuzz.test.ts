/**
 * Index fuzzing: many restarts of the file backend over one data folder, each after random
 * disk changes made while it was stopped (objects added, removed, a partial write finished
 * later) and a random edit of the saved index (drop, duplicate, resize, rename, truncate,
 * reorder, bit flip), or, checksum intact, an older index of the same folder or the index of
 * another data folder. After every start, listings and stat equal what is on disk, for every
 * repository and type. Deterministic: the seed and the case are named on failure.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { objectTypes } from '../../src/domain/object-types.ts';
import type { ObjectType } from '../../src/domain/object-types.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { seededRandom } from '../../bench/stats.ts';
import { capturingLogger } from '../helpers/logger.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import {
  assertListingsTrue,
  backdate,
  diskObjects,
  indexFile,
  listedObjects,
  objectFolder,
} from './index-helpers.ts';

const seed = 0x19_2026;
const cases = 200;
const repos = ['a', 'b'];
const edits = [
  'none',
  'drop',
  'duplicate',
  'resize',
  'rename',
  'truncate',
  'reorder',
  'bitflip',
  'older',
  'foreign',
] as const;

async function* once(data: Buffer): AsyncIterable<Uint8Array> {
  await Promise.resolve();
  yield data;
}

describe('index fuzzing', () => {
  it(`lists what is on disk after each of ${cases} restarts with random disk changes and index edits`, async () => {
    await withTempDir(async (base) => {
      const random = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const bytes = (n: number): Buffer =>
        Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
      const root = path.join(base, 'data');
      const other = path.join(base, 'other');
      const olderCopies: Buffer[] = [];
      let partial: { file: string; rest: Buffer } | undefined;
      let loads = 0;

      const addObject = async (dir: string, repo: string, type: ObjectType, size: number): Promise<void> => {
        const data = bytes(size);
        const name = createHash('sha256').update(data).digest('hex');
        await writeFile(path.join(objectFolder(dir, repo, type, name), name), data);
      };
      const run = async (dir: string, check: boolean): Promise<void> => {
        const { logger, lines } = capturingLogger();
        const storage = new FsStorage({ root: dir, logger });
        await storage.init();
        try {
          loads += lines.filter((line) => line.msg === 'loaded the object index').length;
          if (check) await assertListingsTrue(storage, dir, repos);
          else await listedObjects(storage, repos);
          if (check && random() < 0.3) {
            // The server's own changes: one upload, one deletion.
            const data = bytes(1 + Math.floor(random() * 2000));
            const name = createHash('sha256').update(data).digest('hex');
            const repo = pick(repos);
            await writeChecked(storage, { repo: [repo], type: 'index', name }, once(data), {
              sha256: name,
              length: data.length,
            });
            const victim = pick(await diskObjects(dir, repos));
            const [vRepo = '', vType = '', rest = ''] = victim.split('/');
            await storage.delete({
              repo: [vRepo],
              type: vType as ObjectType,
              name: rest.split(':')[0] ?? '',
            });
            await assertListingsTrue(storage, dir, repos);
          }
        } finally {
          await storage.close();
        }
      };

      for (const dir of [root, other]) {
        const storage = new FsStorage({ root: dir });
        await storage.init();
        for (const repo of repos) await storage.createRepo([repo]);
        await storage.close();
        for (let i = 0; i < 40; i++)
          await addObject(dir, pick(repos), pick(objectTypes), Math.floor(random() * 3000));
        await backdate(dir);
        await run(dir, false);
      }

      for (let n = 0; n < cases; n++) {
        const edit = pick(edits);
        const changes: string[] = [];
        try {
          // Disk changes while stopped.
          if (partial !== undefined) {
            await appendFile(partial.file, partial.rest);
            changes.push('partial finished');
            partial = undefined;
          }
          const adds = Math.floor(random() * 4);
          for (let i = 0; i < adds; i++)
            await addObject(root, pick(repos), pick(objectTypes), Math.floor(random() * 3000));
          if (adds > 0) changes.push(`${adds} added`);
          if (random() < 0.4) {
            const victim = pick(await diskObjects(root, repos));
            const [repo = '', type = '', rest = ''] = victim.split('/');
            const name = rest.split(':')[0] ?? '';
            await rm(path.join(objectFolder(root, repo, type as ObjectType, name), name));
            changes.push('1 removed');
          }
          if (random() < 0.5) await backdate(root);
          if (random() < 0.2) {
            // Another program starts writing an object in place; it finishes while the server is stopped.
            const data = bytes(2000 + Math.floor(random() * 2000));
            const name = createHash('sha256').update(data).digest('hex');
            const file = path.join(objectFolder(root, 'a', 'data', name), name);
            await writeFile(file, data.subarray(0, 1000));
            partial = { file, rest: data.subarray(1000) };
            changes.push('partial started');
          }

          // An edit of the saved index.
          const file = indexFile(root);
          const saved = await readFile(file).catch(() => undefined);
          if (saved !== undefined) {
            const lines = saved.toString('utf8').split('\n').slice(0, -1);
            const at = Math.floor(random() * lines.length);
            // A folder line that lists objects (most fan-out folders are empty).
            const withObjects = lines.flatMap((line, i) => (line.includes('["') ? [i] : []));
            const folderLine = (): number => pick(withObjects.length > 0 ? withObjects : [0]);
            let edited: Buffer | undefined;
            if (edit === 'drop') lines.splice(at, 1);
            if (edit === 'duplicate') lines.splice(at, 0, lines[at] ?? '');
            if (edit === 'reorder') {
              const other = Math.floor(random() * lines.length);
              [lines[at], lines[other]] = [lines[other] ?? '', lines[at] ?? ''];
            }
            if (edit === 'resize') {
              const i = folderLine();
              lines[i] = (lines[i] ?? '').replace(
                /,(\d+)\]/,
                (_, size: string) => `,${Number(size) + 1 + Math.floor(random() * 9)}]`,
              );
            }
            if (edit === 'rename') {
              const i = folderLine();
              lines[i] = (lines[i] ?? '').replace(
                /\["([0-9a-f])/,
                (_, c: string) => `["${c === 'a' ? 'b' : 'a'}`,
              );
            }
            if (edit === 'truncate') edited = saved.subarray(0, Math.floor(random() * saved.length));
            if (edit === 'bitflip') {
              edited = Buffer.from(saved);
              const byte = Math.floor(random() * edited.length);
              edited[byte] = (edited[byte] ?? 0) ^ (1 << Math.floor(random() * 8));
            }
            if (edit === 'older' && olderCopies.length > 1) edited = pick(olderCopies.slice(0, -1));
            if (edit === 'foreign') {
              await run(other, false);
              edited = await readFile(indexFile(other));
            }
            if (['drop', 'duplicate', 'reorder', 'resize', 'rename'].includes(edit))
              edited = Buffer.from(`${lines.join('\n')}\n`);
            if (edited !== undefined) await writeFile(file, edited);
          }
          if (partial !== undefined) {
            const now = new Date();
            await utimes(partial.file, now, now); // still being written as the server starts
          }
          await run(root, true);
          const kept = await readFile(file).catch(() => undefined);
          if (kept !== undefined) olderCopies.push(kept);
          if (olderCopies.length > 8) olderCopies.shift();
        } catch (err) {
          throw new Error(
            `index fuzz case ${n} of seed ${seed} failed (edit: ${edit}; disk: ${changes.join(', ') || 'none'})`,
            { cause: err },
          );
        }
      }
      // The index was really used, not always discarded.
      assert.ok(loads > cases / 10, `the saved index was loaded in ${loads} of ${cases} starts`);
    });
  });
});
