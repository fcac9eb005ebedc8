/**
 * Health, readiness and Prometheus metrics over a real socket: the server's own endpoints answer
 * without credentials and reveal nothing; readiness follows whether the data folder takes writes;
 * the metrics hold rest-server's blob counters and gauges that match what is on disk.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { blob, raw, upload, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import {
  basic,
  filesUnder,
  mountBindfs,
  parseMetrics,
  remount,
  requireRoot,
  sampleValue,
  serverForSuite,
  unmount,
  withServerOnTmpfs,
} from './operations-helpers.ts';
import { makeTempDir, withRatchet } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import type { Sample, SuiteServer } from './operations-helpers.ts';

const passwords: Record<string, string> = {
  alice: 'alice-secret',
  bob: 'bob-secret',
  admin: 'admin-secret',
};

const privateGrants = [
  { users: ['*'], repos: ['/{user}/**'], role: 'admin' as const },
  { users: ['admin'], repos: ['/**'], role: 'admin' as const },
];

describe('health and readiness', () => {
  const server = serverForSuite({ users: passwords, config: { grants: privateGrants } });

  before(async () => {
    assert.equal((await server.as('alice', 'POST', '/alice/secret-repo/?create=true')).status, 200);
  });

  it('answers health and readiness without credentials while the protocol answers 401', async () => {
    const protocol = await raw(server.url, 'GET', '/alice/secret-repo/keys/');
    assert.equal(protocol.status, 401);
    for (const [endpoint, body] of [
      ['/.ratchet/health', 'ok\n'],
      ['/.ratchet/ready', 'ready\n'],
    ] as const) {
      const res = await raw(server.url, 'GET', endpoint);
      assert.equal(res.status, 200, endpoint);
      assert.equal(res.body.toString(), body, endpoint);
      assert.equal(res.headers['www-authenticate'], undefined, endpoint);
      // Nothing about users, repositories or the data folder.
      for (const secret of ['alice', 'secret-repo', 'admin', server.dataDir]) {
        assert.ok(!res.body.toString().includes(secret), `${endpoint} reveals ${secret}`);
        assert.ok(!JSON.stringify(res.headers).includes(secret), `${endpoint} headers reveal ${secret}`);
      }
      const head = await raw(server.url, 'HEAD', endpoint);
      assert.equal(head.status, 200, `HEAD ${endpoint}`);
      assert.equal(head.body.length, 0);
      // Wrong credentials do not matter either.
      const wrong = await raw(server.url, 'GET', endpoint, {
        headers: { Authorization: basic('alice', 'wrong') },
      });
      assert.equal(wrong.status, 200, `${endpoint} with wrong credentials`);
    }
  });

  it('refuses other methods on the endpoints with 405', async () => {
    for (const endpoint of ['/.ratchet/health', '/.ratchet/ready']) {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const res = await raw(server.url, method, endpoint, {
          headers: { 'Content-Length': 0 },
          body: Buffer.alloc(0),
        });
        assert.equal(res.status, 405, `${method} ${endpoint}`);
        assert.match(String(res.headers.allow), /GET/);
      }
    }
  });

  it('answers unknown server endpoints with 404 and no detail', async () => {
    const res = await raw(server.url, 'GET', '/.ratchet/users');
    assert.equal(res.status, 404);
    assert.ok(!res.body.toString().includes('alice'));
  });

  it('keeps /metrics a protocol path when metrics are off', async () => {
    // Not a server endpoint: authentication comes first, and an admin finds no metrics there.
    assert.equal((await raw(server.url, 'GET', '/metrics')).status, 401);
    const admin = await server.as('admin', 'GET', '/metrics');
    // `/metrics` names a repository, which only takes POST (?create=true).
    assert.equal(admin.status, 405);
    assert.equal(admin.headers.allow, 'POST');
    assert.doesNotMatch(admin.body.toString(), /rest_server_|ratchet_/);
    const own = await server.as('admin', 'GET', '/.ratchet/metrics');
    assert.equal(own.status, 404);
    assert.doesNotMatch(own.body.toString(), /rest_server_|ratchet_/);
  });
});

describe('readiness on a data folder that stops being writable', () => {
  it('answers 503 while the filesystem is read-only, and 200 again when it is writable', async () => {
    await withServerOnTmpfs('4m', async (server, dir) => {
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        assert.equal((await raw(server.url, 'GET', '/.ratchet/ready')).status, 200);

        await remount(dir, 'ro');
        // The last answer is kept for a second (readiness cannot be used to load the disk).
        let notReady: RawResponse | undefined;
        await waitFor(
          async () => (notReady = await raw(server.url, 'GET', '/.ratchet/ready')).status === 503,
          'readiness to turn 503',
        );
        assert.ok(!notReady?.body.toString().includes(dir), 'the 503 does not reveal the data folder');
        assert.equal((await raw(server.url, 'GET', '/.ratchet/health')).status, 200, 'still alive');
        // Reads keep working while writes cannot.
        assert.equal((await raw(server.url, 'GET', '/r/keys/', { headers: { Accept: v2 } })).status, 200);

        await remount(dir, 'rw');
        await waitFor(
          async () => (await raw(server.url, 'GET', '/.ratchet/ready')).status === 200,
          'readiness to turn 200',
        );
        assert.equal((await upload(server.url, '/r/', 'keys', blob(100).data)).status, 200);
      } finally {
        await remount(dir, 'rw').catch(() => undefined);
      }
    });
  });
});

describe('data on a FUSE filesystem', () => {
  it('announces thread-pool reads there (unless told otherwise) and serves the protocol', async () => {
    requireRoot();
    const { dir, cleanup } = await makeTempDir();
    const mountPoint = path.join(dir, 'mnt');
    await mkdir(path.join(dir, 'source'));
    await mkdir(mountPoint);
    try {
      await mountBindfs(path.join(dir, 'source'), mountPoint);
      const data = path.join(mountPoint, 'data');
      const notice = /network or FUSE filesystem/;
      await withRatchet(data, ['--no-auth'], async (server) => {
        assert.match(server.stderr(), notice);
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        const object = blob(300_000);
        assert.equal((await upload(server.url, '/r/', 'data', object.data)).status, 200);
        const head = await raw(server.url, 'HEAD', `/r/data/${object.name}`);
        assert.equal(head.headers['content-length'], '300000');
        const range = await raw(server.url, 'GET', `/r/data/${object.name}`, {
          headers: { Range: 'bytes=1000-1999' },
        });
        assert.equal(range.status, 206);
        assert.ok(range.body.equals(object.data.subarray(1000, 2000)));
        const listing = await raw(server.url, 'GET', '/r/data/', { headers: { Accept: v2 } });
        assert.deepEqual(JSON.parse(listing.body.toString()), [{ name: object.name, size: 300_000 }]);
      });
      await withRatchet(data, ['--no-auth', '--sync-fs-reads', 'on'], async (server) => {
        assert.doesNotMatch(server.stderr(), notice);
        assert.equal((await raw(server.url, 'GET', '/r/keys/', { headers: { Accept: v2 } })).status, 200);
      });
    } finally {
      await unmount(mountPoint).catch(() => undefined);
      await cleanup();
    }
  });
});

/** Scrapes the metrics as the given user (or without credentials). */
async function scrape(
  server: SuiteServer,
  user?: string,
  endpoint = '/metrics',
): Promise<{ res: RawResponse; samples: Sample[] }> {
  const res =
    user === undefined ? await raw(server.url, 'GET', endpoint) : await server.as(user, 'GET', endpoint);
  return { res, samples: res.status === 200 ? parseMetrics(res.body.toString()) : [] };
}

describe('Prometheus metrics', () => {
  const server = serverForSuite({ users: passwords, config: { grants: privateGrants, prometheus: true } });

  it('counts blob writes, reads and deletes and matches the repository on disk', async () => {
    const url = server.url;
    const dataDir = server.dataDir;
    const repo = '/alice/laptop/';
    assert.equal((await server.as('alice', 'POST', `${repo}?create=true`)).status, 200);
    assert.equal((await server.as('bob', 'POST', '/bob/pc/?create=true')).status, 200);

    const config = blob(155).data;
    const key = blob(321);
    const data = [blob(1000), blob(2345), blob(70_000)];
    const index = blob(512);
    const snapshots = [blob(201), blob(260)];
    const locks = [blob(150), blob(151)];
    const put = async (user: string, repoPath: string, type: string, content: Buffer, name: string) => {
      const target = type === 'config' ? `${repoPath}config` : `${repoPath}${type}/${name}`;
      const res = await server.as(user, 'POST', target, content);
      assert.equal(res.status, 200, `upload ${type}`);
    };
    await put('alice', repo, 'config', config, '');
    await put('alice', repo, 'keys', key.data, key.name);
    for (const d of data) await put('alice', repo, 'data', d.data, d.name);
    await put('alice', repo, 'index', index.data, index.name);
    for (const s of snapshots) await put('alice', repo, 'snapshots', s.data, s.name);
    for (const l of locks) await put('alice', repo, 'locks', l.data, l.name);
    const bobData = blob(4096);
    await put('bob', '/bob/pc/', 'data', bobData.data, bobData.name);
    const writes = 1 + 1 + data.length + 1 + snapshots.length + locks.length + 1;

    // Reads: a whole object, a range of another, the config; HEAD reads nothing.
    const whole = await server.as('alice', 'GET', `${repo}data/${data[1]?.name}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.body.length, 2345);
    const ranged = await server.as('alice', 'GET', `${repo}data/${data[2]?.name}`, undefined, {
      Range: 'bytes=100-199',
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.body.length, 100);
    assert.equal((await server.as('alice', 'GET', `${repo}config`)).status, 200);
    assert.equal((await server.as('alice', 'HEAD', `${repo}keys/${key.name}`)).status, 200);

    // Deletes: one lock; deleting a missing object counts nothing.
    assert.equal((await server.as('alice', 'DELETE', `${repo}locks/${locks[0]?.name}`)).status, 200);
    assert.equal((await server.as('alice', 'DELETE', `${repo}locks/${'0'.repeat(64)}`)).status, 200);

    // An authentication failure before the scrape.
    assert.equal((await raw(url, 'GET', `${repo}keys/`)).status, 401);

    const { res, samples } = await scrape(server, 'admin');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const blobs = (op: string, suffix: string, user: string, repoKey: string, type: string) =>
      sampleValue(samples, `rest_server_blob_${op}${suffix}_total`, { user, repo: repoKey, type });
    const a = 'alice/laptop';

    assert.equal(blobs('write', '', 'alice', a, 'config'), 1);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'config'), 155);
    assert.equal(blobs('write', '', 'alice', a, 'keys'), 1);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'keys'), 321);
    assert.equal(blobs('write', '', 'alice', a, 'data'), 3);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'data'), 1000 + 2345 + 70_000);
    assert.equal(blobs('write', '', 'alice', a, 'index'), 1);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'index'), 512);
    assert.equal(blobs('write', '', 'alice', a, 'snapshots'), 2);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'snapshots'), 201 + 260);
    assert.equal(blobs('write', '', 'alice', a, 'locks'), 2);
    assert.equal(blobs('write', '_bytes', 'alice', a, 'locks'), 150 + 151);
    assert.equal(blobs('write', '', 'bob', 'bob/pc', 'data'), 1);
    assert.equal(blobs('write', '_bytes', 'bob', 'bob/pc', 'data'), 4096);

    assert.equal(blobs('read', '', 'alice', a, 'data'), 2);
    assert.equal(blobs('read', '_bytes', 'alice', a, 'data'), 2345 + 100);
    assert.equal(blobs('read', '', 'alice', a, 'config'), 1);
    assert.equal(blobs('read', '_bytes', 'alice', a, 'config'), 155);
    assert.equal(blobs('read', '', 'alice', a, 'keys'), undefined, 'HEAD is not a read');

    assert.equal(blobs('delete', '', 'alice', a, 'locks'), 1);
    assert.equal(blobs('delete', '_bytes', 'alice', a, 'locks'), 150);
    assert.equal(blobs('delete', '', 'bob', 'bob/pc', 'data'), undefined);

    // The gauges agree with a walk of the repository's folder.
    const onDisk = await filesUnder(path.join(dataDir, 'alice', 'laptop'));
    const bytesOnDisk = onDisk.reduce((sum, f) => sum + f.size, 0);
    assert.equal(bytesOnDisk, 155 + 321 + 73_345 + 512 + 461 + 151);
    assert.equal(sampleValue(samples, 'ratchet_repo_size_bytes', { repo: a }), bytesOnDisk);
    const bobOnDisk = (await filesUnder(path.join(dataDir, 'bob', 'pc'))).reduce((s, f) => s + f.size, 0);
    assert.equal(sampleValue(samples, 'ratchet_repo_size_bytes', { repo: 'bob/pc' }), bobOnDisk);
    const root = path.join(dataDir, 'alice', 'laptop');
    for (const type of ['data', 'keys', 'locks', 'snapshots', 'index']) {
      const count = onDisk.filter((f) => path.relative(root, f.file).split(path.sep)[0] === type).length;
      assert.equal(sampleValue(samples, 'ratchet_repo_objects', { repo: a, type }), count, type);
    }
    assert.equal(sampleValue(samples, 'ratchet_repo_objects', { repo: a, type: 'data' }), 3);
    assert.equal(sampleValue(samples, 'ratchet_repo_objects', { repo: a, type: 'locks' }), 1);
    const newest = Math.max(
      ...onDisk.filter((f) => f.file.includes(`${path.sep}snapshots${path.sep}`)).map((f) => f.mtimeMs),
    );
    const newestMetric = sampleValue(samples, 'ratchet_repo_newest_snapshot_timestamp_seconds', { repo: a });
    assert.ok(newestMetric !== undefined, 'newest snapshot time');
    assert.ok(Math.abs(newestMetric - newest / 1000) <= 1, `${newestMetric} vs ${newest / 1000}`);
    assert.equal(
      sampleValue(samples, 'ratchet_repo_newest_snapshot_timestamp_seconds', { repo: 'bob/pc' }),
      undefined,
      'no snapshot, no timestamp',
    );

    // Request timing, requests in flight, authentication failures.
    assert.equal(
      sampleValue(samples, 'ratchet_http_request_duration_seconds_count', {
        method: 'POST',
        operation: 'write',
        status: '200',
      }),
      writes,
    );
    assert.ok(
      samples.some(
        (s) => s.name === 'ratchet_http_request_duration_seconds_bucket' && s.labels.le === '+Inf',
      ),
    );
    assert.ok((sampleValue(samples, 'ratchet_http_requests_in_flight') ?? 0) >= 1, 'the scrape itself');
    assert.ok((sampleValue(samples, 'ratchet_auth_failures_total', { reason: 'unauthorized' }) ?? 0) >= 1);
  });

  it('counts each authentication failure', async () => {
    const before = sampleValue((await scrape(server, 'admin')).samples, 'ratchet_auth_failures_total', {
      reason: 'unauthorized',
    });
    assert.equal(
      (
        await raw(server.url, 'GET', '/alice/laptop/keys/', {
          headers: { Authorization: basic('alice', 'no') },
        })
      ).status,
      401,
    );
    assert.equal((await raw(server.url, 'GET', '/bob/pc/keys/')).status, 401);
    // A wrong password on the metrics endpoint is refused by authentication too.
    assert.equal(
      (await raw(server.url, 'GET', '/metrics', { headers: { Authorization: basic('admin', 'guess') } }))
        .status,
      401,
    );
    const afterwards = sampleValue((await scrape(server, 'admin')).samples, 'ratchet_auth_failures_total', {
      reason: 'unauthorized',
    });
    assert.equal(afterwards, (before ?? 0) + 3);
  });

  it('shows requests in flight', async () => {
    const port = Number(new URL(server.url).port);
    const pending = blob(1000);
    // An upload that has sent half of its body and waits.
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    try {
      socket.write(
        `POST /alice/laptop/data/${pending.name} HTTP/1.1\r\nHost: x\r\n` +
          `Authorization: ${basic('alice', passwords.alice ?? '')}\r\nContent-Length: 1000\r\n\r\n`,
      );
      socket.write(pending.data.subarray(0, 500));
      const inFlight = async (): Promise<number> =>
        sampleValue((await scrape(server, 'admin')).samples, 'ratchet_http_requests_in_flight') ?? 0;
      await waitFor(async () => (await inFlight()) >= 2, 'the waiting upload to count as in flight');
      socket.destroy();
      await waitFor(async () => (await inFlight()) === 1, 'the aborted upload to leave');
    } finally {
      socket.destroy();
    }
  });

  it('serves the same metrics at /.ratchet/metrics and still lets a repository be named metrics', async () => {
    const own = await scrape(server, 'admin', '/.ratchet/metrics');
    assert.equal(own.res.status, 200);
    assert.ok(own.samples.some((s) => s.name === 'rest_server_blob_write_total'));

    const admin = (method: string, p: string, body?: Buffer) => server.as('admin', method, p, body);
    assert.equal((await admin('POST', '/metrics/?create=true')).status, 200);
    const key = blob(64);
    assert.equal((await admin('POST', `/metrics/keys/${key.name}`, key.data)).status, 200);
    const list = await admin('GET', '/metrics/keys/');
    assert.equal(list.status, 200);
    assert.deepEqual(JSON.parse(list.body.toString()), [{ name: key.name, size: 64 }]);
    assert.equal(
      (await admin('GET', `/metrics/keys/${key.name}`)).body.toString('hex'),
      key.data.toString('hex'),
    );
  });

  it('asks for credentials, and only users with access to the root see the metrics', async () => {
    for (const endpoint of ['/metrics', '/.ratchet/metrics']) {
      const anonymous = await scrape(server, undefined, endpoint);
      assert.equal(anonymous.res.status, 401, endpoint);
      assert.doesNotMatch(anonymous.res.body.toString(), /rest_server_|alice/);
      const wrong = await raw(server.url, 'GET', endpoint, {
        headers: { Authorization: basic('admin', 'x') },
      });
      assert.equal(wrong.status, 401, `${endpoint} with a wrong password`);
      const bob = await scrape(server, 'bob', endpoint);
      assert.equal(bob.res.status, 403, `${endpoint} as a private-repos user`);
      assert.doesNotMatch(bob.res.body.toString(), /rest_server_|alice/);
      assert.equal((await scrape(server, 'admin', endpoint)).res.status, 200, endpoint);
    }
  });
});

describe('Prometheus metrics without authentication (--prometheus-no-auth)', () => {
  const server = serverForSuite({
    users: passwords,
    config: { grants: privateGrants, prometheus: true, prometheusNoAuth: true },
  });

  it('serves the metrics to anyone while the protocol still needs credentials', async () => {
    const { res, samples } = await scrape(server);
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /^# HELP rest_server_blob_write_total /m);
    assert.ok(samples.some((s) => s.name === 'ratchet_http_requests_in_flight'));
    assert.equal((await raw(server.url, 'GET', '/alice/keys/')).status, 401);
    assert.equal((await raw(server.url, 'POST', '/metrics')).status, 405);
  });
});
