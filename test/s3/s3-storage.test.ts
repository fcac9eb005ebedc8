/**
 * What only the S3 backend has to prove, against a real Ceph RGW: the start-up probe of
 * conditional create, exclusive create across several servers, the store's own check of the
 * signed payload hash, bodies without a declared length, listings longer than a page, and the
 * gateway stopped and started again under a running server (503 with Retry-After and readiness
 * 503, then recovery).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { ObjectRef } from '../../src/domain/object-ref.ts';
import { createS3Client } from '../../src/storage/s3/s3-client.ts';
import { RatchetError } from '../../src/errors.ts';
import type { S3Storage } from '../../src/storage/s3/s3-storage.ts';
import type { UploadCheck } from '../../src/storage/storage.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import { raw, sha256, upload } from '../helpers/http.ts';
import { startRatchetServer, withTempDir, type RatchetProcess } from '../helpers/ratchet-process.ts';
import {
  freshPrefix,
  openS3Storage,
  keysUnder,
  removePrefix,
  s3Gateway,
  s3StorageOnFreshPrefix,
  stopGateway,
} from '../helpers/s3.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const prefixes: string[] = [];
after(async () => {
  for (const prefix of prefixes) await removePrefix(`${prefix}/`);
});

async function fresh(label: string): Promise<S3Storage> {
  const { storage, prefix } = await s3StorageOnFreshPrefix(label);
  prefixes.push(prefix);
  return storage;
}

/** Runs the test against `ratchet --storage s3://<bucket>/<fresh prefix>`, then insists on a clean exit. */
async function withS3Server(
  label: string,
  args: readonly string[],
  test: (server: RatchetProcess, prefix: string) => Promise<void>,
): Promise<void> {
  const gateway = s3Gateway();
  const prefix = freshPrefix(label);
  prefixes.push(prefix);
  await withTempDir(async (dir) => {
    const server = await startRatchetServer([
      ...['--path', dir, '--listen', '127.0.0.1:0', '--no-auth', ...args],
      ...['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint],
    ]);
    try {
      await test(server, prefix);
    } finally {
      assert.equal(await server.stop(), 0, server.stderr());
    }
  });
}

const code = (expected: string) => (err: unknown) => err instanceof RatchetError && err.code === expected;

describe('S3 backend on Ceph RGW', () => {
  it('finds at start that the store honours If-None-Match, and leaves no probe key', async () => {
    const { storage, prefix } = await s3StorageOnFreshPrefix('probe');
    prefixes.push(prefix);
    assert.equal(storage.conditionalCreate, true);
    assert.deepEqual(await keysUnder(`${prefix}/`), []);
    await storage.close();
  });

  it('lets exactly one of 8 servers create a name they all upload at once', async () => {
    const first = await fresh('race');
    await first.createRepo(['r']);
    const prefix = prefixes.at(-1) ?? '';
    const servers = await Promise.all(Array.from({ length: 8 }, () => openS3Storage(prefix)));
    for (let round = 0; round < 3; round++) {
      const data = randomBytes(256 * 1024);
      const ref: ObjectRef = { repo: ['r'], type: 'data', name: sha256(data) };
      const results = await Promise.all(
        servers.map((storage) =>
          writeChecked(storage, ref, Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), {
            sha256: ref.name,
            length: data.length,
          }),
        ),
      );
      assert.equal(results.filter((result) => result.created).length, 1, `round ${round}`);
      assert.equal(await first.stat(ref), data.length);
    }
    await Promise.all([first, ...servers].map((storage) => storage.close()));
  });

  it('is refused by the store itself when the body does not match the signed hash', async () => {
    const storage = await fresh('payload');
    await storage.createRepo(['r']);
    const data = randomBytes(70_000);
    const ref: ObjectRef = { repo: ['r'], type: 'data', name: sha256(Buffer.from('something else')) };
    // A check that approves anything: only the store's verification of the payload hash is left.
    const blind: UploadCheck = {
      expected: { sha256: ref.name, length: data.length },
      approve: () => ({ sha256: ref.name, size: data.length, verified: true }),
    };
    await assert.rejects(storage.write(ref, Readable.from([data]), { check: blind }), code('HASH_MISMATCH'));
    assert.equal(await storage.stat(ref), undefined);
    await storage.close();
  });

  it('buffers a body without a declared length up to 8 MiB, and refuses a longer one with 411', async () => {
    const storage = await fresh('chunked');
    await storage.createRepo(['r']);
    const small = randomBytes(1024 * 1024);
    const smallRef: ObjectRef = { repo: ['r'], type: 'data', name: sha256(small) };
    const stored = await writeChecked(storage, smallRef, Readable.from([small]), {
      sha256: smallRef.name,
      length: undefined,
    });
    assert.deepEqual(stored, { created: true, size: small.length });
    const large = randomBytes(9 * 1024 * 1024);
    const largeRef: ObjectRef = { repo: ['r'], type: 'data', name: sha256(large) };
    await assert.rejects(
      writeChecked(storage, largeRef, Readable.from([large]), { sha256: largeRef.name, length: undefined }),
      code('LENGTH_REQUIRED'),
    );
    assert.equal(await storage.stat(largeRef), undefined);
    await storage.close();
  });

  it('lists a data folder larger than one page exactly: each object once, nothing missing', async () => {
    const storage = await fresh('listing');
    const prefix = prefixes.at(-1) ?? '';
    await storage.createRepo(['r']);
    const gateway = s3Gateway();
    const client = createS3Client({ endpoint: gateway.endpoint, region: gateway.region, maxSockets: 32 });
    const names = Array.from({ length: 1500 }, (_, i) => sha256(Buffer.from(`listing ${i}`)));
    const put = (key: string) =>
      client.send(
        new PutObjectCommand({ Bucket: gateway.bucket, Key: key, Body: Buffer.from('x'), ContentLength: 1 }),
      );
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < names.length; i = next++) {
        const name = names[i] ?? '';
        await put(`${prefix}/r/data/${name.slice(0, 2)}/${name}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    // Keys outside restic's layout are never listed.
    await put(`${prefix}/r/data/zz/${names[0] ?? ''}`);
    await put(`${prefix}/r/data/${names[1]?.slice(0, 2) === 'ab' ? 'cd' : 'ab'}/${names[1] ?? ''}`);
    client.destroy();
    const listed: string[] = [];
    for await (const entry of storage.list(['r'], 'data')) listed.push(entry.name);
    assert.equal(listed.length, names.length);
    assert.deepEqual(listed.sort(), [...names].sort());
    await storage.close();
  });

  it('keeps quotas, metrics, identical re-uploads and admin deletes as on a local folder', async () => {
    await withS3Server('quota', ['--prometheus', '--max-size', '150KiB'], async (server, prefix) => {
      assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
      const first = randomBytes(60_000);
      assert.equal((await upload(server.url, '/r/', 'data', first)).status, 200);
      assert.equal((await upload(server.url, '/r/', 'data', first)).status, 200, 'identical re-upload');
      const second = randomBytes(100_000);
      const refused = await upload(server.url, '/r/', 'data', second);
      assert.equal(refused.status, 507, refused.body.toString());
      assert.equal((await raw(server.url, 'HEAD', `/r/data/${sha256(second)}`)).status, 404);
      assert.deepEqual(
        (await keysUnder(`${prefix}/r/data/`)).map((key) => key.split('/').at(-1)),
        [sha256(first)],
      );
      const metrics = (await raw(server.url, 'GET', '/metrics')).body.toString();
      assert.match(metrics, /^ratchet_repo_size_bytes\{repo="r"\} 60000$/m);
      assert.equal((await raw(server.url, 'DELETE', `/r/data/${sha256(first)}`)).status, 200);
      assert.deepEqual(await keysUnder(`${prefix}/r/data/`), []);
      assert.equal((await upload(server.url, '/r/', 'data', second)).status, 200, 'room again');
    });
  });

  it('answers 503 with Retry-After while the gateway is down, and recovers without a restart', async () => {
    await withS3Server('outage', [], async (server) => {
      assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
      const before = randomBytes(5000);
      assert.equal((await upload(server.url, '/r/', 'data', before)).status, 200);

      const gatewayStop = await stopGateway();
      try {
        const during = randomBytes(5000);
        const refused = await upload(server.url, '/r/', 'data', during);
        assert.equal(refused.status, 503, refused.body.toString());
        assert.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After');
        assert.doesNotMatch(refused.body.toString(), /\n\s+at /, 'no stack trace');
        const read = await raw(server.url, 'GET', `/r/data/${sha256(before)}`);
        assert.equal(read.status, 503);
        await sleep(1100); // the readiness answer is cached for a second
        assert.equal((await raw(server.url, 'GET', '/.ratchet/ready')).status, 503);
      } finally {
        await gatewayStop.restart();
      }
      await waitFor(
        async () => (await raw(server.url, 'GET', '/.ratchet/ready')).status === 200,
        'readiness after the gateway is back',
        30_000,
      );
      const afterwards = randomBytes(5000);
      assert.equal((await upload(server.url, '/r/', 'data', afterwards)).status, 200);
      const read = await raw(server.url, 'GET', `/r/data/${sha256(before)}`);
      assert.equal(read.status, 200);
      assert.ok(read.body.equals(before));
      assert.match(server.stderr(), /object storage unavailable/);
    });
  });
});
