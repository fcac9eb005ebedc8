/**
 * The data folder's own state through the real `ratchet` command: one server per data folder
 * (a second is refused, a killed one's lock is taken over), and a shutdown on a full disk
 * (issue 19, case 7) that logs the failed index save and exits cleanly.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { errnoCode } from '../../src/errors.ts';
import { raw, v2 } from '../helpers/http.ts';
import { startRatchet, withTempDir } from '../helpers/ratchet-process.ts';
import { backdate, writeObject } from '../storage/index-helpers.ts';
import { remount, withTmpfs } from './operations-helpers.ts';

describe('one server per data folder', () => {
  it('refuses a second server on the same data folder, and takes over after the first was killed', async () => {
    await withTempDir(async (dataDir) => {
      const first = await startRatchet(dataDir, ['--no-auth']);
      try {
        await assert.rejects(
          startRatchet(dataDir, ['--no-auth']),
          (err: Error) =>
            /exited \(1\)/.test(err.message) &&
            err.message.includes(
              `the data folder ${dataDir} is in use by another ratchet process (pid ${first.child.pid})`,
            ),
        );
        // The refused server touched nothing the first one uses.
        assert.equal((await raw(first.url, 'POST', '/r/?create=true')).status, 200);
      } finally {
        const exited = once(first.child, 'exit');
        first.child.kill('SIGKILL');
        await exited;
      }
      const next = await startRatchet(dataDir, ['--no-auth']);
      try {
        assert.equal((await raw(next.url, 'GET', '/r/keys/', { headers: { Accept: v2 } })).status, 200);
      } finally {
        assert.equal(await next.stop(), 0);
      }
      assert.deepEqual(
        (await readdir(path.join(dataDir, '.ratchet'))).filter((name) => name.startsWith('lock')),
        [],
        'the lock is released on a clean exit',
      );
    });
  });
});

describe('shutdown on a full disk', () => {
  it('logs the failed index save, leaves no temporary file and exits 0', async () => {
    await withTmpfs('6m', async (dataDir) => {
      const server = await startRatchet(dataDir, ['--no-auth']);
      let exit: number | null;
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        // Enough objects for an index of several write buffers.
        for (let i = 0; i < 400; i++) await writeObject(dataDir, 'r', 'data', 64);
        await backdate(dataDir);
        const listed = await raw(server.url, 'GET', '/r/data/', { headers: { Accept: v2 } });
        assert.equal((JSON.parse(listed.body.toString()) as unknown[]).length, 400);
        // Fill the disk.
        const filler = await open(path.join(dataDir, 'filler'), 'w');
        try {
          const block = Buffer.alloc(64 * 1024, 7);
          for (;;) await filler.write(block);
        } catch (err) {
          assert.equal(errnoCode(err), 'ENOSPC');
        } finally {
          await filler.close();
        }
      } finally {
        exit = await server.stop();
      }
      assert.equal(exit, 0, server.stderr());
      assert.match(server.stderr(), /saving the object index failed/);
      assert.deepEqual(
        (await readdir(path.join(dataDir, '.ratchet'))).filter((name) => name.endsWith('.tmp')),
        [],
      );
    });
  });
});

describe('start on a read-only data folder', () => {
  it('serves reads without taking the lock, and exits 0', async () => {
    await withTmpfs('4m', async (dataDir) => {
      const first = await startRatchet(dataDir, ['--no-auth']);
      try {
        assert.equal((await raw(first.url, 'POST', '/r/?create=true')).status, 200);
        await writeObject(dataDir, 'r', 'keys', 100);
      } finally {
        assert.equal(await first.stop(), 0);
      }
      await remount(dataDir, 'ro');
      try {
        const server = await startRatchet(dataDir, ['--no-auth']);
        try {
          const listed = await raw(server.url, 'GET', '/r/keys/', { headers: { Accept: v2 } });
          assert.equal(listed.status, 200);
          assert.equal((JSON.parse(listed.body.toString()) as unknown[]).length, 1);
          assert.match(server.stderr(), /starting without its lock/);
        } finally {
          assert.equal(await server.stop(), 0);
        }
      } finally {
        await remount(dataDir, 'rw');
      }
    });
  });
});
