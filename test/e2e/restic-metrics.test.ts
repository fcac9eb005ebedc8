/**
 * Metrics after real restic backups: rest-server's blob counters and Ratchet's repository gauges
 * must agree with what is on disk.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { objectTypes } from '../../src/protocol/route.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

/** Samples of the Prometheus text format: metric name with labels → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match?.[1] !== undefined) samples.set(match[1], Number(match[2]));
  }
  return samples;
}

function sum(samples: Map<string, number>, prefix: string, filter: string): number {
  let total = 0;
  for (const [key, value] of samples)
    if (key.startsWith(`${prefix}{`) && key.includes(filter)) total += value;
  return total;
}

async function filesOf(dir: string): Promise<{ file: string; size: number; mtimeMs: number }[]> {
  const out: { file: string; size: number; mtimeMs: number }[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    out.push({ file, size: info.size, mtimeMs: info.mtimeMs });
  }
  return out;
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
    const files = await filesOf(repoDir);
    const onDisk = files.reduce((total, f) => total + f.size, 0);

    const repo = 'repo="host1"';
    const written = sum(samples, 'rest_server_blob_write_bytes_total', repo);
    const deleted = sum(samples, 'rest_server_blob_delete_bytes_total', repo);
    t.diagnostic(`written ${written}, deleted ${deleted} (locks), on disk ${onDisk}`);
    assert.equal(written - deleted, onDisk, 'bytes written less bytes deleted equals bytes on disk');
    assert.equal(samples.get('ratchet_repo_size_bytes{repo="host1"}'), onDisk);

    for (const type of objectTypes) {
      const count = files.filter((f) => f.file.startsWith(path.join(repoDir, type) + path.sep)).length;
      assert.equal(samples.get(`ratchet_repo_objects{repo="host1",type="${type}"}`), count, type);
      const writes = sum(samples, 'rest_server_blob_write_total', `type="${type}"`);
      const deletes = sum(samples, 'rest_server_blob_delete_total', `type="${type}"`);
      assert.equal(writes - deletes, count, `${type}: writes less deletes`);
    }
    assert.equal(samples.get('ratchet_repo_objects{repo="host1",type="snapshots"}'), 2);

    const newest = Math.max(
      ...files.filter((f) => f.file.includes(`${path.sep}snapshots${path.sep}`)).map((f) => f.mtimeMs),
    );
    const reported = samples.get('ratchet_repo_newest_snapshot_timestamp_seconds{repo="host1"}') ?? 0;
    assert.ok(Math.abs(reported - newest / 1000) < 1, `newest snapshot ${reported} vs ${newest / 1000}`);
    assert.ok(sum(samples, 'rest_server_blob_read_total', repo) > 0, 'restic read the config and keys');
    assert.ok((samples.get('ratchet_http_requests_in_flight') ?? 0) >= 1);
  });
});
