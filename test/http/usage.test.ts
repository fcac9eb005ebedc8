/**
 * Usage as a ledger, over a real socket: repositories another process puts into the data folder
 * (or removes) are counted by the background reconcile, the quota gauge is right after a
 * restart before any upload, repository creation is limited (count and full byte quotas), and
 * uploads and metrics scrapes walk no storage, with 300 repositories present.
 */
import assert from 'node:assert/strict';
import { access, cp, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { defaultGrants } from '../../src/access/grants.ts';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { objectTypes } from '../../src/domain/object-types.ts';
import { startServer } from '../../src/server/server.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { countingStorage } from '../helpers/counting-storage.ts';
import { filesUnder } from '../helpers/files.ts';
import { basic, blob, raw, upload } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { parseMetrics, sampleValue } from '../helpers/metrics.ts';
import { withRatchet, withTempDir } from '../helpers/ratchet-process.ts';
import { serverForSuite, writeHtpasswd } from './operations-helpers.ts';
import { waitFor } from '../helpers/wait.ts';

const bounded = { timeout: 120_000 };

/** Bytes of the repositories' files below dir (the server's own `.ratchet/` state aside). */
const bytesUnder = async (dir: string): Promise<number> =>
  (await filesUnder(dir))
    .filter((file) => !path.relative(dir, file.file).startsWith('.ratchet'))
    .reduce((sum, file) => sum + file.size, 0);

/** A gauge's value from a scrape of /metrics; undefined when the sample is absent. */
async function gauge(url: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const res = await raw(url, 'GET', '/metrics');
  assert.equal(res.status, 200);
  return sampleValue(parseMetrics(res.body.toString()), name, labels);
}

const totalUsed = (url: string): Promise<number | undefined> =>
  gauge(url, 'ratchet_quota_used_bytes', { scope: 'total' });

/** Runs fn against an in-process server on dir/data with these settings. */
async function withServer(
  dir: string,
  config: Partial<ServerConfig>,
  options: { storage?: Storage; users?: Record<string, string>; usageTickMs: number },
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const htpasswd = path.join(dir, 'htpasswd');
  if (options.users) await writeHtpasswd(htpasswd, options.users);
  const credentials = options.users
    ? await startHtpasswdAuth({ file: htpasswd, logger: silentLogger(), watch: false, pollIntervalMs: 0 })
    : undefined;
  const server = await startServer(
    testConfig(path.join(dir, 'data'), { noAuth: options.users === undefined, ...config }),
    { logger: silentLogger(), storage: options.storage, credentials, usageTickMs: options.usageTickMs },
  );
  const address = server.addresses[0];
  assert.ok(address?.kind === 'tcp');
  try {
    await fn(`http://127.0.0.1:${address.port}`);
  } finally {
    await server.close();
    await credentials?.close();
  }
}

describe('usage changed by other processes (case 3)', () => {
  it('counts a repository copied into the data folder within a reconcile pass', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const config = {
        quotas: { maxTotalBytes: 20_000, repoRules: [], userRules: [] },
        prometheus: true,
        prometheusNoAuth: true,
      };
      await withServer(dir, config, { usageTickMs: 20 }, async (url) => {
        assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
        assert.equal((await upload(url, '/r/', 'data', blob(6000).data)).status, 200);
        await waitFor(async () => (await totalUsed(url)) === 6000, 'the first count');

        // Another process copies a whole repository in: 12000 bytes on disk now.
        await cp(path.join(data, 'r'), path.join(data, 'copy'), { recursive: true });
        assert.equal(await bytesUnder(data), 12_000);
        await waitFor(async () => (await totalUsed(url)) === 12_000, 'the copy to be counted');
        const tooBig = blob(8001);
        assert.equal((await upload(url, '/r/', 'data', tooBig.data)).status, 507, 'the copy counts');
        assert.equal((await raw(url, 'HEAD', `/r/data/${tooBig.name}`)).status, 404);
        assert.equal((await upload(url, '/r/', 'data', blob(8000).data)).status, 200, 'what is left fits');

        // And removes it again: its bytes are free once a pass has seen it gone.
        await rm(path.join(data, 'copy'), { recursive: true });
        await waitFor(async () => (await totalUsed(url)) === 14_000, 'the removal to be counted');
        assert.equal((await upload(url, '/r/', 'data', blob(6000).data)).status, 200);
      });
    });
  });

  it('reports the total used after a restart before any upload', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const args = ['--no-auth', '--max-size', '10000', '--prometheus', '--prometheus-no-auth'];
      await withRatchet(data, args, async (first) => {
        assert.equal((await raw(first.url, 'POST', '/r/?create=true')).status, 200);
        assert.equal((await raw(first.url, 'POST', '/s/?create=true')).status, 200);
        assert.equal((await upload(first.url, '/r/', 'data', blob(6000).data)).status, 200);
        assert.equal((await upload(first.url, '/s/', 'keys', blob(1000).data)).status, 200);
      });
      await withRatchet(data, args, async (second) => {
        // Absent (not 0) while the start-up count runs, then the bytes on disk.
        let used: number | undefined;
        await waitFor(async () => (used = await totalUsed(second.url)) !== undefined, 'the start-up count');
        assert.equal(used, 7000);
        assert.equal(await bytesUnder(data), 7000);
        assert.equal(await gauge(second.url, 'ratchet_repo_size_bytes', { repo: 'r' }), 6000);
        assert.equal((await upload(second.url, '/r/', 'data', blob(3001).data)).status, 507);
      });
    });
  });
});

describe('repository creation is limited (case 4)', () => {
  const users = { alice: 'a-pw', bob: 'b-pw' };
  const server = serverForSuite({
    users,
    config: {
      appendOnly: true,
      grants: defaultGrants(true),
      quotas: {
        maxTotalBytes: undefined,
        repoRules: [],
        userRules: [{ users: ['bob'], maxBytes: 5000 }],
        maxReposPerUser: 2,
      },
    },
  });
  const create = (user: 'alice' | 'bob', repo: string): Promise<RawResponse> =>
    server.as(user, 'POST', `${repo}?create=true`);
  const exists = (repo: string): Promise<boolean> =>
    access(path.join(server.dataDir, repo)).then(
      () => true,
      () => false,
    );

  it('answers 507 to an append-only user at the repository limit, and makes nothing', bounded, async () => {
    assert.equal((await create('alice', '/alice/a/')).status, 200);
    assert.equal((await create('alice', '/alice/b/')).status, 200);
    const refused = await create('alice', '/alice/c/');
    assert.equal(refused.status, 507);
    assert.match(refused.body.toString(), /already holds 2 repositories.*--max-repos-per-user/);
    assert.equal(await exists('alice/c'), false);
    assert.equal((await create('alice', '/alice/a/')).status, 200, 'an existing one may be created again');
  });

  it('answers 507 to a user whose byte quota is full, and makes nothing', bounded, async () => {
    assert.equal((await create('bob', '/bob/x/')).status, 200);
    const { data, name } = blob(5000);
    assert.equal((await server.as('bob', 'POST', `/bob/x/data/${name}`, data)).status, 200);
    const refused = await create('bob', '/bob/y/');
    assert.equal(refused.status, 507);
    assert.match(refused.body.toString(), /quota of user bob \(5000 bytes, 0 left\)/);
    assert.equal(await exists('bob/y'), false);
  });
});

describe('no storage walks on the request path (case 6)', () => {
  it('uploads, deletes and scrapes walk no storage, with 300 repositories', bounded, async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      for (let i = 0; i < 300; i++) {
        for (const type of objectTypes)
          await mkdir(path.join(data, `u${i % 30}`, `r${i}`, type), { recursive: true });
      }
      const fs = new FsStorage({ root: data });
      await fs.init();
      const storage = countingStorage(fs);
      const config = {
        grants: defaultGrants(true),
        prometheus: true,
        prometheusNoAuth: true,
        quotas: {
          maxTotalBytes: 1_000_000,
          repoRules: [{ repos: ['/{user}/work/'], maxBytes: 100_000 }],
          userRules: [{ users: ['*'], maxBytes: 500_000 }],
        },
      };
      // The reconcile timer never fires here: only request work is counted.
      const options = { storage, users: { alice: 'a-pw' }, usageTickMs: 2 ** 30 };
      await withServer(dir, config, options, async (url) => {
        await waitFor(async () => (await totalUsed(url)) !== undefined, 'the start-up count', 60_000);
        assert.ok(storage.walks.listRepos > 0 && storage.walks.list >= 1500, 'the start-up count walked');
        storage.resetWalks();

        const as = { Authorization: basic('alice', 'a-pw') };
        assert.equal((await raw(url, 'POST', '/alice/work/?create=true', { headers: as })).status, 200);
        const names: string[] = [];
        for (let i = 0; i < 5; i++) {
          const { data: body, name } = blob(1000 + i);
          const res = await raw(url, 'POST', `/alice/work/data/${name}`, { headers: as, body });
          assert.equal(res.status, 200);
          names.push(name);
        }
        assert.equal((await raw(url, 'DELETE', `/alice/work/data/${names[0]}`, { headers: as })).status, 200);
        for (let i = 0; i < 3; i++) {
          assert.equal(await totalUsed(url), 4010);
          assert.equal(await gauge(url, 'ratchet_quota_used_bytes', { scope: 'user:alice' }), 4010);
          assert.equal(await gauge(url, 'ratchet_repo_objects', { repo: 'alice/work', type: 'data' }), 4);
          assert.equal(await gauge(url, 'ratchet_repo_size_bytes', { repo: 'u7/r7' }), 0);
        }
        assert.deepEqual(storage.walks, { listRepos: 0, list: 0 });
      });
    });
  });
});
