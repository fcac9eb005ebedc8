/**
 * The real S3 gateway the s3 test group runs against (a single-node Ceph RGW on loopback, started
 * by scripts/run-tests.mjs with scripts/ceph-s3/start-ceph-s3.sh). Missing settings fail the
 * tests: an S3 test never skips.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/storage/s3/s3-client.ts';
import { S3Storage } from '../../src/storage/s3/s3-storage.ts';
import { waitFor } from './wait.ts';

export interface S3Gateway {
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
}

/** The gateway's settings from the environment; throws when the group did not start one. */
export function s3Gateway(): S3Gateway {
  const get = (name: string): string => {
    const value = process.env[name];
    if (value === undefined || value === '') {
      throw new Error(
        `${name} is not set: run the s3 tests through scripts/run-tests.mjs s3 (it starts Ceph RGW)`,
      );
    }
    return value;
  };
  return {
    endpoint: get('S3_ENDPOINT'),
    region: get('S3_REGION'),
    bucket: get('S3_BUCKET'),
    accessKey: get('AWS_ACCESS_KEY_ID'),
    secretKey: get('AWS_SECRET_ACCESS_KEY'),
  };
}

/** A prefix no other test uses. */
export function freshPrefix(label: string): string {
  return `test-${label}-${randomUUID().slice(0, 8)}`;
}

/** An initialised S3Storage on the prefix of the gateway's bucket (as one server would open it). */
export async function openS3Storage(prefix: string): Promise<S3Storage> {
  const gateway = s3Gateway();
  const storage = new S3Storage({
    location: { bucket: gateway.bucket, prefix: `${prefix}/` },
    endpoint: gateway.endpoint,
    region: gateway.region,
    maxSockets: 16,
  });
  await storage.init();
  return storage;
}

/** An initialised S3Storage on a fresh prefix of the gateway's bucket. */
export async function s3StorageOnFreshPrefix(label: string): Promise<{ storage: S3Storage; prefix: string }> {
  const prefix = freshPrefix(label);
  return { storage: await openS3Storage(prefix), prefix };
}

/** Every key under the prefix (for assertions that nothing else was stored). */
export async function keysUnder(prefix: string): Promise<string[]> {
  return (await objectsUnder(prefix)).map((object) => object.key);
}

/** The bytes of every object under the prefix, by the store's own listing. */
export async function bytesUnder(prefix: string): Promise<number> {
  return (await objectsUnder(prefix)).reduce((sum, object) => sum + object.size, 0);
}

/** Every object under the prefix with its size, sorted by key. */
async function objectsUnder(prefix: string): Promise<{ key: string; size: number }[]> {
  const gateway = s3Gateway();
  const client = createS3Client({ endpoint: gateway.endpoint, region: gateway.region, maxSockets: 4 });
  const objects: { key: string; size: number }[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: gateway.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const item of page.Contents ?? [])
        if (item.Key !== undefined) objects.push({ key: item.Key, size: item.Size ?? 0 });
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  } finally {
    client.destroy();
  }
  return objects.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

/** Removes every key under the prefix. */
export async function removePrefix(prefix: string): Promise<void> {
  const gateway = s3Gateway();
  const keys = await keysUnder(prefix);
  const client = createS3Client({ endpoint: gateway.endpoint, region: gateway.region, maxSockets: 4 });
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((Key) => ({ Key }));
      await client.send(new DeleteObjectsCommand({ Bucket: gateway.bucket, Delete: { Objects: batch } }));
    }
  } finally {
    client.destroy();
  }
}

/**
 * Stops the gateway's radosgw process (the cluster behind it keeps running) and returns the way
 * to start it again with the same command line, as start-ceph-s3.sh started it.
 */
export async function stopGateway(): Promise<{ restart: () => Promise<void> }> {
  const dir = process.env['CEPH_S3_DIR'] ?? '/tmp/ceph-s3';
  const pidFile = path.join(dir, 'pids', 'rgw.pid');
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
  process.kill(pid, 'SIGTERM');
  await waitFor(() => !existsSync(`/proc/${pid}`), 'radosgw to exit', 30_000);
  return {
    async restart() {
      const log = openSync(path.join(dir, 'log', 'rgw.out'), 'a');
      const child = spawn(argv[0] ?? 'radosgw', argv.slice(1), {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      await writeFile(pidFile, `${child.pid}\n`);
      const endpoint = s3Gateway().endpoint;
      await waitFor(
        async () => (await fetch(`${endpoint}/`).catch(() => undefined))?.ok === true,
        'radosgw to answer again',
        60_000,
      );
    },
  };
}

/** The SHA-256 of an object's content, read from the gateway (hex). */
export async function objectSha256(key: string): Promise<string> {
  const gateway = s3Gateway();
  const client = createS3Client({ endpoint: gateway.endpoint, region: gateway.region, maxSockets: 1 });
  try {
    const answer = await client.send(new GetObjectCommand({ Bucket: gateway.bucket, Key: key }));
    const hash = createHash('sha256');
    for await (const chunk of answer.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    return hash.digest('hex');
  } finally {
    client.destroy();
  }
}
