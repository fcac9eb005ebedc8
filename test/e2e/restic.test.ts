/**
 * End to end with the real restic client (Debian's package) against the real `ratchet` command,
 * in normal mode: a nested repository through its whole life (init, backups, check --read-data,
 * forget --prune, restore with a byte-for-byte compare, keys, unlock), and the root repository.
 * Every restic command and a short result is written to the test's diagnostics as a transcript.
 */
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tempFilesUnder } from '../helpers/files.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { fullTree, leaveDeadLock, listFiles, smallTree } from './restic-helpers.ts';
import type { KeyJson, SnapshotJson } from './restic-helpers.ts';

const password = 'correct horse battery staple';

describe('restic e2e, normal mode, nested repo rest:URL/e2e/host1/', { timeout: 600_000 }, () => {
  const env = resticEnvironment({
    name: 'normal',
    password,
    tree: fullTree,
    serverArgs: ['--no-auth'],
    repoPath: 'e2e/host1/',
  });
  const repoDir = (...parts: string[]): string => path.join(env.dataDir, 'e2e', 'host1', ...parts);
  let firstSnapshot = '';
  let secondSnapshot = '';

  it('init creates the repository in its nested folder', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    assert.ok((await stat(repoDir('config'))).isFile(), 'config on disk');
    assert.equal((await listFiles(repoDir('keys'))).length, 1, 'one key on disk');
    assert.ok(
      (await stat(repoDir('data'))).isDirectory(),
      'data folder (fan-out folders come with the first pack)',
    );
    const again = await restic.fails(['init'], { show: 0 });
    assert.match(again.stderr, /already exists/, 'a second init is refused');
    t.diagnostic(`  ${again.stderr.trim().split('\n')[0] ?? ''}`);
  });

  it('backs up the generated tree', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['backup', '.', '--host', 'e2e-host'], { cwd: env.source });
    const snapshots = await restic.snapshots(1);
    firstSnapshot = snapshots[0]?.id ?? '';
    const packs = (await listFiles(repoDir('data'))).filter((name) => /^[0-9a-f]{2}\//.test(name));
    assert.ok(packs.length >= 2, `pack files under data/XX/: ${packs.join(', ')}`);
  });

  it('check --read-data passes', step, async (t) => {
    await inTest(env.rest(), t).ok(['check', '--read-data'], { show: 3 });
  });

  it('backs up again after changes', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await env.modifySource(restic);
    await restic.ok(['backup', '.', '--host', 'e2e-host'], { cwd: env.source });
    const snapshots = await restic.snapshots(2);
    secondSnapshot = snapshots.find((snapshot) => snapshot.id !== firstSnapshot)?.id ?? '';
    assert.notEqual(secondSnapshot, '');
  });

  it('forget --keep-last 1 --prune removes the first snapshot and its data', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const packsBefore = await listFiles(repoDir('data'));
    await restic.ok(['forget', '--keep-last', '1', '--prune'], { show: 40 });
    const snapshots = await restic.snapshots(1);
    assert.deepEqual(
      snapshots.map((snapshot) => snapshot.id),
      [secondSnapshot],
    );
    const packsAfter = await listFiles(repoDir('data'));
    const removed = packsBefore.filter((name) => !packsAfter.includes(name));
    assert.ok(removed.length > 0, 'prune deleted at least one pack file');
    const added = packsAfter.filter((name) => !packsBefore.includes(name));
    t.diagnostic(`  pack files on disk: ${removed.length} deleted, ${added.length} written by repacking`);
    await restic.ok(['check'], { show: 2 });
  });

  it('restores the latest snapshot identical to the source, byte for byte', step, async (t) => {
    await env.restoreLatest(inTest(env.rest(), t), 'restore', 2);
  });

  it('key add and key list', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const newPasswordFile = path.join(env.dir, 'new-password');
    await writeFile(newPasswordFile, 'a second password\n');
    await restic.ok(['key', 'add', '--new-password-file', newPasswordFile, '--user', 'e2e', '--host', 'e2e']);
    const keys = await restic.json<KeyJson[]>(['key', 'list']);
    assert.equal(keys.length, 2, JSON.stringify(keys));
    assert.equal(keys.filter((key) => key.current).length, 1);
    t.diagnostic(`  key list --json: ${keys.length} keys (${keys.map((key) => key.id).join(', ')})`);
    assert.equal((await listFiles(repoDir('keys'))).length, 2, 'two keys on disk');
    // The new password opens the repository.
    const withNewKey = await restic.json<SnapshotJson[]>(['snapshots'], {
      env: { RESTIC_PASSWORD: 'a second password' },
    });
    assert.equal(withNewKey.length, 1);
  });

  it('unlock removes a dead lock, unlock --remove-all removes every lock', step, async (t) => {
    const restic = inTest(env.rest(), t);
    const locksDir = repoDir('locks');
    const first = await leaveDeadLock(restic, locksDir);
    t.diagnostic(`  killed restic with SIGKILL, lock left behind: ${first.join(', ')}`);
    await restic.ok(['unlock']);
    assert.deepEqual(await listFiles(locksDir), [], 'unlock removed the lock of the dead process');

    const second = await leaveDeadLock(restic, locksDir);
    t.diagnostic(`  killed restic with SIGKILL, lock left behind: ${second.join(', ')}`);
    await restic.ok(['unlock', '--remove-all']);
    assert.deepEqual(await listFiles(locksDir), [], 'unlock --remove-all removed every lock');
    await restic.ok(['check'], { show: 2 });
  });

  it('leaves no lock and no temporary file behind', async () => {
    assert.deepEqual(await listFiles(repoDir('locks')), []);
    assert.deepEqual(await tempFilesUnder(env.dataDir), []);
  });
});

describe('restic e2e, the root repository rest:URL/', { timeout: 300_000 }, () => {
  const env = resticEnvironment({ name: 'root', password, tree: smallTree, serverArgs: ['--no-auth'] });

  it('init, backup, snapshots, check --read-data and restore on the root repo', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    assert.ok((await stat(path.join(env.dataDir, 'config'))).isFile(), 'config at the data root');
    await restic.ok(['backup', '.'], { cwd: env.source });
    await restic.snapshots(1);
    await restic.ok(['check', '--read-data'], { show: 2 });
    await env.restoreLatest(restic, 'restore');
    assert.deepEqual(await listFiles(path.join(env.dataDir, 'locks')), []);
  });

  it('a nested repo lives beside the root repo in the same data folder', step, async (t) => {
    const nested = inTest(env.rest('beside/root/'), t);
    await nested.ok(['init']);
    await nested.ok(['backup', 'misc'], { cwd: env.source });
    await nested.ok(['check'], { show: 2 });
    const root = inTest(env.rest(), t);
    const snapshots = await root.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, 'the root repo still has exactly its own snapshot');
    await root.ok(['check'], { show: 2 });
  });
});
