/**
 * Metrics after real restic backups: rest-server's blob counters and Ratchet's repository gauges
 * must agree with what is on disk.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { objectTypes } from '../../src/domain/object-types.ts';
import { filesUnder } from '../helpers/files.ts';
import { parseMetrics, sampleValue } from '../helpers/metrics.ts';
import type { Sample } from '../helpers/metrics.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

/** The sum over the samples of a metric that carry these labels (among others). */
function sum(samples: readonly Sample[], name: string, labels: Record<string, string>): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value))
    .reduce((total, s) => total + s.value, 0);
}

describe('metrics after restic backups', { timeout: 300_000 }, () => {
  const env = resticEnvironment({
    name: 'metrics',
    password: 'metrics everywhere',
    tree: smallTree,
    serverArgs: ['--no-auth', '--prometheus'],
    repoPath: 'host1/',
  });

  it('counts what restic wrote and reads the repository gauges from disk', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: env.source });
    await env.modifySource(restic);
    await restic.ok(['backup', '.'], { cwd: env.source });

    const res = await fetch(`${env.server.url}/metrics`);
    assert.equal(res.status, 200);
    const samples = parseMetrics(await res.text());
    const repoDir = path.join(env.dataDir, 'host1');
    const files = await filesUnder(repoDir);
    const onDisk = files.reduce((total, f) => total + f.size, 0);

    const repo = { repo: 'host1' };
    const written = sum(samples, 'rest_server_blob_write_bytes_total', repo);
    const deleted = sum(samples, 'rest_server_blob_delete_bytes_total', repo);
    t.diagnostic(`written ${written}, deleted ${deleted} (locks), on disk ${onDisk}`);
    assert.equal(written - deleted, onDisk, 'bytes written less bytes deleted equals bytes on disk');
    assert.equal(sampleValue(samples, 'ratchet_repo_size_bytes', repo), onDisk);

    for (const type of objectTypes) {
      const count = files.filter((f) => f.file.startsWith(path.join(repoDir, type) + path.sep)).length;
      assert.equal(sampleValue(samples, 'ratchet_repo_objects', { ...repo, type }), count, type);
      const writes = sum(samples, 'rest_server_blob_write_total', { type });
      const deletes = sum(samples, 'rest_server_blob_delete_total', { type });
      assert.equal(writes - deletes, count, `${type}: writes less deletes`);
    }
    assert.equal(sampleValue(samples, 'ratchet_repo_objects', { ...repo, type: 'snapshots' }), 2);

    const newest = Math.max(
      ...files.filter((f) => f.file.includes(`${path.sep}snapshots${path.sep}`)).map((f) => f.mtimeMs),
    );
    const reported = sampleValue(samples, 'ratchet_repo_newest_snapshot_timestamp_seconds', repo) ?? 0;
    assert.ok(Math.abs(reported - newest / 1000) < 1, `newest snapshot ${reported} vs ${newest / 1000}`);
    assert.ok(sum(samples, 'rest_server_blob_read_total', repo) > 0, 'restic read the config and keys');
    assert.ok((sampleValue(samples, 'ratchet_http_requests_in_flight') ?? 0) >= 1);
  });
});
