/**
 * End to end with the real restic client against `ratchet --append-only`: backups work, restic
 * can take and remove its own locks, `forget --prune` is refused without harming the repository,
 * and `restic check` passes afterwards. The restic commands and short results are written to the
 * test's diagnostics as a transcript.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tempFilesUnder } from '../helpers/files.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { fullTree, leaveDeadLock, listFiles } from './restic-helpers.ts';

describe('restic e2e, --append-only mode, repo rest:URL/e2e/appendonly/', { timeout: 600_000 }, () => {
  const env = resticEnvironment({
    name: 'append-only',
    password: 'append only, never forget',
    tree: fullTree,
    serverArgs: ['--no-auth', '--append-only'],
    repoPath: 'e2e/appendonly/',
  });
  const repoDir = (): string => path.join(env.dataDir, 'e2e', 'appendonly');
  const locksDir = (): string => path.join(repoDir(), 'locks');
  let snapshotIds: string[] = [];

  const assertNoLocks = async (): Promise<void> => {
    assert.deepEqual(await listFiles(locksDir()), [], `restic's lock files were deleted (${locksDir()})`);
  };

  it('init works', step, async (t) => {
    await inTest(env.rest(), t).ok(['init']);
    await assertNoLocks();
  });

  it('the first backup works and its lock is removed', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await assertNoLocks();
    await restic.snapshots(1);
  });

  it('a second backup after changes works', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await env.modifySource(restic);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await assertNoLocks();
    const snapshots = await restic.snapshots(2);
    snapshotIds = snapshots.map((snapshot) => snapshot.id).sort();
  });

  it('forget --keep-last 1 --prune is refused and the repository stays intact', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const filesBefore = (await listFiles(repoDir())).filter((name) => !name.startsWith('locks/'));
    // restic 0.14 retries the refused DELETE with backoff before it gives up.
    const result = await restic.fails(['forget', '--keep-last', '1', '--prune'], {
      show: 10,
      timeoutMs: 150_000,
    });
    assert.match(result.stderr, /403|Forbidden/i, `restic reports the refusal:\n${result.stderr}`);
    assert.doesNotMatch(result.stdout, /^done$/m, 'prune did not run');

    const snapshots = await restic.snapshots(undefined, 'still ');
    assert.deepEqual(
      snapshots.map((snapshot) => snapshot.id).sort(),
      snapshotIds,
      'all snapshots are listed',
    );
    const filesAfter = (await listFiles(repoDir())).filter((name) => !name.startsWith('locks/'));
    assert.deepEqual(
      filesBefore.filter((name) => !filesAfter.includes(name)),
      [],
      'no file of the repository was deleted',
    );
    await assertNoLocks();
  });

  it('restic check passes afterwards, and check --read-data too', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['check'], { show: 2 });
    await restic.ok(['check', '--read-data'], { show: 2 });
    await assertNoLocks();
  });

  it('restores the latest snapshot identical to the source', step, async (t) => {
    await env.restoreLatest(inTest(env.rest(), t), 'restore');
    await assertNoLocks();
  });

  it('unlock --remove-all can delete a lock left by a killed restic', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const left = await leaveDeadLock(restic, locksDir());
    t.diagnostic(`  killed restic with SIGKILL, lock left behind: ${left.join(', ')}`);
    await restic.ok(['unlock', '--remove-all']);
    await assertNoLocks();
    await restic.ok(['check'], { show: 2 });
  });

  it('leaves no temporary file behind', async () => {
    assert.deepEqual(await tempFilesUnder(env.dataDir), []);
  });
});
