/**
 * End to end with the real restic client against `ratchet --append-only`: backups work, restic
 * can take and remove its own locks, `forget --prune` is refused without harming the repository,
 * and `restic check` passes afterwards. The restic commands and short results are written to the
 * test's diagnostics as a transcript.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
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
import type { SnapshotJson } from './restic-helpers.ts';

const password = 'append only, never forget';
const step = { timeout: 180_000 };

function inTest(restic: Restic, t: TestContext): Restic {
  return restic.withSink((line) => t.diagnostic(line));
}

describe('restic e2e, --append-only mode, repo rest:URL/e2e/appendonly/', { timeout: 600_000 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: RatchetProcess;
  let dataDir: string;
  let repoDir: string;
  let locksDir: string;
  let source: string;
  let base: Restic;
  let snapshotIds: string[] = [];

  const assertNoLocks = async (): Promise<void> => {
    assert.deepEqual(await listFiles(locksDir), [], `restic's lock files were deleted (${locksDir})`);
  };

  before(
    async () => {
      tmp = await makeTempDir('ratchet-e2e-append-only-');
      dataDir = path.join(tmp.dir, 'data');
      repoDir = path.join(dataDir, 'e2e', 'appendonly');
      locksDir = path.join(repoDir, 'locks');
      source = path.join(tmp.dir, 'source');
      await mkdir(dataDir);
      await mkdir(path.join(tmp.dir, 'home'));
      const stats = await generateTree(source, 'append-only', fullTree);
      console.log(`generated ${stats.files} files, ${mib(stats.bytes)} in ${source}`);
      server = await startRatchet(dataDir, ['--no-auth', '--append-only']);
      base = new Restic({
        repo: `rest:${server.url}/e2e/appendonly/`,
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

  it('init works', step, async (t) => {
    await inTest(base, t).ok(['init']);
    await assertNoLocks();
  });

  it('the first backup works and its lock is removed', step, async (t) => {
    const restic = inTest(base, t);
    await restic.ok(['backup', '.'], { cwd: source });
    await assertNoLocks();
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, JSON.stringify(snapshots));
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
  });

  it('a second backup after changes works', step, async (t) => {
    const restic = inTest(base, t);
    const touched = await modifyTree(source, 'append-only', fullTree);
    t.diagnostic(`changed the source: ${touched.join('; ')}`);
    await restic.ok(['backup', '.'], { cwd: source });
    await assertNoLocks();
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 2, JSON.stringify(snapshots));
    snapshotIds = snapshots.map((snapshot) => snapshot.id).sort();
    t.diagnostic(`  snapshots --json: 2 snapshots ${snapshots.map((s) => s.short_id).join(', ')}`);
  });

  it('forget --keep-last 1 --prune is refused and the repository stays intact', step, async (t) => {
    const restic = inTest(base, t);
    const filesBefore = (await listFiles(repoDir)).filter((name) => !name.startsWith('locks/'));
    // restic 0.14 retries the refused DELETE with backoff before it gives up.
    const result = await restic.fails(['forget', '--keep-last', '1', '--prune'], {
      show: 10,
      timeoutMs: 150_000,
    });
    assert.match(result.stderr, /403|Forbidden/i, `restic reports the refusal:\n${result.stderr}`);
    assert.doesNotMatch(result.stdout, /^done$/m, 'prune did not run');

    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.deepEqual(
      snapshots.map((snapshot) => snapshot.id).sort(),
      snapshotIds,
      'all snapshots are listed',
    );
    t.diagnostic(`  snapshots --json: still ${snapshots.length} snapshots`);
    const filesAfter = (await listFiles(repoDir)).filter((name) => !name.startsWith('locks/'));
    assert.deepEqual(
      filesBefore.filter((name) => !filesAfter.includes(name)),
      [],
      'no file of the repository was deleted',
    );
    await assertNoLocks();
  });

  it('restic check passes afterwards, and check --read-data too', step, async (t) => {
    const restic = inTest(base, t);
    await restic.ok(['check'], { show: 2 });
    await restic.ok(['check', '--read-data'], { show: 2 });
    await assertNoLocks();
  });

  it('restores the latest snapshot identical to the source', step, async (t) => {
    const restic = inTest(base, t);
    const target = path.join(tmp.dir, 'restore');
    await restic.ok(['restore', 'latest', '--target', target], { show: 1 });
    const compared = await assertSameTree(source, target);
    t.diagnostic(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);
    await assertNoLocks();
  });

  it('unlock --remove-all can delete a lock left by a killed restic', step, async (t) => {
    const restic = inTest(base, t);
    const left = await leaveDeadLock(restic, locksDir);
    t.diagnostic(`  killed restic with SIGKILL, lock left behind: ${left.join(', ')}`);
    await restic.ok(['unlock', '--remove-all']);
    await assertNoLocks();
    await restic.ok(['check'], { show: 2 });
  });

  it('leaves no temporary file behind', async () => {
    assert.deepEqual(await findTempFiles(dataDir), []);
  });
});
