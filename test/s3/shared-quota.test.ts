/**
 * Quotas across two instances on one Ceph RGW prefix with their usage in a real redis-server:
 * uploads racing through both never put more than the quota into the bucket, both instances
 * report the same use, and with Redis stopped and restarted empty, uploads get 503 (Redis away,
 * then the count being rebuilt) and recover without a restart; the recount matches the bucket
 * and nothing partial or unverified is stored. Both run the background scrub, and only the
 * holder of its lease reads the bucket.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blob, raw, upload, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { sampleValue, scrapeMetrics } from '../helpers/metrics.ts';
import { makeTempDir, startRatchetServer } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { startRedis } from '../../bench/redis-server.ts';
import type { RedisServer } from '../../bench/redis-server.ts';
import { freshPrefix, keysUnder, objectSha256, removePrefix, s3Gateway } from '../helpers/s3.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const blobSize = 256 * 1024;
const maxSize = 4 * 1024 * 1024;

describe('quotas shared by two instances on S3 (--state)', { timeout: 240_000 }, () => {
  const gateway = s3Gateway();
  const prefix = freshPrefix('shared-quota');
  let redis: RedisServer;
  const instances: RatchetProcess[] = [];
  let cleanup: () => Promise<void> = () => Promise.resolve();

  before(async () => {
    redis = await startRedis();
    const temp = await makeTempDir();
    cleanup = temp.cleanup;
    const dir = temp.dir;
    for (const name of ['a', 'b']) {
      instances.push(
        await startRatchetServer([
          ...['--path', path.join(dir, name), '--listen', '127.0.0.1:0', '--no-auth', '--prometheus'],
          ...['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint],
          ...['--s3-region', gateway.region, '--state', redis.url, '--max-size', String(maxSize)],
          ...['--scrub-interval', '3s'],
        ]),
      );
    }
  });
  after(async () => {
    for (const instance of instances) assert.equal(await instance.stop(), 0, 'a clean stop');
    await redis.stop();
    await removePrefix(`${prefix}/`);
    await cleanup();
  });

  const [a, b] = [
    (): RatchetProcess => instances[0] as RatchetProcess,
    (): RatchetProcess => instances[1] as RatchetProcess,
  ];

  /** The bytes and objects of the repositories' data as listed, with every object in the bucket hashed. */
  async function storedBytes(): Promise<{ bytes: number; objects: number }> {
    for (const key of await keysUnder(`${prefix}/`)) {
      if (/\/data\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(key))
        assert.equal(await objectSha256(key), path.posix.basename(key), `${key} hashes to its name`);
    }
    let bytes = 0;
    let objects = 0;
    for (const repo of ['race', 'outage']) {
      const listing = await raw(a().url, 'GET', `/${repo}/data/`, { headers: { Accept: v2 } });
      if (listing.status === 404) continue;
      for (const entry of JSON.parse(listing.body.toString()) as { size: number }[]) {
        bytes += entry.size;
        objects++;
      }
    }
    return { bytes, objects };
  }

  /** A sample of the instance's metrics. */
  async function reported(
    instance: RatchetProcess,
    name: string,
    labels: Record<string, string> = {},
  ): Promise<number | undefined> {
    return sampleValue(await scrapeMetrics(instance.url), name, labels);
  }

  /** `ratchet_quota_used_bytes{scope="total"}` as an instance reports it. */
  const reportedTotal = (instance: RatchetProcess): Promise<number | undefined> =>
    reported(instance, 'ratchet_quota_used_bytes', { scope: 'total' });

  it('uploads racing through both instances never exceed the quota, and both report the same use', async () => {
    assert.equal((await raw(a().url, 'POST', '/race/?create=true')).status, 200);
    // One upload through each first: both have their count in (the second waits for the first's),
    // so neither takes all the room just because it was ready sooner.
    for (const instance of [a(), b()])
      assert.equal((await upload(instance.url, '/race/', 'data', blob(blobSize).data)).status, 200);
    const blobs = Array.from({ length: 40 }, () => blob(blobSize));
    const answers: RawResponse[] = await Promise.all(
      blobs.map(({ data }, i) => upload((i % 2 === 0 ? a() : b()).url, '/race/', 'data', data)),
    );
    const statuses = answers.map((answer) => answer.status);
    assert.ok(
      statuses.every((status) => status === 200 || status === 507),
      statuses.join(' '),
    );
    const accepted = statuses.filter((status) => status === 200).length;
    assert.equal(accepted, maxSize / blobSize - 2, 'exactly as many as fit: no overshoot, no room lost');
    assert.ok(
      answers.some((answer, i) => answer.status === 200 && i % 2 === 0) &&
        answers.some((answer, i) => answer.status === 200 && i % 2 === 1),
      'both instances stored some',
    );
    assert.deepEqual(await storedBytes(), { bytes: maxSize, objects: accepted + 2 });
    for (const instance of [a(), b()]) {
      await waitFor(
        async () => (await reportedTotal(instance)) === maxSize,
        'both instances to report the use',
      );
    }
    // Deleting through one instance makes room for an upload through the other.
    const first = blobs[statuses.indexOf(200)];
    assert.ok(first !== undefined);
    assert.equal((await raw(b().url, 'DELETE', `/race/data/${first.name}`)).status, 200);
    assert.equal((await upload(a().url, '/race/', 'data', blob(blobSize).data)).status, 200);
    assert.equal((await upload(b().url, '/race/', 'data', blob(blobSize).data)).status, 507);
  });

  it('with Redis stopped and restarted empty: 503, then a recount, then uploads again', async () => {
    // Room again: the admin's delete of the repository's data through the protocol.
    for (const key of await keysUnder(`${prefix}/race/data/`)) {
      assert.equal((await raw(a().url, 'DELETE', `/race/data/${path.posix.basename(key)}`)).status, 200);
    }
    assert.equal((await raw(a().url, 'POST', '/outage/?create=true')).status, 200);
    const sent: number[] = [];
    const stored = new Set<string>();
    let stop = false;
    // Uploads keep going through both instances while Redis goes away and comes back.
    const uploading = (async () => {
      for (let i = 0; !stop; i++) {
        const object = blob(4096);
        const answer = await upload((i % 2 === 0 ? a() : b()).url, '/outage/', 'data', object.data);
        sent.push(answer.status);
        if (answer.status === 200) stored.add(object.name);
        if (answer.status === 503) assert.ok(Number(answer.headers['retry-after']) > 0, 'Retry-After');
        await sleep(20);
      }
    })();
    await waitFor(() => sent.filter((status) => status === 200).length >= 5, 'uploads before the outage');
    await redis.stop();
    const outageStart = sent.length;
    await waitFor(
      () => sent.slice(outageStart).filter((status) => status === 503).length >= 5,
      '503 while away',
    );
    await redis.start();
    const back = sent.length;
    await waitFor(
      () => sent.slice(back).filter((status) => status === 200).length >= 5,
      'uploads again',
      30_000,
    );
    stop = true;
    await uploading;
    assert.ok(
      sent.every((status) => status === 200 || status === 503),
      `only 200 and 503: ${[...new Set(sent)].join(' ')}`,
    );
    // Nothing acknowledged was lost, nothing refused was stored.
    const listing = await raw(a().url, 'GET', '/outage/data/', { headers: { Accept: v2 } });
    const listed = (JSON.parse(listing.body.toString()) as { name: string }[]).map((entry) => entry.name);
    assert.deepEqual(listed.sort(), [...stored].sort());
    // The recount (by whichever instance holds the lease) matches the bucket, on both instances.
    const inBucket = await storedBytes();
    for (const instance of [a(), b()]) {
      await waitFor(
        async () => (await reportedTotal(instance)) === inBucket.bytes,
        `the reported use to match the bucket's ${inBucket.bytes} bytes`,
        30_000,
      );
    }
    assert.match(a().stderr() + a().stdout() + b().stderr() + b().stdout(), /counting again/);
  });

  it('one instance at a time scrubs the bucket: the holder of the lease', async () => {
    const scrubbed = async (): Promise<number[]> =>
      Promise.all(
        [a(), b()].map(async (instance) => (await reported(instance, 'ratchet_scrub_objects_total')) ?? 0),
      );
    // The lease may have moved with the Redis restart above: count from now on.
    const before = await scrubbed();
    await waitFor(
      async () => (await scrubbed()).some((objects, i) => objects > (before[i] ?? 0)),
      'a scrub pass',
      60_000,
    );
    // Several passes later (one every 3 s), the other instance still has read nothing more.
    await sleep(7000);
    const grew = (await scrubbed()).map((objects, i) => objects - (before[i] ?? 0));
    assert.equal(
      grew.filter((objects) => objects > 0).length,
      1,
      `objects scrubbed per instance: ${grew.join(', ')}`,
    );
  });
});
