/** The restic REST protocol over a real socket: every status PROTOCOL.md's table names. */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { tempPrefix } from '../../src/storage/fs/layout.ts';
import { blob, raw, upload, v2 } from '../helpers/http.ts';
import { serverForSuite } from './operations-helpers.ts';

describe('restic REST protocol', () => {
  const server = serverForSuite();
  let url: string;
  let dataDir: string;

  before(async () => {
    ({ url, dataDir } = server);
    assert.equal((await raw(url, 'POST', '/repo/?create=true')).status, 200);
  });

  describe('repository creation', () => {
    it('creates with ?create=true, nested paths too, idempotently', async () => {
      assert.equal((await raw(url, 'POST', '/a/b/c/?create=true')).status, 200);
      assert.equal((await raw(url, 'POST', '/a/b/c/?create=true')).status, 200);
      assert.equal((await raw(url, 'GET', '/a/b/c/data/', { headers: { Accept: v2 } })).status, 200);
    });

    it('answers 400 without ?create=true and 405 with Allow for other methods', async () => {
      const res = await raw(url, 'POST', '/new/');
      assert.equal(res.status, 400);
      assert.match(res.body.toString(), /create=true/);
      const get = await raw(url, 'GET', '/repo/');
      assert.equal(get.status, 405);
      assert.equal(get.headers.allow, 'POST');
    });

    it('refuses repository paths deeper than the limit', async () => {
      const deep = '/' + Array.from({ length: 9 }, (_, i) => `d${i}`).join('/') + '/?create=true';
      const res = await raw(url, 'POST', deep);
      assert.equal(res.status, 404);
      assert.match(res.body.toString(), /the repository path has 9 folders; --max-repo-depth allows 8/);
    });
  });

  describe('config', () => {
    it('is 404 before it exists, then stored, stated and read', async () => {
      await raw(url, 'POST', '/cfg/?create=true');
      assert.equal((await raw(url, 'HEAD', '/cfg/config')).status, 404);
      const content = Buffer.from('encrypted config bytes');
      const saved = await raw(url, 'POST', '/cfg/config', {
        body: content,
        headers: { 'Content-Length': content.length },
      });
      assert.equal(saved.status, 200);
      const head = await raw(url, 'HEAD', '/cfg/config');
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(content.length));
      assert.equal(head.body.length, 0);
      const got = await raw(url, 'GET', '/cfg/config', { headers: { Range: 'bytes=0-' } });
      assert.equal(got.status, 206);
      assert.ok(got.body.equals(content));
    });

    it('accepts the same config again but refuses different content (403)', async () => {
      await raw(url, 'POST', '/cfg2/?create=true');
      const one = Buffer.from('one');
      assert.equal((await raw(url, 'POST', '/cfg2/config', { body: one })).status, 200);
      assert.equal((await raw(url, 'POST', '/cfg2/config', { body: one })).status, 200);
      const other = await raw(url, 'PUT', '/cfg2/config', { body: Buffer.from('two') });
      assert.equal(other.status, 403);
      assert.equal((await raw(url, 'GET', '/cfg2/config')).body.toString(), 'one');
    });
  });

  describe('objects', () => {
    it('stores by POST and PUT, stats with exact Content-Length and reads back', async () => {
      for (const method of ['POST', 'PUT']) {
        const { data, name } = blob(70_000);
        const res = await upload(url, '/repo/', 'data', data, name, method);
        assert.equal(res.status, 200, method);
        assert.equal(res.body.length, 0);
        const head = await raw(url, 'HEAD', `/repo/data/${name}`);
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'], '70000');
        assert.equal(head.headers['accept-ranges'], 'bytes');
        const got = await raw(url, 'GET', `/repo/data/${name}`);
        assert.equal(got.status, 200);
        assert.equal(got.headers['content-length'], '70000');
        assert.equal(got.headers['transfer-encoding'], undefined);
        assert.ok(got.body.equals(data));
      }
      const file = (await readdir(path.join(dataDir, 'repo', 'data'), { recursive: true })).filter(
        (f) => f.length > 64,
      );
      assert.equal(file.length, 2, 'objects sit in data/XX/ fan-out folders');
    });

    it('serves every object type', async () => {
      for (const type of ['keys', 'locks', 'snapshots', 'index']) {
        const { data, name } = blob(100);
        assert.equal((await upload(url, '/repo/', type, data)).status, 200, type);
        assert.ok((await raw(url, 'GET', `/repo/${type}/${name}`)).body.equals(data), type);
      }
    });

    it('answers ranges with 206, exact lengths, cut at the end, and 416 past the end', async () => {
      const { data, name } = blob(1000);
      await upload(url, '/repo/', 'data', data);
      const path = `/repo/data/${name}`;
      const cases: [string, number, number, number][] = [
        ['bytes=0-', 0, 999, 1000],
        ['bytes=10-19', 10, 19, 10],
        ['bytes=990-', 990, 999, 10],
        ['bytes=900-5000', 900, 999, 100],
        ['bytes=-5', 995, 999, 5],
      ];
      for (const [range, start, end, length] of cases) {
        const res = await raw(url, 'GET', path, { headers: { Range: range } });
        assert.equal(res.status, 206, range);
        assert.equal(res.headers['content-range'], `bytes ${start}-${end}/1000`, range);
        assert.equal(res.headers['content-length'], String(length), range);
        assert.ok(res.body.equals(data.subarray(start, end + 1)), range);
      }
      for (const range of ['bytes=1000-', 'bytes=5000-6000']) {
        const res = await raw(url, 'GET', path, { headers: { Range: range } });
        assert.equal(res.status, 416, range);
        assert.equal(res.headers['content-range'], 'bytes */1000');
      }
      for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-2', 'nonsense']) {
        const res = await raw(url, 'GET', path, { headers: { Range: range } });
        assert.equal(res.status, 200, range);
        assert.ok(res.body.equals(data), range);
      }
    });

    it('refuses content that does not match its name (400) and stores nothing', async () => {
      const { data } = blob(5000);
      const wrongName = blob(10).name;
      const res = await upload(url, '/repo/', 'data', data, wrongName);
      assert.equal(res.status, 400);
      assert.match(res.body.toString(), /SHA-256/);
      assert.equal((await raw(url, 'HEAD', `/repo/data/${wrongName}`)).status, 404);
      const leftovers = (await readdir(path.join(dataDir, 'repo'), { recursive: true })).filter((f) =>
        f.includes(tempPrefix),
      );
      assert.deepEqual(leftovers, []);
    });

    it('accepts an identical re-upload (200) and refuses nothing else', async () => {
      const { data, name } = blob(2000);
      assert.equal((await upload(url, '/repo/', 'snapshots', data)).status, 200);
      assert.equal((await upload(url, '/repo/', 'snapshots', data)).status, 200);
      assert.ok((await raw(url, 'GET', `/repo/snapshots/${name}`)).body.equals(data));
    });

    it('answers 404 for missing objects and for uploads into a missing repository', async () => {
      const { data, name } = blob(10);
      assert.equal((await raw(url, 'HEAD', `/repo/data/${name}`)).status, 404);
      assert.equal((await raw(url, 'GET', `/repo/data/${name}`)).status, 404);
      assert.equal((await upload(url, '/ghost/', 'data', data)).status, 404);
      assert.equal((await raw(url, 'GET', '/ghost/config')).status, 404);
    });

    it('deletes idempotently with 200', async () => {
      const { data, name } = blob(10);
      await upload(url, '/repo/', 'index', data);
      assert.equal((await raw(url, 'DELETE', `/repo/index/${name}`)).status, 200);
      assert.equal((await raw(url, 'DELETE', `/repo/index/${name}`)).status, 200);
      assert.equal((await raw(url, 'HEAD', `/repo/index/${name}`)).status, 404);
    });

    it('lets exactly one of 32 concurrent identical uploads write, all answered 200', async () => {
      const { data, name } = blob(256 * 1024);
      const results = await Promise.all(
        Array.from({ length: 32 }, () => upload(url, '/repo/', 'data', data)),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        Array.from({ length: 32 }, () => 200),
      );
      const dir = path.join(dataDir, 'repo', 'data', name.slice(0, 2));
      assert.deepEqual(
        (await readdir(dir)).filter((f) => f.includes(name) || f.startsWith(tempPrefix)),
        [name],
      );
    });
  });

  describe('listing', () => {
    it('answers v2 with names and sizes and the exact content type, v1 otherwise', async () => {
      await raw(url, 'POST', '/list/?create=true');
      const blobs = [blob(10), blob(20), blob(30)];
      for (const b of blobs) await upload(url, '/list/', 'data', b.data);
      const res2 = await raw(url, 'GET', '/list/data/', { headers: { Accept: v2 } });
      assert.equal(res2.status, 200);
      assert.equal(res2.headers['content-type'], v2);
      const entries = (JSON.parse(res2.body.toString()) as { name: string; size: number }[]).sort((a, b) =>
        a.name.localeCompare(b.name),
      );
      const expected = blobs
        .map((b) => ({ name: b.name, size: b.data.length }))
        .sort((a, b) => a.name.localeCompare(b.name));
      assert.deepEqual(entries, expected);

      const res1 = await raw(url, 'GET', '/list/data/', { headers: { Accept: 'application/json' } });
      assert.equal(res1.headers['content-type'], 'application/vnd.x.restic.rest.v1');
      assert.deepEqual(
        (JSON.parse(res1.body.toString()) as string[]).sort(),
        expected.map((e) => e.name),
      );
      const withCharset = await raw(url, 'GET', '/list/data/', {
        headers: { Accept: `${v2}; charset=utf-8` },
      });
      assert.equal(withCharset.headers['content-type'], 'application/vnd.x.restic.rest.v1');
    });

    it('lists [] for an empty or missing type folder and 404 for a missing repository', async () => {
      await raw(url, 'POST', '/empty/?create=true');
      for (const type of ['data', 'keys', 'locks', 'snapshots', 'index']) {
        const res = await raw(url, 'GET', `/empty/${type}/`, { headers: { Accept: v2 } });
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), '[]');
      }
      const { rm } = await import('node:fs/promises');
      await rm(path.join(dataDir, 'empty', 'snapshots'), { recursive: true });
      assert.equal(
        (await raw(url, 'GET', '/empty/snapshots/', { headers: { Accept: v2 } })).body.toString(),
        '[]',
      );
      assert.equal((await raw(url, 'GET', '/nowhere/data/', { headers: { Accept: v2 } })).status, 404);
    });

    it('never lists temporary uploads', async () => {
      await raw(url, 'POST', '/tmp/?create=true');
      await writeFile(path.join(dataDir, 'tmp', 'keys', `${tempPrefix}abc`), 'partial');
      await mkdir(path.join(dataDir, 'tmp', 'data', '00'));
      await writeFile(path.join(dataDir, 'tmp', 'data', '00', `${tempPrefix}abc`), 'partial');
      for (const type of ['keys', 'data']) {
        assert.equal(
          (await raw(url, 'GET', `/tmp/${type}/`, { headers: { Accept: v2 } })).body.toString(),
          '[]',
        );
      }
    });

    it('streams a large listing completely', async () => {
      await raw(url, 'POST', '/big/?create=true');
      const names = new Set<string>();
      for (let i = 0; i < 3000; i++) {
        const name = blob(1).name;
        names.add(name);
        await mkdir(path.join(dataDir, 'big', 'data', name.slice(0, 2)), { recursive: true });
        await writeFile(path.join(dataDir, 'big', 'data', name.slice(0, 2), name), 'x');
      }
      const res = await raw(url, 'GET', '/big/data/', { headers: { Accept: v2 } });
      const listed = JSON.parse(res.body.toString()) as { name: string; size: number }[];
      assert.equal(listed.length, names.size);
      assert.ok(listed.every((e) => names.has(e.name) && e.size === 1));
    });
  });

  describe('shapes and methods', () => {
    it('answers 404 for every path that is not a protocol shape', async () => {
      const name = blob(1).name;
      for (const p of [
        '/repo/data',
        `/repo/data/${name.toUpperCase()}`,
        `/repo/data/${name}x`,
        `/repo/data/00/${name}`,
        '/%2e%2e/config',
        '/repo/%2e%2e/%2e%2e/config',
        '/..%2f..%2fetc/config',
        '/.htpasswd',
        '/.htpasswd/config',
        '/repo%00/config',
        '/data/config',
      ]) {
        assert.equal((await raw(url, 'GET', p)).status, 404, p);
      }
    });

    it('answers 405 with Allow for methods a resource does not take', async () => {
      const name = blob(1).name;
      const list = await raw(url, 'DELETE', '/repo/data/');
      assert.equal(list.status, 405);
      assert.equal(list.headers.allow, 'HEAD, GET');
      const obj = await raw(url, 'PATCH', `/repo/data/${name}`);
      assert.equal(obj.status, 405);
      assert.equal(obj.headers.allow, 'HEAD, GET, POST, PUT, DELETE');
    });
  });
});
