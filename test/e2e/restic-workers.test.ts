/**
 * The restic scenario against --workers 2: restic opens several connections at once, so its
 * requests spread over both workers; the repository must come out whole, prune must find every
 * object (each worker lists the one data folder), and the metrics must add up to what is on disk.
 */
import path from 'node:path';
import { describe, it } from 'node:test';
import { filesUnder } from '../helpers/files.ts';
import { sampleValue, scrapeMetrics } from '../helpers/metrics.ts';
import { waitFor } from '../helpers/wait.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

describe('restic against two workers', { timeout: 300_000 }, () => {
  const env = resticEnvironment({
    name: 'workers',
    password: 'two workers, one repository',
    tree: smallTree,
    serverArgs: ['--no-auth', '--prometheus', '--workers', '2'],
    repoPath: 'host1/',
  });

  it('backs up, checks, restores and prunes', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await env.modifySource(restic);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await restic.snapshots(2);
    await restic.ok(['check', '--read-data']);
    await env.restoreLatest(restic, 'restored');
    await restic.ok(['forget', '--keep-last', '1', '--prune']);
    await restic.snapshots(1);
    await restic.ok(['check', '--read-data']);
    await env.restoreLatest(restic, 'restored-after-prune');

    // One view over both workers: the repository gauge is what is on disk.
    const files = await filesUnder(path.join(env.dataDir, 'host1'));
    const onDisk = files.reduce((total, file) => total + file.size, 0);
    let shown: number | undefined;
    await waitFor(async () => {
      shown = sampleValue(await scrapeMetrics(env.server.url), 'ratchet_repo_size_bytes', { repo: 'host1' });
      return shown === onDisk;
    }, `the repository gauge (${shown}) to show the ${onDisk} bytes on disk`);
  });
});
