/**
 * End to end with the real restic client (0.14 in the s3 group, 0.18 in s3-0.18) against Ratchet
 * storing in a real Ceph RGW: a host backs up, checks, restores and is refused a prune; restic's
 * own s3 backend opens the same repository (the recovery path); the admin prunes, and
 * `ratchet trash restore` on the bucket brings back what the prune deleted (--delete-grace).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runRatchet, startRatchetServer } from '../helpers/ratchet-process.ts';
import { freshPrefix, keysUnder, removePrefix, s3Gateway } from '../helpers/s3.ts';
import { inTest, resticEnvironment, step } from '../e2e/fixture.ts';
import { smallTree } from '../e2e/restic-helpers.ts';

describe('restic e2e on S3 storage (Ceph RGW)', { timeout: 600_000 }, () => {
  const gateway = s3Gateway();
  const prefix = freshPrefix('restic');
  const env = resticEnvironment({
    name: 's3',
    password: 'objects elsewhere',
    tree: smallTree,
    repoPath: 'host1/',
  });
  after(() => removePrefix(`${prefix}/`));
  let snapshotIds: string[] = [];

  const admin = () => env.runner(`rest:${env.server.listeners[1]?.url ?? ''}/host1/`, 'admin-cache');
  /** restic's own s3 backend on the repository Ratchet wrote. */
  const direct = () => env.runner(`s3:${gateway.endpoint}/${gateway.bucket}/${prefix}/host1`, 'direct-cache');

  it('starts on the bucket: hosts append-only, the admin listener may prune', step, async () => {
    // restic's s3 backend reads the shared credentials file in its HOME, as users' hosts do.
    await mkdir(path.join(env.home, '.aws'), { recursive: true });
    const credentials = `[default]\naws_access_key_id = ${gateway.accessKey}\naws_secret_access_key = ${gateway.secretKey}\n`;
    await writeFile(path.join(env.home, '.aws', 'credentials'), credentials, { mode: 0o600 });
    const storage = ['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint];
    const args = ['--path', env.dataDir, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'];
    await env.useServer(
      startRatchetServer(
        [
          ...args,
          '--no-auth',
          '--append-only',
          '--delete-grace',
          '7d',
          ...storage,
          '--s3-region',
          gateway.region,
        ],
        2,
      ),
    );
    assert.match(env.server.stdout(), new RegExp(`serving s3://${gateway.bucket}/${prefix} on`));
  });

  it('init and two backups', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await env.modifySource(restic);
    await restic.ok(['backup', '.'], { cwd: env.source });
    snapshotIds = (await restic.snapshots(2)).map((snapshot) => snapshot.id).sort();
  });

  it('check --read-data is clean and the restore is identical', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['check', '--read-data'], { show: 2 });
    await env.restoreLatest(restic, 'restore');
  });

  it('the objects are in restic’s s3 layout, and nothing else is', step, async () => {
    const keys = await keysUnder(`${prefix}/`);
    const repoKeys = keys.filter((key) => key.startsWith(`${prefix}/host1/`));
    const rest = repoKeys.map((key) => key.slice(`${prefix}/host1/`.length));
    assert.ok(rest.includes('config'));
    for (const key of rest) {
      assert.match(
        key,
        /^(config|data\/([0-9a-f]{2})\/\2[0-9a-f]{62}|(keys|snapshots|index)\/[0-9a-f]{64})$/,
        key,
      );
    }
    // The running server's heartbeat (one, its own) is there too.
    const heartbeats = keys.filter((key) => key.startsWith(`${prefix}/.ratchet/instances/`));
    assert.equal(heartbeats.length, 1, 'the server announces itself on the prefix');
    assert.deepEqual(
      keys.filter((key) => !key.startsWith(`${prefix}/host1/`) && !heartbeats.includes(key)),
      [`${prefix}/.ratchet/probe`, `${prefix}/.ratchet/repos/host1/.repo`].filter((key) =>
        keys.includes(key),
      ),
      'besides the repository only the marker, the readiness probe and the heartbeat',
    );
    assert.ok(keys.includes(`${prefix}/.ratchet/repos/host1/.repo`));
  });

  it('the append-only host is refused a prune, and every snapshot stays', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const before = await keysUnder(`${prefix}/host1/`);
    const result = await restic.fails(['forget', '--keep-last', '1', '--prune'], {
      show: 10,
      timeoutMs: 150_000,
    });
    assert.match(result.stderr, /403|Forbidden/i, result.stderr);
    assert.deepEqual((await restic.snapshots(2)).map((snapshot) => snapshot.id).sort(), snapshotIds);
    const afterKeys = await keysUnder(`${prefix}/host1/`);
    assert.deepEqual(
      before.filter((key) => !afterKeys.includes(key) && !key.includes('/locks/')),
      [],
      'no object was deleted',
    );
  });

  it('restic’s own s3 backend lists the same snapshots (the recovery path)', step, async (t) => {
    const restic = inTest(direct(), t);
    assert.deepEqual((await restic.snapshots(2)).map((snapshot) => snapshot.id).sort(), snapshotIds);
  });

  it('the admin prunes; the repository checks clean with one snapshot', step, async (t) => {
    const restic = inTest(admin(), t);
    await restic.ok(['forget', '--keep-last', '1', '--prune'], { show: 10 });
    await restic.snapshots(1);
    await restic.ok(['check', '--read-data'], { show: 2 });
    assert.deepEqual(await keysUnder(`${prefix}/host1/locks/`), [], 'no lock left');
  });

  it('ratchet trash restore on the bucket brings back what the prune deleted', step, async (t) => {
    const storage = ['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint];
    const listed = await runRatchet([
      'trash',
      'list',
      '--path',
      env.dataDir,
      ...storage,
      '--repo',
      '/host1/',
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^\S+Z \/host1\/ snapshots\/[0-9a-f]{64} \d+ bytes$/m);
    assert.doesNotMatch(listed.stdout, / locks\//, 'locks are never kept');
    const restored = await runRatchet([
      'trash',
      'restore',
      '--path',
      env.dataDir,
      ...storage,
      '--repo',
      '/host1/',
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.doesNotMatch(restored.stdout, /^(conflict|damaged)/m);
    const restic = inTest(admin(), t);
    assert.deepEqual((await restic.snapshots(2)).map((snapshot) => snapshot.id).sort(), snapshotIds);
    await restic.ok(['check', '--read-data'], { show: 2 });
    assert.deepEqual(
      await keysUnder(`${prefix}/.ratchet/trash/`),
      [],
      'the trash is empty after the restore',
    );
  });
});
