/**
 * The group-commit folder syncer: who shares an fsync, who waits for the next one, and which
 * descriptor is flushed. The real fsync runs; the test wraps it to count and order the calls.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { recordingSyncer } from '../helpers/recording-syncer.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';

const openDescriptors = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

describe('group-commit folder syncer', () => {
  it('starts a new fsync for each sync requested after the previous one ended', async () => {
    await withTempDir(async (dir) => {
      const { syncer, inodes } = recordingSyncer();
      for (let i = 0; i < 3; i++) await syncer.sync(dir);
      assert.equal(inodes.length, 3);
      syncer.close();
    });
  });

  it('answers a sync requested while an fsync runs only after a later fsync, shared by all who waited', async () => {
    await withTempDir(async (dir) => {
      const { syncer, events, hold } = recordingSyncer();
      const release = hold();
      const first = syncer.sync(dir);
      await waitFor(() => events.length > 0, 'fsync 1 to start');
      assert.deepEqual(events, ['fsync 1 starts']);
      // Requested after fsync 1 began (as after a link(2) made during it): they need fsync 2.
      events.push('requests');
      const waiting = Array.from({ length: 20 }, () => syncer.sync(dir).then(() => events.push('answered')));
      release();
      await first;
      await Promise.all(waiting);
      assert.deepEqual(events.slice(0, 5), [
        'fsync 1 starts',
        'requests',
        'fsync 1 ends',
        'fsync 2 starts',
        'fsync 2 ends',
      ]);
      assert.equal(events.filter((e) => e === 'answered').length, 20);
      assert.equal(events.filter((e) => e.endsWith('starts')).length, 2, '21 requests, 2 fsyncs');
      syncer.close();
    });
  });

  it('flushes the folder now at the path, not a removed one kept open', async () => {
    await withTempDir(async (dir) => {
      const { syncer, inodes } = recordingSyncer();
      const folder = path.join(dir, 'f');
      await mkdir(folder);
      await syncer.sync(folder);
      await rm(folder, { recursive: true });
      await mkdir(folder);
      await syncer.sync(folder);
      assert.equal(inodes.length, 2);
      assert.notEqual(inodes[0], inodes[1]);
      const { ino } = await import('node:fs/promises').then((fs) => fs.stat(folder));
      assert.equal(inodes[1], ino);
      syncer.close();
    });
  });

  it('reports a missing folder, and keeps at most 256 folders open', async () => {
    await withTempDir(async (dir) => {
      const { syncer, inodes } = recordingSyncer();
      await assert.rejects(syncer.sync(path.join(dir, 'missing')), { code: 'ENOENT' });
      const before = await openDescriptors();
      for (let i = 0; i < 300; i++) {
        const folder = path.join(dir, `d${i}`);
        await mkdir(folder);
        await syncer.sync(folder);
      }
      assert.equal(inodes.length, 300);
      const kept = (await openDescriptors()) - before;
      assert.ok(kept <= 256 && kept >= 200, `${kept} descriptors kept`);
      syncer.close();
      assert.ok((await openDescriptors()) <= before, 'close() closes them');
    });
  });
});
