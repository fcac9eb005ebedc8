/**
 * Two Ratchet instances on one Ceph RGW bucket with their shared state in a real redis-server,
 * behind a real nginx configured by the block in docs/scale-out.md (read from the document,
 * only its ports changed). The real restic client backs up about 300 MiB through nginx while
 * one instance is killed with SIGKILL in the middle of an upload; restic's retry goes to the
 * other instance, the backup succeeds, the killed instance comes back, a second backup
 * succeeds, `check --read-data` is clean, every content-addressed object in the bucket hashes
 * to its name, and a prune is refused on the hosts' vhost and done on the admin's. Both enforce
 * one shared quota (--max-size) and end up reporting the same use, the bucket's. An instance
 * started without --state beside them is refused.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runRatchet, startRatchetServer } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { freePort } from '../../bench/peers.ts';
import { startRedis } from '../../bench/redis-server.ts';
import type { RedisServer } from '../../bench/redis-server.ts';
import { bytesUnder, freshPrefix, keysUnder, objectSha256, removePrefix, s3Gateway } from '../helpers/s3.ts';
import { waitFor } from '../helpers/wait.ts';
import { sampleValue, scrapeMetrics } from '../helpers/metrics.ts';
import { documentedNginxBlock, startNginx } from '../../bench/nginx.ts';
import type { Nginx } from '../../bench/nginx.ts';
import { inTest, resticEnvironment, step } from '../e2e/fixture.ts';

/**
 * True while an instance is in the upload phase of a backup with an upload in flight: it has
 * stored packs already (so restic's opening reads are over) and is receiving an object.
 */
async function uploadingNow(instance: RatchetProcess): Promise<boolean> {
  const samples = await scrapeMetrics(instance.listeners[1]?.url ?? '');
  const packs = samples
    .filter((sample) => sample.name === 'rest_server_blob_write_total' && sample.labels.type === 'data')
    .reduce((sum, sample) => sum + sample.value, 0);
  return packs >= 2 && (sampleValue(samples, 'ratchet_uploads_in_flight') ?? 0) > 0;
}

/** The uploads nginx's access log shows cut off on an upstream: failed for the client too (no retry). */
function cutUploads(log: string, port: number): string[] {
  return log
    .split('\n')
    .filter((line) => line.startsWith('POST ') && line.includes(`127.0.0.1:${port}`) && !/ 200 /.test(line));
}

describe('two instances behind nginx on S3 with Redis, one killed mid-upload', { timeout: 900_000 }, () => {
  const gateway = s3Gateway();
  const prefix = freshPrefix('scale-out');
  const env = resticEnvironment({
    name: 'scale-out',
    password: 'two of everything',
    // About 300 MiB: 28 files of 10 MiB and a few hundred small ones.
    tree: {
      bigFiles: 28,
      bigFileSize: 10 * 1024 * 1024,
      smallFiles: 200,
      dirs: 4,
      subdirs: 3,
      maxSmallSize: 8192,
    },
  });
  let redis: RedisServer;
  let nginx: Nginx;
  const ports = { hosts: 0, admin: 0, a: 0, b: 0, adminA: 0, adminB: 0 };
  const instances: (RatchetProcess | undefined)[] = [undefined, undefined];

  const startInstance = (index: 0 | 1): Promise<RatchetProcess> => {
    const [listen, adminListen] = index === 0 ? [ports.a, ports.adminA] : [ports.b, ports.adminB];
    return startRatchetServer(
      [
        ...['--path', path.join(env.dataDir, `instance-${index}`)],
        ...['--listen', `127.0.0.1:${listen}`, '--admin-listen', `127.0.0.1:${adminListen}`],
        ...['--no-auth', '--append-only', '--prometheus', '--trusted-proxy', '127.0.0.1'],
        ...['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint],
        ...['--s3-region', gateway.region, '--state', redis.url, '--max-size', '2GiB'],
      ],
      2,
    );
  };

  const hosts = () => env.runner(`rest:http://127.0.0.1:${ports.hosts}/host1/`, 'hosts-cache');
  const admin = () => env.runner(`rest:http://127.0.0.1:${ports.admin}/host1/`, 'admin-cache');

  before(async () => {
    for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort();
    redis = await startRedis();
  });
  after(async () => {
    await nginx?.stop();
    for (const instance of instances) await instance?.stop();
    await redis?.stop();
    await removePrefix(`${prefix}/`);
  });

  it('starts two instances and nginx with the documented configuration', step, async () => {
    instances[0] = await startInstance(0);
    instances[1] = await startInstance(1);
    const block = documentedNginxBlock({
      hosts: ports.hosts,
      admin: ports.admin,
      instances: [ports.a, ports.b],
      adminInstances: [ports.adminA, ports.adminB],
    });
    nginx = await startNginx(path.join(env.dir, 'nginx'), block, ports.hosts);
    const ready = await fetch(`http://127.0.0.1:${ports.hosts}/.ratchet/ready`);
    assert.equal(ready.status, 200);
  });

  it('a third instance without --state is refused while they serve the prefix', step, async () => {
    const refused = await runRatchet([
      ...['--path', path.join(env.dataDir, 'instance-without-state'), '--listen', '127.0.0.1:0'],
      ...['--no-auth', '--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint],
      ...['--s3-region', gateway.region],
    ]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /another Ratchet instance serves s3:\/\/.*--state redis:\/\//);
    const heartbeats = await keysUnder(`${prefix}/.ratchet/instances/`);
    assert.equal(heartbeats.length, 2, 'the refused instance took its heartbeat away again');
  });

  it('backs up about 300 MiB while one instance is killed with an upload in flight', step, async (t) => {
    const restic = inTest(hosts(), t);
    await restic.ok(['init']);
    let backingUp = true;
    const backup = restic
      .run(['backup', '.'], { cwd: env.source, timeoutMs: 600_000 })
      .finally(() => (backingUp = false));
    // The kill must land while an upload is being received; an upload that ends between the
    // look and the kill leaves none cut (nginx then sends the next one elsewhere): try again.
    let cut: string[] = [];
    for (let attempt = 1; cut.length === 0 && backingUp && attempt <= 3; attempt++) {
      const victim = instances[0] ?? (instances[0] = await startInstance(0));
      await waitFor(() => !backingUp || uploadingNow(victim), 'an upload in flight on instance 0', 120_000);
      if (!backingUp) break;
      victim.child.kill('SIGKILL');
      await once(victim.child, 'exit').catch(() => undefined);
      instances[0] = undefined;
      await waitFor(
        async () => !backingUp || cutUploads(await readFile(nginx.accessLog, 'utf8'), ports.a).length > 0,
        'nginx to log the cut upload',
        2000,
      ).catch(() => undefined);
      cut = cutUploads(await readFile(nginx.accessLog, 'utf8'), ports.a);
      t.diagnostic(`kill ${attempt}: ${cut.length > 0 ? 'an upload was cut off' : 'no upload was cut off'}`);
    }
    const result = await backup;
    assert.equal(result.code, 0, result.stderr);
    for (const line of result.stderr.split('\n').filter((text) => /retry|502|Bad Gateway/i.test(text)))
      t.diagnostic(`restic: ${line}`);
    // nginx saw a request to the killed instance fail: an upload cut off there.
    const log = await readFile(nginx.accessLog, 'utf8');
    assert.ok(
      cut.length > 0,
      `an upload to the killed instance was cut off; its lines:\n${log
        .split('\n')
        .filter((line) => line.includes(`:${ports.a}`))
        .join('\n')}`,
    );
    t.diagnostic(`cut off on the killed instance: ${cut.join(' | ')}`);
  });

  it('the killed instance comes back and a second backup succeeds', step, async (t) => {
    instances[0] ??= await startInstance(0);
    await writeFile(path.join(env.source, 'after-the-kill.txt'), 'written after the instance came back\n');
    const restic = inTest(hosts(), t);
    await restic.ok(['backup', '.'], { cwd: env.source, timeoutMs: 600_000 });
    await restic.snapshots(2);
  });

  it('check --read-data is clean, and every object in the bucket hashes to its name', step, async (t) => {
    await inTest(hosts(), t).ok(['check', '--read-data'], { show: 2, timeoutMs: 600_000 });
    const keys = (await keysUnder(`${prefix}/host1/`)).filter((key) => !key.endsWith('/config'));
    assert.ok(keys.length > 20, `objects stored: ${keys.length}`);
    for (const key of keys) {
      if (key.includes('/locks/')) continue;
      assert.equal(await objectSha256(key), path.basename(key), `${key} hashes to its name`);
    }
  });

  it('a prune is refused through the hosts’ vhost and done through the admin’s', step, async (t) => {
    const refused = await inTest(hosts(), t).fails(['forget', '--keep-last', '1', '--prune'], { show: 10 });
    assert.match(refused.stderr, /403|Forbidden/i);
    const restic = inTest(admin(), t);
    await restic.ok(['forget', '--keep-last', '1', '--prune'], { show: 10, timeoutMs: 600_000 });
    await restic.snapshots(1);
    await restic.ok(['check'], { show: 2 });
  });

  it('both instances report the same quota use: what the bucket holds', step, async () => {
    const stored = await bytesUnder(`${prefix}/host1/`);
    const reported = async (instance: RatchetProcess | undefined): Promise<number | undefined> =>
      sampleValue(await scrapeMetrics(instance?.listeners[1]?.url ?? ''), 'ratchet_quota_used_bytes', {
        scope: 'total',
      });
    for (const instance of instances) {
      let last: number | undefined;
      await waitFor(
        async () => (last = await reported(instance)) === stored,
        `an instance to report the bucket's ${stored} bytes`,
        60_000,
      ).catch((err: unknown) => {
        throw new Error(`last reported: ${last}`, { cause: err });
      });
    }
  });
});
