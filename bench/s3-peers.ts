/**
 * The S3 rows of the bench (`npm run bench -- --s3`): Ratchet with --storage s3:// and
 * `rclone serve restic` on an S3 remote, both on the same single-node Ceph RGW on loopback
 * (scripts/ceph-s3/start-ceph-s3.sh, started or reused). Each gets its own prefix of the bucket,
 * seeded with the listing repository (10k data objects) before it starts.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/storage/s3/s3-client.ts';
import { listingRepo } from './fixtures.ts';
import { freePort, launch, startRatchetProcess } from './peers.ts';
import type { PeerSpec, ServerHandle } from './peers.ts';
import { documentedNginxBlock, startNginx } from './nginx.ts';
import type { Nginx } from './nginx.ts';
import { startRedis } from './redis-server.ts';

/** Data objects in each S3 peer's listing repository (a bucket listing is ~85 ms per 1000 keys). */
export const s3ListObjects = 10_000;

interface Gateway {
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly env: Readonly<Record<string, string>>;
}

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
let gateway: Gateway | undefined;

/** Starts (or reuses) the Ceph RGW gateway; throws with its log when it cannot. */
export function cephGateway(): Gateway {
  if (gateway !== undefined) return gateway;
  const script = path.join(projectRoot, 'scripts', 'ceph-s3', 'start-ceph-s3.sh');
  const started = spawnSync('bash', [script], { encoding: 'utf8', timeout: 300_000 });
  if (started.status !== 0) throw new Error(`Ceph RGW did not start:\n${started.stderr.slice(-2000)}`);
  const values = Object.fromEntries(
    started.stdout
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((match) => match !== null)
      .map((match) => [match[1] ?? '', match[2] ?? '']),
  );
  const need = (key: string): string => {
    const value = values[key];
    if (value === undefined) throw new Error(`start-ceph-s3.sh printed no ${key}`);
    return value;
  };
  gateway = {
    endpoint: need('S3_ENDPOINT'),
    region: need('S3_REGION'),
    bucket: need('S3_BUCKET'),
    env: {
      AWS_ACCESS_KEY_ID: need('S3_ACCESS_KEY_ID'),
      AWS_SECRET_ACCESS_KEY: need('S3_SECRET_ACCESS_KEY'),
      AWS_REGION: need('S3_REGION'),
    },
  };
  return gateway;
}

/** Writes the listing repository under the prefix: config, marker and data objects, 64 at a time. */
async function seedListing(g: Gateway, prefix: string, count: number): Promise<void> {
  Object.assign(process.env, g.env);
  const client = createS3Client({ endpoint: g.endpoint, region: g.region, maxSockets: 64 });
  const put = (key: string, body: Buffer) =>
    client.send(new PutObjectCommand({ Bucket: g.bucket, Key: key, Body: body, ContentLength: body.length }));
  try {
    await put(`${prefix}/${listingRepo}/config`, Buffer.from('bench listing config'));
    await put(`${prefix}/.ratchet/repos/${listingRepo}/.repo`, Buffer.alloc(0));
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < count; i = next++) {
        const body = Buffer.from(`ratchet bench listing object ${i}\n`);
        const name = createHash('sha256').update(body).digest('hex');
        await put(`${prefix}/${listingRepo}/data/${name.slice(0, 2)}/${name}`, body);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
  } finally {
    client.destroy();
  }
}

/**
 * Both Ratchet peers on S3 enforce a quota, as the deployment of docs/scale-out.md does: every
 * upload reserves its room (in memory for one instance, in Redis for two).
 */
const quota = ['--max-size', '1TiB'];

/** Ratchet storing in the gateway's bucket. */
export function ratchetS3Peer(entry: string): PeerSpec {
  return {
    name: 'ratchet-s3',
    debianPackages: [],
    behaviour:
      'stores in Ceph RGW (S3): the name signed as the payload hash (the store verifies), If-None-Match: * ' +
      '(exclusive create), the last chunk held until the upload check approves; --max-size 1TiB',
    unavailable: () => (existsSync(entry) ? undefined : `${entry} not built`),
    async start(workDir) {
      const g = cephGateway();
      const prefix = `bench-ratchet-${randomUUID().slice(0, 8)}`;
      await seedListing(g, prefix, s3ListObjects);
      const storage = ['--storage', `s3://${g.bucket}/${prefix}`, '--s3-endpoint', g.endpoint, ...quota];
      const handle = await startRatchetProcess(entry, 'ratchet-s3', workDir, storage, g.env);
      return { ...handle, listObjects: s3ListObjects };
    },
  };
}

/** `rclone serve restic` on an S3 remote of the same gateway (no verification, no conditional create). */
export function rcloneS3Peer(): PeerSpec {
  return {
    name: 'rclone-s3',
    debianPackages: ['rclone'],
    behaviour:
      'rclone serve restic on an S3 remote of the same Ceph RGW: no SHA-256 verification, no exclusive create',
    unavailable: () => (existsSync('/usr/bin/rclone') ? undefined : 'rclone is not installed'),
    async start(workDir) {
      const g = cephGateway();
      const prefix = `bench-rclone-${randomUUID().slice(0, 8)}`;
      await seedListing(g, prefix, s3ListObjects);
      const port = await freePort();
      const remote = `:s3,provider=Ceph,force_path_style=true,endpoint='${g.endpoint}':${g.bucket}/${prefix}`;
      const args = ['serve', 'restic', '--config', '/dev/null', '--addr', `127.0.0.1:${port}`, remote];
      const env = {
        RCLONE_S3_ACCESS_KEY_ID: g.env['AWS_ACCESS_KEY_ID'] ?? '',
        RCLONE_S3_SECRET_ACCESS_KEY: g.env['AWS_SECRET_ACCESS_KEY'] ?? '',
        RCLONE_S3_REGION: g.region,
        // The AWS Go SDK in rclone 1.60 fails on a custom CA bundle from the environment.
        AWS_CA_BUNDLE: '',
      };
      const handle = await launch('rclone-s3', '/usr/bin/rclone', args, workDir, port, workDir, env);
      return { ...handle, listObjects: s3ListObjects };
    },
  };
}

/**
 * Two Ratchet instances on one prefix of the gateway, sharing state in redis-server, behind nginx
 * configured by docs/scale-out.md: the deployment that document describes, measured through nginx.
 */
export function ratchetS3TwoPeer(entry: string): PeerSpec {
  return {
    name: 'ratchet-s3x2',
    debianPackages: ['nginx', 'redis-server'],
    behaviour:
      'two ratchet-s3 instances with --state in redis-server (one shared --max-size 1TiB), behind nginx as in docs/scale-out.md',
    unavailable: () => (existsSync(entry) ? undefined : `${entry} not built`),
    async start(workDir) {
      const g = cephGateway();
      const prefix = `bench-ratchet2-${randomUUID().slice(0, 8)}`;
      await seedListing(g, prefix, s3ListObjects);
      const redis = await startRedis();
      const storage = ['--storage', `s3://${g.bucket}/${prefix}`, '--s3-endpoint', g.endpoint, ...quota];
      const shared = [...storage, '--state', redis.url, '--trusted-proxy', '127.0.0.1'];
      const instances: ServerHandle[] = [];
      let nginx: Nginx;
      let port: number;
      try {
        for (const name of ['a', 'b']) {
          const dir = path.join(workDir, name);
          mkdirSync(dir, { recursive: true });
          instances.push(await startRatchetProcess(entry, `ratchet-s3x2-${name}`, dir, shared, g.env));
        }
        const [first, second] = instances as [ServerHandle, ServerHandle];
        port = await freePort();
        const block = documentedNginxBlock({
          hosts: port,
          admin: await freePort(),
          instances: [first.port, second.port],
          adminInstances: [await freePort(), await freePort()],
        });
        nginx = await startNginx(path.join(workDir, 'nginx'), block, port);
      } catch (err) {
        // What did start is stopped: a failed start leaves no server or redis-server behind.
        await Promise.all(instances.map((instance) => instance.stop()));
        await redis.stop();
        throw err;
      }
      const [a, b] = instances as [ServerHandle, ServerHandle];
      return {
        name: 'ratchet-s3x2',
        host: a.host,
        port,
        baseUrl: `http://${a.host}:${port}`,
        // Peak memory is instance a's: one instance of the two, as the row compares.
        pid: a.pid,
        dataDir: a.dataDir,
        listObjects: s3ListObjects,
        alive: () => nginx.alive() && a.alive() && b.alive(),
        logTail: () => `${a.logTail()}${b.logTail()}`,
        async stop() {
          await nginx.stop();
          await Promise.all([a.stop(), b.stop()]);
          await redis.stop();
        },
      };
    },
  };
}
