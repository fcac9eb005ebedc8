/** The data folder lock: one owner, also when several start at once over a stale lock. */
import assert from 'node:assert/strict';
import { readdir, readlink, symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hasCode } from '../../src/errors.ts';
import { acquireDataLock } from '../../src/storage/fs/data-lock.ts';
import { currentProcess, formatIdentity } from '../../src/storage/fs/process-identity.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

describe('data folder lock', () => {
  it('lets exactly one of many concurrent starts take over a lock left by a dead process', async () => {
    await withTempDir(async (dir) => {
      const self = currentProcess();
      // pid_max is at most 2^22 on Linux: no process has this pid.
      await symlink(formatIdentity({ ...self, pid: 99_999_999 }), path.join(dir, 'lock.7'));
      const outcomes = await Promise.allSettled(
        Array.from({ length: 12 }, () => acquireDataLock(dir, '/data', self)),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const refused = outcomes.filter((o) => o.status === 'rejected' && hasCode(o.reason, 'UNAVAILABLE'));
      assert.equal(won.length, 1);
      assert.equal(refused.length, 11);
      const locks = (await readdir(dir)).filter((name) => name.startsWith('lock.'));
      assert.deepEqual(locks, ['lock.8'], 'the stale lock is gone, the new one is the next number');
      assert.equal(await readlink(path.join(dir, 'lock.8')), formatIdentity(self));
      await won[0]?.value.release();
      assert.deepEqual(await readdir(dir), []);
      // Free again: the next start takes it.
      const again = await acquireDataLock(dir, '/data', self);
      await assert.rejects(acquireDataLock(dir, '/data', self), /in use by another ratchet process/);
      await again.release();
    });
  });
});
