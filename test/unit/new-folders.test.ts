/**
 * Folders made on the upload path: their parent's flush runs in the background, and durable()
 * holds every upload into the folder until that flush has succeeded (retrying a failed one).
 * The real mkdir and fsync run; the syncer's fsync is wrapped to hold, fail and record calls.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NewFolders } from '../../src/storage/fs/new-folders.ts';
import type { RecordingSyncer } from '../helpers/recording-syncer.ts';
import { recordingSyncer } from '../helpers/recording-syncer.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { sleep } from '../helpers/wait.ts';

/** NewFolders over a recording syncer (recording-syncer.ts). */
function folders(): { made: NewFolders } & RecordingSyncer {
  const recording = recordingSyncer();
  return { ...recording, made: new NewFolders(recording.syncer, 0o700) };
}

/** Whether the promise has settled after the event loop had a chance to run. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(30);
  return done;
}

describe('NewFolders', () => {
  it('holds uploads into a new folder until its parent has been flushed after the mkdir', async () => {
    await withTempDir(async (root) => {
      const { made, inodes, hold } = folders();
      const dir = path.join(root, 'ab');
      const release = hold();
      await made.make(dir);
      assert.ok(statSync(dir).isDirectory());
      const first = made.durable(dir);
      const second = made.durable(dir);
      assert.ok(first !== undefined && second !== undefined, 'a folder made here is waited for');
      assert.equal(await settled(first), false, 'not durable while the parent flush is held');
      release();
      await Promise.all([first, second]);
      assert.deepEqual(inodes, [statSync(root).ino], 'one flush, of the parent');
      assert.equal(made.durable(dir), undefined, 'nothing to wait for once flushed');
    });
  });

  it('does not flush or hold for a folder that already existed', async () => {
    await withTempDir(async (root) => {
      const { made, inodes } = folders();
      const dir = path.join(root, 'cd');
      await mkdir(dir);
      await made.make(dir);
      assert.equal(made.durable(dir), undefined);
      assert.deepEqual(inodes, []);
    });
  });

  it('retries a failed flush for the uploads that wait, and fails them only when the retry fails', async () => {
    await withTempDir(async (root) => {
      const { made, inodes, hold, failNext } = folders();
      const dir = path.join(root, 'ef');
      failNext(1);
      const release = hold();
      await made.make(dir);
      const waiting = [made.durable(dir), made.durable(dir)];
      release();
      for (const upload of waiting) await upload;
      assert.equal(inodes.length, 2, 'the failed flush and one shared retry');

      const other = path.join(root, '12');
      failNext(2);
      await made.make(other);
      await assert.rejects(made.durable(other) ?? Promise.resolve(), /EIO/);
      // A later upload into the folder tries again instead of trusting the failed flush.
      const later = made.durable(other);
      assert.ok(later !== undefined, 'a folder whose flush failed is still waited for');
      await later;
      assert.equal(inodes.length, 5);
      assert.equal(made.durable(other), undefined);
    });
  });
});
