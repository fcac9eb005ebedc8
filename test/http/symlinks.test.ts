/**
 * Symbolic links below a repository's folder (type folders, fan-out folders, objects) are never
 * followed, listed or written through; a repository folder that is a link, or a linked data
 * root, works as in rest-server. Real server, real links.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { raw, sha256, upload, v2 } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import type { TestServer } from '../helpers/in-process.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

const listNames = async (url: string, repo: string, type: string): Promise<string[]> => {
  const res = await raw(url, 'GET', `/${repo}/${type}/`, { headers: { Accept: v2 } });
  assert.equal(res.status, 200);
  return (JSON.parse(res.body.toString()) as { name: string }[]).map((entry) => entry.name);
};

async function withServer(
  test: (server: TestServer, data: string, outside: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const data = path.join(dir, 'data');
    const outside = path.join(dir, 'outside');
    await mkdir(data);
    await mkdir(outside);
    const server = await startTestServer(data);
    try {
      assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
      await test(server, data, outside);
    } finally {
      await server.close();
    }
  });
}

describe('symbolic links below a repository', () => {
  it('an object that is a link is never served, stat-ed or listed', async () => {
    await withServer(async (server, data, outside) => {
      const secret = path.join(outside, 'secret');
      await writeFile(secret, 'not for clients');
      const name = sha256(Buffer.from('planted'));
      await symlink(secret, path.join(data, 'r', 'keys', name));
      await mkdir(path.join(data, 'r', 'data', name.slice(0, 2)));
      await symlink(secret, path.join(data, 'r', 'data', name.slice(0, 2), name));
      for (const type of ['keys', 'data']) {
        assert.equal((await raw(server.url, 'GET', `/r/${type}/${name}`)).status, 404);
        assert.equal((await raw(server.url, 'HEAD', `/r/${type}/${name}`)).status, 404);
        assert.deepEqual(await listNames(server.url, 'r', type), []);
      }
      // A config that is a link is not served either.
      await symlink(secret, path.join(data, 'r', 'config'));
      assert.equal((await raw(server.url, 'GET', '/r/config')).status, 404);
    });
  });

  it('a type or fan-out folder that is a link is never followed, listed or written through', async () => {
    await withServer(async (server, data, outside) => {
      const blob = randomBytes(100);
      const name = sha256(blob);
      await writeFile(path.join(outside, name), blob);
      // A fan-out folder and a whole type folder replaced by links to the outside folder.
      await symlink(outside, path.join(data, 'r', 'data', name.slice(0, 2)));
      await rm(path.join(data, 'r', 'snapshots'), { recursive: true });
      await symlink(outside, path.join(data, 'r', 'snapshots'));
      for (const type of ['data', 'snapshots']) {
        assert.equal((await raw(server.url, 'GET', `/r/${type}/${name}`)).status, 404, type);
        assert.equal((await raw(server.url, 'HEAD', `/r/${type}/${name}`)).status, 404, type);
        assert.deepEqual(await listNames(server.url, 'r', type), [], type);
      }
      const other = randomBytes(200);
      const refused = await upload(server.url, '/r/', 'snapshots', other);
      assert.equal(refused.status, 403, refused.body.toString());
      assert.deepEqual(await readdir(outside), [name], 'nothing was written through the link');
    });
  });

  it('a folder swapped for a link after it was served is refused at once; a looping link is a 404', async () => {
    await withServer(async (server, data, outside) => {
      const blob = randomBytes(100);
      const name = sha256(blob);
      assert.equal((await upload(server.url, '/r/', 'data', blob)).status, 200);
      assert.equal((await raw(server.url, 'HEAD', `/r/data/${name}`)).status, 200);
      // The same object, moved out and reached through a link that replaced its fan-out folder.
      const fan = path.join(data, 'r', 'data', name.slice(0, 2));
      await rename(fan, path.join(outside, 'moved'));
      await symlink(path.join(outside, 'moved'), fan);
      assert.equal((await raw(server.url, 'HEAD', `/r/data/${name}`)).status, 404);
      assert.equal((await raw(server.url, 'GET', `/r/data/${name}`)).status, 404);
      // A link to itself: a loop, not an error.
      await rm(fan);
      await symlink(fan, fan);
      assert.equal((await raw(server.url, 'HEAD', `/r/data/${name}`)).status, 404);
      assert.equal((await raw(server.url, 'GET', `/r/data/${name}`)).status, 404);
    });
  });

  it('verified content replaces a link planted under its name, and the link target is untouched', async () => {
    await withServer(async (server, data, outside) => {
      const target = path.join(outside, 'target');
      await writeFile(target, 'keep me');
      const blob = randomBytes(300);
      const name = sha256(blob);
      const file = path.join(data, 'r', 'keys', name);
      await symlink(target, file);
      assert.equal((await upload(server.url, '/r/', 'keys', blob)).status, 200);
      assert.ok((await lstat(file)).isFile(), 'the link was replaced by the object');
      assert.deepEqual(await readFile(file), blob);
      assert.equal(await readFile(target, 'utf8'), 'keep me');
      assert.deepEqual(await listNames(server.url, 'r', 'keys'), [name]);
    });
  });

  it('a repository folder that is a link, and a linked data root, keep working', async () => {
    await withTempDir(async (dir) => {
      const real = path.join(dir, 'real-root');
      const elsewhere = path.join(dir, 'other-disk');
      await mkdir(real);
      await mkdir(elsewhere);
      const root = path.join(dir, 'root-link');
      await symlink(real, root);
      const server = await startTestServer(root);
      try {
        assert.equal((await raw(server.url, 'POST', '/direct/?create=true')).status, 200);
        await mkdir(path.join(elsewhere, 'repo'));
        await symlink(path.join(elsewhere, 'repo'), path.join(real, 'linked'));
        assert.equal((await raw(server.url, 'POST', '/linked/?create=true')).status, 200);
        for (const repo of ['direct', 'linked']) {
          const blob = randomBytes(500);
          assert.equal((await upload(server.url, `/${repo}/`, 'data', blob)).status, 200, repo);
          assert.equal((await raw(server.url, 'GET', `/${repo}/data/${sha256(blob)}`)).status, 200, repo);
          assert.deepEqual(await listNames(server.url, repo, 'data'), [sha256(blob)], repo);
        }
        assert.ok((await readdir(path.join(elsewhere, 'repo', 'data'))).length === 1);
      } finally {
        await server.close();
      }
    });
  });
});
