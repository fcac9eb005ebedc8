/**
 * End to end with the real restic client (Debian's package) against the real `ratchet` command,
 * in normal mode: a nested repository through its whole life (init, backups, check --read-data,
 * forget --prune, restore with a byte-for-byte compare, keys, unlock), and the root repository.
 * Every restic command and a short result is written to the test's diagnostics as a transcript.
 */
import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { makeTempDir, startRatchet } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import {
  Restic,
  assertSameTree,
  findTempFiles,
  fullTree,
  generateTree,
  leaveDeadLock,
  listFiles,
  mib,
  modifyTree,
} from './restic-helpers.ts';
import type { KeyJson, SnapshotJson, TreeSpec } from './restic-helpers.ts';

const password = 'correct horse battery staple';
const step = { timeout: 180_000 };

/** The restic runner for one test, its transcript going to the test's diagnostics. */
function inTest(restic: Restic, t: TestContext): Restic {
  return restic.withSink((line) => t.diagnostic(line));
}

describe('restic e2e, normal mode, nested repo rest:URL/e2e/host1/', { timeout: 600_000 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: RatchetProcess;
  let dataDir: string;
  let repoDir: string;
  let source: string;
  let base: Restic;
  let firstSnapshot = '';
  let secondSnapshot = '';

  before(
    async () => {
      tmp = await makeTempDir('ratchet-e2e-normal-');
      dataDir = path.join(tmp.dir, 'data');
      repoDir = path.join(dataDir, 'e2e', 'host1');
      source = path.join(tmp.dir, 'source');
      await mkdir(dataDir);
      await mkdir(path.join(tmp.dir, 'home'));
      const stats = await generateTree(source, 'normal', fullTree);
      console.log(`generated ${stats.files} files, ${mib(stats.bytes)} in ${source}`);
      server = await startRatchet(dataDir, ['--no-auth']);
      base = new Restic({
        repo: `rest:${server.url}/e2e/host1/`,
        password,
        cacheDir: path.join(tmp.dir, 'cache'),
        home: path.join(tmp.dir, 'home'),
      });
    },
    { timeout: 60_000 },
  );

  after(async () => {
    const code = await server?.stop();
    await tmp?.cleanup();
    assert.equal(code, 0, `ratchet did not exit cleanly:\n${server?.stderr()}`);
  });

  it('init creates the repository in its nested folder', step, async (t) => {
    const restic = inTest(base, t);
    await restic.ok(['init']);
    assert.ok((await stat(path.join(repoDir, 'config'))).isFile(), 'config on disk');
    assert.equal((await listFiles(path.join(repoDir, 'keys'))).length, 1, 'one key on disk');
    assert.ok((await stat(path.join(repoDir, 'data', 'ff'))).isDirectory(), 'data fan-out folders');
    const again = await restic.fails(['init'], { show: 0 });
    assert.match(again.stderr, /already exists/, 'a second init is refused');
    t.diagnostic(`  ${again.stderr.trim().split('\n')[0] ?? ''}`);
  });

  it('backs up the generated tree', step, async (t) => {
    const restic = inTest(base, t);
    await restic.ok(['backup', '.', '--host', 'e2e-host'], { cwd: source });
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, JSON.stringify(snapshots));
    firstSnapshot = snapshots[0]?.id ?? '';
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
    const packs = (await listFiles(path.join(repoDir, 'data'))).filter((name) => /^[0-9a-f]{2}\//.test(name));
    assert.ok(packs.length >= 2, `pack files under data/XX/: ${packs.join(', ')}`);
  });

  it('check --read-data passes', step, async (t) => {
    await inTest(base, t).ok(['check', '--read-data'], { show: 3 });
  });

  it('backs up again after changes', step, async (t) => {
    const restic = inTest(base, t);
    const touched = await modifyTree(source, 'normal', fullTree);
    t.diagnostic(`changed the source: ${touched.join('; ')}`);
    await restic.ok(['backup', '.', '--host', 'e2e-host'], { cwd: source });
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 2, JSON.stringify(snapshots));
    secondSnapshot = snapshots.find((snapshot) => snapshot.id !== firstSnapshot)?.id ?? '';
    assert.notEqual(secondSnapshot, '');
    t.diagnostic(`  snapshots --json: 2 snapshots`);
  });

  it('forget --keep-last 1 --prune removes the first snapshot and its data', step, async (t) => {
    const restic = inTest(base, t);
    const packsBefore = await listFiles(path.join(repoDir, 'data'));
    await restic.ok(['forget', '--keep-last', '1', '--prune'], { show: 40 });
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.deepEqual(
      snapshots.map((snapshot) => snapshot.id),
      [secondSnapshot],
    );
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
    const packsAfter = await listFiles(path.join(repoDir, 'data'));
    const removed = packsBefore.filter((name) => !packsAfter.includes(name));
    assert.ok(removed.length > 0, 'prune deleted at least one pack file');
    const added = packsAfter.filter((name) => !packsBefore.includes(name));
    t.diagnostic(`  pack files on disk: ${removed.length} deleted, ${added.length} written by repacking`);
    await restic.ok(['check'], { show: 2 });
  });

  it('restores the latest snapshot identical to the source, byte for byte', step, async (t) => {
    const restic = inTest(base, t);
    const target = path.join(tmp.dir, 'restore');
    await restic.ok(['restore', 'latest', '--target', target], { show: 2 });
    const compared = await assertSameTree(source, target);
    t.diagnostic(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);
  });

  it('key add and key list', step, async (t) => {
    const restic = inTest(base, t);
    const newPasswordFile = path.join(tmp.dir, 'new-password');
    await writeFile(newPasswordFile, 'a second password\n');
    await restic.ok(['key', 'add', '--new-password-file', newPasswordFile, '--user', 'e2e', '--host', 'e2e']);
    const keys = await restic.json<KeyJson[]>(['key', 'list']);
    assert.equal(keys.length, 2, JSON.stringify(keys));
    assert.equal(keys.filter((key) => key.current).length, 1);
    t.diagnostic(`  key list --json: ${keys.length} keys (${keys.map((key) => key.id).join(', ')})`);
    assert.equal((await listFiles(path.join(repoDir, 'keys'))).length, 2, 'two keys on disk');
    // The new password opens the repository.
    const withNewKey = await restic.json<SnapshotJson[]>(['snapshots'], {
      env: { RESTIC_PASSWORD: 'a second password' },
    });
    assert.equal(withNewKey.length, 1);
  });

  it('unlock removes a dead lock, unlock --remove-all removes every lock', step, async (t) => {
    const restic = inTest(base, t);
    const locksDir = path.join(repoDir, 'locks');
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
    assert.deepEqual(await listFiles(path.join(repoDir, 'locks')), []);
    assert.deepEqual(await findTempFiles(dataDir), []);
  });
});

const smallTree: TreeSpec = {
  bigFiles: 1,
  bigFileSize: 5 * 1024 * 1024,
  smallFiles: 300,
  dirs: 5,
  subdirs: 3,
  maxSmallSize: 4096,
};

describe('restic e2e, the root repository rest:URL/', { timeout: 300_000 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: RatchetProcess;
  let dataDir: string;
  let source: string;
  let base: Restic;

  before(
    async () => {
      tmp = await makeTempDir('ratchet-e2e-root-');
      dataDir = path.join(tmp.dir, 'data');
      source = path.join(tmp.dir, 'source');
      await mkdir(dataDir);
      await mkdir(path.join(tmp.dir, 'home'));
      await generateTree(source, 'root', smallTree);
      server = await startRatchet(dataDir, ['--no-auth']);
      base = new Restic({
        repo: `rest:${server.url}/`,
        password,
        cacheDir: path.join(tmp.dir, 'cache'),
        home: path.join(tmp.dir, 'home'),
      });
    },
    { timeout: 60_000 },
  );

  after(async () => {
    const code = await server?.stop();
    await tmp?.cleanup();
    assert.equal(code, 0, `ratchet did not exit cleanly:\n${server?.stderr()}`);
  });

  it('init, backup, snapshots, check --read-data and restore on the root repo', step, async (t) => {
    const restic = inTest(base, t);
    await restic.ok(['init']);
    assert.ok((await stat(path.join(dataDir, 'config'))).isFile(), 'config at the data root');
    await restic.ok(['backup', '.'], { cwd: source });
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, JSON.stringify(snapshots));
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
    await restic.ok(['check', '--read-data'], { show: 2 });
    const target = path.join(tmp.dir, 'restore');
    await restic.ok(['restore', 'latest', '--target', target], { show: 1 });
    const compared = await assertSameTree(source, target);
    t.diagnostic(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);
    assert.deepEqual(await listFiles(path.join(dataDir, 'locks')), []);
  });

  it('a nested repo lives beside the root repo in the same data folder', step, async (t) => {
    const nested = inTest(base.forRepo(`rest:${server.url}/beside/root/`), t);
    await nested.ok(['init']);
    await nested.ok(['backup', 'misc'], { cwd: source });
    await nested.ok(['check'], { show: 2 });
    const root = inTest(base, t);
    const snapshots = await root.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, 'the root repo still has exactly its own snapshot');
    await root.ok(['check'], { show: 2 });
  });
});
