/**
 * Nothing lost even to the admin (--delete-grace): after a prune, `ratchet trash restore` brings
 * every deleted object back, and the repository checks clean with both snapshots. Also the wrong
 * prune: a snapshot file moved away behind the server's back makes `restic prune` delete packs
 * that snapshot still needs; with the snapshot back and the trash restored, the repository
 * checks clean again.
 */
import assert from 'node:assert/strict';
import { readdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runRatchet } from '../helpers/ratchet-process.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

describe('restic e2e, the trash', { timeout: 300_000 }, () => {
  const env = resticEnvironment({
    name: 'trash',
    password: 'key',
    tree: smallTree,
    serverArgs: ['--no-auth', '--delete-grace', '7d'],
    repoPath: 'host1/',
  });

  it(
    'restores what forget --prune deleted: both snapshots back, check --read-data clean',
    step,
    async (t) => {
      const restic = inTest(env.rest(), t);
      await restic.ok(['init']);
      await restic.ok(['backup', '.'], { cwd: env.source });
      await env.modifySource(restic);
      await restic.ok(['backup', '.'], { cwd: env.source });
      await restic.ok(['forget', '--keep-last', '1', '--prune']);
      assert.equal((await restic.snapshots()).length, 1);

      const listed = await runRatchet(['trash', 'list', '--path', env.dataDir, '--repo', '/host1/']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /^\S+Z \/host1\/ snapshots\/[0-9a-f]{64} \d+ bytes$/m);
      assert.doesNotMatch(listed.stdout, / locks\//, 'locks are never kept');

      const restored = await runRatchet(['trash', 'restore', '--path', env.dataDir, '--repo', '/host1/']);
      assert.equal(restored.code, 0, restored.stderr);
      assert.doesNotMatch(restored.stdout, /^(conflict|damaged)/m);
      assert.equal((await restic.snapshots()).length, 2);
      await restic.ok(['check', '--read-data']);
      const empty = await runRatchet(['trash', 'list', '--path', env.dataDir]);
      assert.equal(empty.stdout, '', 'the trash is empty after the restore');
    },
  );

  it('repairs a wrong prune: the snapshot put back and the trash restored', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await env.modifySource(restic);
    await restic.ok(['backup', '.'], { cwd: env.source });
    const snapshotsDir = path.join(env.dataDir, 'host1', 'snapshots');
    const newest = (await restic.snapshots()).at(-1)?.id ?? '';
    assert.ok((await readdir(snapshotsDir)).includes(newest));
    // Behind the server's back: the listing then lacks the snapshot, and prune trusts it.
    await rename(path.join(snapshotsDir, newest), path.join(env.dir, newest));
    await restic.ok(['prune']);
    await rename(path.join(env.dir, newest), path.join(snapshotsDir, newest));
    await restic.fails(['check', '--read-data']);

    const restored = await runRatchet([
      'trash',
      'restore',
      '--path',
      env.dataDir,
      '--repo',
      '/host1/',
      '--since',
      '1h',
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    await restic.ok(['check', '--read-data']);
    assert.ok((await restic.snapshots()).some((snapshot) => snapshot.id === newest));
  });
});
