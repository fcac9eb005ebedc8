/** Process-wide append-only mode: adds work, deletes and overwrites do not (lock files aside). */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { blob, raw, upload } from '../helpers/http.ts';
import { serverForSuite } from './operations-helpers.ts';

describe('append-only mode', () => {
  const server = serverForSuite({ config: { appendOnly: true } });
  let url: string;

  before(() => {
    url = server.url;
  });

  it('creates repositories and stores config and objects', async () => {
    assert.equal((await raw(url, 'POST', '/ao/?create=true')).status, 200);
    assert.equal((await raw(url, 'POST', '/ao/config', { body: Buffer.from('cfg') })).status, 200);
    for (const type of ['data', 'keys', 'snapshots', 'index', 'locks']) {
      assert.equal((await upload(url, '/ao/', type, blob(100).data)).status, 200, type);
    }
  });

  it('refuses every delete but of locks with 403, and keeps the object', async () => {
    for (const type of ['data', 'keys', 'snapshots', 'index']) {
      const { data, name } = blob(50);
      await upload(url, '/ao/', type, data);
      const res = await raw(url, 'DELETE', `/ao/${type}/${name}`);
      assert.equal(res.status, 403, type);
      assert.match(res.body.toString(), /append-only/);
      assert.equal((await raw(url, 'HEAD', `/ao/${type}/${name}`)).status, 200, type);
    }
    assert.equal((await raw(url, 'DELETE', '/ao/config')).status, 403);
    assert.equal((await raw(url, 'HEAD', '/ao/config')).status, 200);
  });

  it('lets clients delete their lock files', async () => {
    const { data, name } = blob(60);
    await upload(url, '/ao/', 'locks', data);
    assert.equal((await raw(url, 'DELETE', `/ao/locks/${name}`)).status, 200);
    assert.equal((await raw(url, 'HEAD', `/ao/locks/${name}`)).status, 404);
  });

  it('is retry-safe: an identical re-upload is 200, a different config is 403', async () => {
    const { data } = blob(500);
    assert.equal((await upload(url, '/ao/', 'data', data)).status, 200);
    assert.equal((await upload(url, '/ao/', 'data', data)).status, 200);
    assert.equal((await raw(url, 'POST', '/ao/config', { body: Buffer.from('cfg') })).status, 200);
    assert.equal((await raw(url, 'POST', '/ao/config', { body: Buffer.from('evil') })).status, 403);
    assert.equal((await raw(url, 'GET', '/ao/config')).body.toString(), 'cfg');
  });
});
