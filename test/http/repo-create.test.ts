/**
 * Creating repositories on a filesystem that runs out of room: a precise 507, nothing half-made,
 * and the server serves on. Real tmpfs mounts (needs root, as CI runs).
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { raw } from '../helpers/http.ts';
import { withServerOnTmpfs } from './operations-helpers.ts';

const create = (base: string, repo: string) => raw(base, 'POST', `/${repo}/?create=true`);

describe('repository creation', () => {
  it('makes six folders per repository: data fan-out folders come with the first upload', async () => {
    await withServerOnTmpfs('4m', async (server, dir) => {
      assert.equal((await create(server.url, 'one')).status, 200);
      assert.deepEqual((await readdir(path.join(dir, 'one'))).sort(), [
        'data',
        'index',
        'keys',
        'locks',
        'snapshots',
      ]);
      assert.deepEqual(await readdir(path.join(dir, 'one', 'data')), []);
    });
  });

  it('answers 507 when no inodes are left, and leaves no half-made repository', async () => {
    // 40 inodes: the root and the state folder take a few, each repository six.
    await withServerOnTmpfs(
      '4m',
      async (server, dir) => {
        const statuses: number[] = [];
        let failed: { repo: string; text: string } | undefined;
        for (let i = 0; i < 20 && failed === undefined; i++) {
          const response = await create(server.url, `nested/repo${i}`);
          statuses.push(response.status);
          if (response.status !== 200) failed = { repo: `repo${i}`, text: response.body.toString() };
        }
        assert.ok(failed, `all creations succeeded: ${statuses.join(',')}`);
        assert.equal(statuses.at(-1), 507, failed.text);
        assert.ok(statuses.slice(0, -1).every((status) => status === 200));
        assert.match(failed.text, /insufficient storage/i);
        // Every repository that exists is whole; the one that failed left nothing behind.
        const names = await readdir(path.join(dir, 'nested'));
        assert.ok(!names.includes(failed.repo), `${failed.repo} was left behind`);
        for (const name of names) {
          assert.deepEqual((await readdir(path.join(dir, 'nested', name))).sort(), [
            'data',
            'index',
            'keys',
            'locks',
            'snapshots',
          ]);
        }
        // Listing what was made still works, and the failed one is not a repository.
        assert.equal((await raw(server.url, 'GET', `/nested/${failed.repo}/keys/`)).status, 404);
        assert.equal((await raw(server.url, 'GET', '/nested/repo0/keys/')).status, 200);
      },
      40,
    );
  });
});
