/**
 * Layout compatibility with restic's local backend (PROTOCOL.md section 8): a repository that
 * `restic init` made in a local folder is served by Ratchet as it is, and a repository made
 * through Ratchet opens with `restic -r <folder>` directly.
 */
import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { makeTempDir, startRatchet } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import {
  Restic,
  assertSameTree,
  findTempFiles,
  generateTree,
  listFiles,
  mib,
  walkTree,
} from './restic-helpers.ts';
import type { SnapshotJson, TreeSpec } from './restic-helpers.ts';

const password = 'one layout for all';
const step = { timeout: 180_000 };

const tree: TreeSpec = {
  bigFiles: 2,
  bigFileSize: 6 * 1024 * 1024,
  smallFiles: 500,
  dirs: 5,
  subdirs: 4,
  maxSmallSize: 4096,
};

function inTest(restic: Restic, t: TestContext): Restic {
  return restic.withSink((line) => t.diagnostic(line));
}

describe('restic e2e, on-disk layout shared with the local backend', { timeout: 600_000 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: RatchetProcess | undefined;
  let dataDir: string;
  let source: string;
  /** Settings shared by every runner; each access path gets its own cache so nothing is read from it. */
  let local: (repoDir: string, cache: string) => Restic;
  let rest: (repoPath: string, cache: string) => Restic;

  before(
    async () => {
      tmp = await makeTempDir('ratchet-e2e-layout-');
      dataDir = path.join(tmp.dir, 'data');
      source = path.join(tmp.dir, 'source');
      await mkdir(dataDir);
      await mkdir(path.join(tmp.dir, 'home'));
      const stats = await generateTree(source, 'layout', tree);
      console.log(`generated ${stats.files} files, ${mib(stats.bytes)} in ${source}`);
      const runner = (repo: string, cache: string): Restic =>
        new Restic({
          repo,
          password,
          cacheDir: path.join(tmp.dir, `cache-${cache}`),
          home: path.join(tmp.dir, 'home'),
        });
      local = (repoDir, cache) => runner(path.join(dataDir, repoDir), cache);
      rest = (repoPath, cache) => {
        assert.ok(server, 'ratchet is running');
        return runner(`rest:${server.url}/${repoPath}`, cache);
      };
    },
    { timeout: 60_000 },
  );

  after(async () => {
    const code = await server?.stop();
    await tmp?.cleanup();
    assert.equal(code ?? 0, 0, `ratchet did not exit cleanly:\n${server?.stderr() ?? ''}`);
  });

  it('a repo made by `restic init` on a local folder (Ratchet not running yet)', step, async (t) => {
    const restic = inTest(local('localrepo', 'local'), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: source });
    assert.ok((await stat(path.join(dataDir, 'localrepo', 'config'))).isFile());
  });

  it('is served by Ratchet as it is: snapshots, check --read-data, restore, backup', step, async (t) => {
    server = await startRatchet(dataDir, ['--no-auth']);
    t.diagnostic(`ratchet serves ${dataDir} on ${server.url}`);
    const restic = inTest(rest('localrepo/', 'rest'), t);
    const snapshots = await restic.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, JSON.stringify(snapshots));
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
    await restic.ok(['check', '--read-data'], { show: 2 });
    const target = path.join(tmp.dir, 'restore-local-through-rest');
    await restic.ok(['restore', 'latest', '--target', target], { show: 1 });
    const compared = await assertSameTree(source, target);
    t.diagnostic(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);

    // Writing into it through Ratchet keeps it a valid local repository.
    await restic.ok(['backup', 'misc', '--tag', 'through-ratchet'], { cwd: source });
    const again = inTest(local('localrepo', 'local'), t);
    const all = await again.json<SnapshotJson[]>(['snapshots']);
    assert.equal(all.length, 2, JSON.stringify(all));
    await again.ok(['check', '--read-data'], { show: 2 });
  });

  it('a repo made through Ratchet opens with `restic -r <folder>`', step, async (t) => {
    const through = inTest(rest('made/by/ratchet/', 'made-rest'), t);
    await through.ok(['init']);
    await through.ok(['backup', '.'], { cwd: source });

    const repoDir = path.join(dataDir, 'made', 'by', 'ratchet');
    const files = await listFiles(repoDir);
    assert.ok(files.includes('config'), 'config at the repo root');
    assert.ok(
      files.some((name) => /^data\/([0-9a-f]{2})\/\1[0-9a-f]{62}$/.test(name)),
      `pack files under data/XX/: ${files.filter((name) => name.startsWith('data/')).join(', ')}`,
    );
    for (const type of ['keys', 'snapshots', 'index']) {
      assert.ok(
        files.some((name) => new RegExp(`^${type}/[0-9a-f]{64}$`).test(name)),
        `a file under ${type}/`,
      );
    }

    // Files 0600 and folders 0700, as restic's local backend and rest-server expect (PROTOCOL.md section 8).
    const modes = new Map<string, string>();
    for (const [name, entry] of await walkTree(path.join(dataDir, 'made'))) {
      const want = entry.kind === 'dir' ? '700' : '600';
      if (entry.mode.toString(8) !== want) modes.set(name, entry.mode.toString(8));
    }
    assert.deepEqual(Object.fromEntries(modes), {}, 'entries with unexpected permission bits');

    const direct = inTest(local(path.join('made', 'by', 'ratchet'), 'made-local'), t);
    const snapshots = await direct.json<SnapshotJson[]>(['snapshots']);
    assert.equal(snapshots.length, 1, JSON.stringify(snapshots));
    t.diagnostic(`  snapshots --json: 1 snapshot ${snapshots[0]?.short_id}`);
    await direct.ok(['check', '--read-data'], { show: 2 });
    const target = path.join(tmp.dir, 'restore-rest-through-local');
    await direct.ok(['restore', 'latest', '--target', target], { show: 1 });
    const compared = await assertSameTree(source, target);
    t.diagnostic(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);
  });

  it('leaves no temporary file behind', async () => {
    assert.deepEqual(await findTempFiles(dataDir), []);
  });
});
