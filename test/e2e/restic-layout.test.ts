/**
 * Layout compatibility with restic's local backend (PROTOCOL.md section 8): a repository that
 * `restic init` made in a local folder is served by Ratchet as it is, and a repository made
 * through Ratchet opens with `restic -r <folder>` directly.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tempFilesUnder } from '../helpers/files.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { listFiles, walkTree } from './restic-helpers.ts';
import type { TreeSpec } from './restic-helpers.ts';

const tree: TreeSpec = {
  bigFiles: 2,
  bigFileSize: 6 * 1024 * 1024,
  smallFiles: 500,
  dirs: 5,
  subdirs: 4,
  maxSmallSize: 4096,
};

describe('restic e2e, on-disk layout shared with the local backend', { timeout: 600_000 }, () => {
  // No server at first: the first repository is made by restic alone. Each access path gets its
  // own cache folder so that nothing is read from another path's cache.
  const env = resticEnvironment({ name: 'layout', password: 'one layout for all', tree });

  it('a repo made by `restic init` on a local folder (Ratchet not running yet)', step, async (t) => {
    const restic = inTest(env.local('localrepo', 'cache-local'), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: env.source });
    assert.ok((await stat(path.join(env.dataDir, 'localrepo', 'config'))).isFile());
  });

  it('is served by Ratchet as it is: snapshots, check --read-data, restore, backup', step, async (t) => {
    const server = await env.startServer(['--no-auth']);
    t.diagnostic(`ratchet serves ${env.dataDir} on ${server.url}`);
    const restic = inTest(env.rest('localrepo/', 'cache-rest'), t);
    await restic.snapshots(1);
    await restic.ok(['check', '--read-data'], { show: 2 });
    await env.restoreLatest(restic, 'restore-local-through-rest');

    // Writing into it through Ratchet keeps it a valid local repository.
    await restic.ok(['backup', 'misc', '--tag', 'through-ratchet'], { cwd: env.source });
    const again = inTest(env.local('localrepo', 'cache-local'), t);
    await again.snapshots(2);
    await again.ok(['check', '--read-data'], { show: 2 });
  });

  it('a repo made through Ratchet opens with `restic -r <folder>`', step, async (t) => {
    const through = inTest(env.rest('made/by/ratchet/', 'cache-made-rest'), t);
    await through.ok(['init']);
    await through.ok(['backup', '.'], { cwd: env.source });

    const repoDir = path.join(env.dataDir, 'made', 'by', 'ratchet');
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
    for (const [name, entry] of await walkTree(path.join(env.dataDir, 'made'))) {
      const want = entry.kind === 'dir' ? '700' : '600';
      if (entry.mode.toString(8) !== want) modes.set(name, entry.mode.toString(8));
    }
    assert.deepEqual(Object.fromEntries(modes), {}, 'entries with unexpected permission bits');

    const direct = inTest(env.local(path.join('made', 'by', 'ratchet'), 'cache-made-local'), t);
    await direct.snapshots(1);
    await direct.ok(['check', '--read-data'], { show: 2 });
    await env.restoreLatest(direct, 'restore-rest-through-local');
  });

  it('leaves no temporary file behind', async () => {
    assert.deepEqual(await tempFilesUnder(env.dataDir), []);
  });
});
