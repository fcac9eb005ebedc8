/**
 * Quotas and disk full over a real socket: 507 before anything is written when Content-Length
 * says an upload cannot fit, 507 mid-stream for a chunked body that overflows, nothing left
 * behind either way, deletes free their bytes, the numbers survive a restart, per-user quotas
 * from the configuration file, quotas reloaded on SIGHUP, and a full filesystem.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { access, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { defaultGrants } from '../../src/access/grants.ts';
import { filesUnder, tempFilesUnder } from '../helpers/files.ts';
import { basic, blob, raw, upload, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { parseMetrics, sampleValue } from '../helpers/metrics.ts';
import { withRatchet, withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  chunk,
  lastChunk,
  rawExchange,
  serverForSuite,
  uploadWithin,
  withServerOnTmpfs,
  writeHtpasswd,
} from './operations-helpers.ts';

const exists = (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

// Every test ends within this, even when a server stops answering.
const bounded = { timeout: 60_000 };

const dataFile = (root: string, repo: string, name: string): string =>
  path.join(root, repo, 'data', name.slice(0, 2), name);

describe('quota over HTTP (--max-size)', () => {
  const limit = 10_000;
  const server = serverForSuite({
    config: { quotas: { maxTotalBytes: limit, repoRules: [], userRules: [] } },
  });
  let port: number;
  const stored = blob(6000);
  const refused = blob(6000);

  before(async () => {
    port = Number(new URL(server.url).port);
    assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
    assert.equal((await upload(server.url, '/r/', 'data', stored.data)).status, 200);
  });

  it(
    'answers 507 from Content-Length alone, before any of the body is sent or written',
    bounded,
    async () => {
      // Only the head is sent: the answer must come without the body, with nothing opened on disk.
      const reply = await rawExchange(
        port,
        `POST /r/data/${refused.name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
          `Content-Length: ${refused.data.length}\r\n\r\n`,
        [],
      );
      assert.equal(reply.status, 507, reply.text);
      assert.deepEqual(await tempFilesUnder(server.dataDir), [], 'no temporary file was opened');
      assert.equal(await exists(dataFile(server.dataDir, 'r', refused.name)), false);

      // The same through an ordinary client that sends the body.
      const res = await upload(server.url, '/r/', 'data', refused.data);
      assert.equal(res.status, 507);
      assert.match(res.body.toString(), /storage limit/);
      assert.equal((await raw(server.url, 'HEAD', `/r/data/${refused.name}`)).status, 404);
      assert.equal(await exists(dataFile(server.dataDir, 'r', refused.name)), false);
      assert.deepEqual(await tempFilesUnder(server.dataDir), []);
    },
  );

  it('answers 507 when a chunked body overflows mid-stream, and keeps nothing', bounded, async () => {
    const parts: Buffer[] = [];
    for (let offset = 0; offset < refused.data.length; offset += 500)
      parts.push(chunk(refused.data.subarray(offset, offset + 500)));
    parts.push(lastChunk);
    const reply = await rawExchange(
      port,
      `PUT /r/data/${refused.name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n`,
      parts,
    );
    assert.equal(reply.status, 507, reply.text);
    assert.ok(reply.partsSent < parts.length, 'refused before the body ended');
    await waitFor(
      async () => (await tempFilesUnder(server.dataDir)).length === 0,
      'the temporary file to go',
    );
    assert.equal((await raw(server.url, 'HEAD', `/r/data/${refused.name}`)).status, 404);
    assert.equal(await exists(dataFile(server.dataDir, 'r', refused.name)), false);
  });

  it(
    'counts nothing for refused, failed or aborted uploads: what is left fills exactly',
    bounded,
    async () => {
      // An upload whose content does not match its name (400) fits, and is not kept or counted.
      const mismatched = blob(2000);
      assert.equal((await upload(server.url, '/r/', 'data', mismatched.data, blob(1).name)).status, 400);
      // An upload abandoned halfway: its reservation of 3000 bytes is given back.
      const abandoned = blob(3000);
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.write(`POST /r/data/${abandoned.name} HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n`);
      await new Promise<void>((resolve) => socket.write(abandoned.data.subarray(0, 1000), () => resolve()));
      await waitFor(async () => (await tempFilesUnder(server.dataDir)).length === 1, 'the upload to start');
      socket.destroy();
      await waitFor(
        async () => (await tempFilesUnder(server.dataDir)).length === 0,
        'the abandoned upload to go',
      );

      const rest = blob(limit - stored.data.length);
      assert.equal((await upload(server.url, '/r/', 'keys', rest.data)).status, 200);
      assert.equal((await upload(server.url, '/r/', 'keys', blob(1).data)).status, 507, 'full to the byte');
      assert.equal((await raw(server.url, 'DELETE', `/r/keys/${rest.name}`)).status, 200);
    },
  );

  it('frees the bytes of a delete: a refused upload then succeeds', bounded, async () => {
    assert.equal((await upload(server.url, '/r/', 'data', refused.data)).status, 507);
    assert.equal((await raw(server.url, 'DELETE', `/r/data/${stored.name}`)).status, 200);
    assert.equal((await upload(server.url, '/r/', 'data', refused.data)).status, 200);
    const back = await raw(server.url, 'GET', `/r/data/${refused.name}`);
    assert.ok(back.body.equals(refused.data));
    // A chunked upload that fits is accepted too.
    const small = blob(3000);
    const reply = await rawExchange(
      port,
      `POST /r/data/${small.name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n`,
      [chunk(small.data.subarray(0, 1500)), chunk(small.data.subarray(1500)), lastChunk],
      { waitForClose: true },
    );
    assert.equal(reply.status, 200, reply.text);
    assert.equal((await upload(server.url, '/r/', 'data', blob(1001).data)).status, 507);
  });
});

describe('quota across a restart (spawned server, --max-size)', () => {
  it('keeps the numbers when the server starts again on the same folder', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      await withRatchet(data, ['--no-auth', '--max-size', '10000'], async (first) => {
        assert.equal((await raw(first.url, 'POST', '/r/?create=true')).status, 200);
        assert.equal((await upload(first.url, '/r/', 'data', blob(6000).data)).status, 200);
        assert.equal((await upload(first.url, '/r/', 'data', blob(6000).data)).status, 507);
        // A chunked body that overflows is refused too, and the process serves on.
        const overflowing = blob(6000);
        const parts: Buffer[] = [];
        for (let offset = 0; offset < overflowing.data.length; offset += 1000)
          parts.push(chunk(overflowing.data.subarray(offset, offset + 1000)));
        parts.push(lastChunk);
        const reply = await rawExchange(
          Number(new URL(first.url).port),
          `POST /r/data/${overflowing.name} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`,
          parts,
        );
        assert.equal(reply.status, 507, `${reply.text}\n${first.stderr().slice(-1500)}`);
        assert.equal((await raw(first.url, 'GET', '/.ratchet/health')).status, 200);
      });
      await withRatchet(data, ['--no-auth', '--max-size', '10000'], async (second) => {
        const tooBig = blob(6000);
        assert.equal((await upload(second.url, '/r/', 'data', tooBig.data)).status, 507);
        assert.equal(await exists(dataFile(data, 'r', tooBig.name)), false);
        assert.equal((await upload(second.url, '/r/', 'data', blob(4000).data)).status, 200);
        assert.equal((await upload(second.url, '/r/', 'data', blob(1).data)).status, 507);
      });
    });
  });
});

describe('per-user quotas from the configuration file', () => {
  it('limits each user separately, across all of their repositories', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const htpasswd = path.join(dir, 'htpasswd');
      const config = path.join(dir, 'ratchet.yaml');
      await writeHtpasswd(htpasswd, { alice: 'a-pw', bob: 'b-pw' });
      await writeFile(
        config,
        `htpasswd-file: ${htpasswd}\nprivate-repos: true\n` +
          `quotas:\n  users:\n    - users: ['*']\n      max-size: 5000\n`,
      );
      await withRatchet(data, ['--config', config], async (server) => {
        const as = (user: string, pw: string) => ({ Authorization: basic(user, pw), Accept: v2 });
        const put = (user: string, pw: string, repo: string, size: number): Promise<RawResponse> => {
          const { data: body, name } = blob(size);
          return raw(server.url, 'POST', `${repo}data/${name}`, {
            headers: { ...as(user, pw), 'Content-Length': size },
            body,
          });
        };
        for (const repo of ['/alice/a/', '/alice/b/']) {
          assert.equal(
            (await raw(server.url, 'POST', `${repo}?create=true`, { headers: as('alice', 'a-pw') })).status,
            200,
          );
        }
        assert.equal(
          (await raw(server.url, 'POST', '/bob/x/?create=true', { headers: as('bob', 'b-pw') })).status,
          200,
        );

        assert.equal((await put('alice', 'a-pw', '/alice/a/', 3000)).status, 200);
        assert.equal((await put('alice', 'a-pw', '/alice/b/', 3000)).status, 507, 'the user total counts');
        assert.equal((await put('alice', 'a-pw', '/alice/b/', 2000)).status, 200, 'filled exactly');
        assert.equal((await put('alice', 'a-pw', '/alice/a/', 1)).status, 507);

        // Bob has his own 5000 bytes, untouched by alice's.
        assert.equal((await put('bob', 'b-pw', '/bob/x/', 3000)).status, 200);
        assert.equal((await put('bob', 'b-pw', '/bob/x/', 2000)).status, 200);
        assert.equal((await put('bob', 'b-pw', '/bob/x/', 1)).status, 507);
      });
    });
  });
});

describe('quota use in the metrics', () => {
  const passwords: Record<string, string> = { alice: 'a-pw', bob: 'b-pw' };
  const server = serverForSuite({
    users: passwords,
    config: {
      grants: defaultGrants(true),
      prometheus: true,
      prometheusNoAuth: true,
      quotas: {
        maxTotalBytes: 1_000_000,
        repoRules: [{ repos: ['/alice/work/'], maxBytes: 5000 }],
        userRules: [{ users: ['*'], maxBytes: 100_000 }],
      },
    },
  });
  const put = (user: string, repo: string, size: number): Promise<RawResponse> => {
    const { data, name } = blob(size);
    return raw(server.url, 'POST', `${repo}data/${name}`, {
      headers: { Authorization: basic(user, passwords[user] ?? ''), 'Content-Length': size },
      body: data,
    });
  };

  it('shows each limit and what it holds, matching the bytes on disk', bounded, async () => {
    for (const [user, repo] of [
      ['alice', '/alice/work/'],
      ['alice', '/alice/home/'],
      ['bob', '/bob/pc/'],
    ] as const) {
      const res = await raw(server.url, 'POST', `${repo}?create=true`, {
        headers: { Authorization: basic(user, passwords[user] ?? '') },
      });
      assert.equal(res.status, 200);
    }
    assert.equal((await put('alice', '/alice/work/', 3000)).status, 200);
    assert.equal((await put('alice', '/alice/work/', 3000)).status, 507, 'the repository rule');
    assert.equal((await put('alice', '/alice/home/', 2000)).status, 200);
    assert.equal((await put('bob', '/bob/pc/', 4000)).status, 200);

    const res = await raw(server.url, 'GET', '/metrics');
    assert.equal(res.status, 200);
    const samples = parseMetrics(res.body.toString());
    const bytesIn = async (...parts: string[]): Promise<number> =>
      (await filesUnder(path.join(server.dataDir, ...parts))).reduce((sum, f) => sum + f.size, 0);
    const limitOf = (scope: string) => sampleValue(samples, 'ratchet_quota_limit_bytes', { scope });
    const usedOf = (scope: string) => sampleValue(samples, 'ratchet_quota_used_bytes', { scope });

    const total = (await bytesIn('alice')) + (await bytesIn('bob'));
    assert.equal(total, 9000);
    assert.equal(limitOf('total'), 1_000_000);
    assert.equal(usedOf('total'), total);
    assert.equal(limitOf('repo:alice/work'), 5000);
    assert.equal(usedOf('repo:alice/work'), await bytesIn('alice', 'work'));
    assert.equal(limitOf('user:alice'), 100_000);
    assert.equal(usedOf('user:alice'), await bytesIn('alice'));
    assert.equal(limitOf('user:bob'), 100_000);
    assert.equal(usedOf('user:bob'), await bytesIn('bob'));
  });
});

describe('quotas reloaded on SIGHUP', () => {
  it('applies a lowered repository quota to the next upload', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const config = path.join(dir, 'ratchet.yaml');
      const withQuota = (size: string): string =>
        `no-auth: true\nquotas:\n  repos:\n    - repos: ['/r/']\n      max-size: ${size}\n`;
      await writeFile(config, withQuota('100KiB'));
      await withRatchet(data, ['--config', config], async (server) => {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        assert.equal((await raw(server.url, 'POST', '/other/?create=true')).status, 200);
        assert.equal((await upload(server.url, '/r/', 'data', blob(3000).data)).status, 200);
        assert.equal((await upload(server.url, '/r/', 'data', blob(3000).data)).status, 200, 'fits');

        await writeFile(config, withQuota('8000'));
        const reloads = (): number => server.stderr().split('configuration reloaded').length - 1;
        const before = reloads();
        server.child.kill('SIGHUP');
        await waitFor(() => reloads() > before, 'the configuration to be reloaded');

        const next = blob(3000);
        assert.equal((await upload(server.url, '/r/', 'data', next.data)).status, 507, 'now over the quota');
        assert.equal(await exists(dataFile(data, 'r', next.name)), false);
        assert.equal((await upload(server.url, '/r/', 'data', blob(2000).data)).status, 200, 'what fits');
        // The rule names /r/ only.
        assert.equal((await upload(server.url, '/other/', 'data', blob(20_000).data)).status, 200);
      });
    });
  });
});

/**
 * Fills a 3 MiB tmpfs with objects of the given size until an upload fails, then checks the
 * failure and that the server serves on once space is freed.
 */
async function fillUntilFull(objectSize: number): Promise<void> {
  await withServerOnTmpfs('3m', async (server, dir) => {
    assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
    const stored: string[] = [];
    let failed: { res: RawResponse; data: Buffer; name: string } | undefined;
    for (let i = 0; i < 12 && failed === undefined; i++) {
      const object = blob(objectSize);
      const res = await uploadWithin(server.url, `/r/data/${object.name}`, object.data);
      if (res.status === 200) stored.push(object.name);
      else failed = { res, ...object };
    }
    assert.ok(failed !== undefined, 'a 3 MiB filesystem filled up');
    assert.equal(failed.res.status, 507, failed.res.body.toString());
    assert.match(failed.res.body.toString(), /insufficient storage/);
    assert.ok(stored.length >= 2, `stored ${stored.length} objects before the disk was full`);
    assert.equal((await raw(server.url, 'HEAD', `/r/data/${failed.name}`)).status, 404);
    assert.equal(await exists(dataFile(dir, 'r', failed.name)), false, 'no partial object');
    assert.deepEqual(await tempFilesUnder(dir), [], 'no temporary file');

    // Still serving: reads work, and after deletes the refused upload goes through.
    const first = stored[0] ?? '';
    assert.equal((await raw(server.url, 'GET', `/r/data/${first}`)).body.length, objectSize);
    for (const name of stored.slice(0, 2))
      assert.equal((await raw(server.url, 'DELETE', `/r/data/${name}`)).status, 200);
    assert.equal((await uploadWithin(server.url, `/r/data/${failed.name}`, failed.data)).status, 200);
    assert.ok((await raw(server.url, 'GET', `/r/data/${failed.name}`)).body.equals(failed.data));
    assert.equal((await raw(server.url, 'GET', '/.ratchet/ready')).status, 200);
  });
}

describe('disk full', () => {
  it('answers 507 with nothing partial left, and serves on once space is freed', bounded, () =>
    // Objects smaller than a write batch: the whole body is in before the disk says no.
    fillUntilFull(512 * 1024),
  );

  it('answers 507 when the disk fills while the body is still streaming', bounded, () =>
    // Objects larger than a write batch (1 MiB): ENOSPC comes with part of the body still unread.
    fillUntilFull(1280 * 1024),
  );
});
