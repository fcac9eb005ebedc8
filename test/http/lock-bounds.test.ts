/**
 * Lock objects are bounded on their own (any role may write them), and a 507 tells a user only
 * about their own scopes, never the whole data folder's usage. Real server on a real socket.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { defaultMaxLockBytes, defaultMaxLocksPerRepo } from '../../src/quota/quota-manager.ts';
import { raw, sha256, upload, v2 } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import { capturingLogger } from '../helpers/logger.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

const listLocks = async (url: string): Promise<number> =>
  (JSON.parse((await raw(url, 'GET', '/r/locks/', { headers: { Accept: v2 } })).body.toString()) as unknown[])
    .length;

describe('lock objects', () => {
  it('refuses a lock larger than the bound with 413, whatever the quota', async () => {
    await withTempDir(async (dir) => {
      const server = await startTestServer(dir);
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        const big = await upload(server.url, '/r/', 'locks', randomBytes(defaultMaxLockBytes + 1));
        assert.equal(big.status, 413, big.body.toString());
        assert.match(big.body.toString(), /--max-lock-size/);
        assert.equal(await listLocks(server.url), 0);
        assert.equal((await upload(server.url, '/r/', 'locks', randomBytes(400))).status, 200);
        assert.equal(await listLocks(server.url), 1);
      } finally {
        await server.close();
      }
    });
  });

  it('holds at most the bound of locks per repository; deleting one makes room', async () => {
    await withTempDir(async (dir) => {
      const server = await startTestServer(dir, {
        quotas: { maxTotalBytes: undefined, repoRules: [], userRules: [], maxLocksPerRepo: 5 },
      });
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        const names: string[] = [];
        for (let i = 0; i < 5; i++) {
          const lock = randomBytes(300);
          const res = await upload(server.url, '/r/', 'locks', lock);
          assert.equal(res.status, 200);
          names.push(sha256(lock));
        }
        const sixth = await upload(server.url, '/r/', 'locks', randomBytes(300));
        assert.equal(sixth.status, 507, sixth.body.toString());
        assert.match(sixth.body.toString(), /5 lock objects.*restic unlock/);
        assert.equal(await listLocks(server.url), 5);
        // Other types are not affected, and a deleted lock frees its place at once.
        assert.equal((await upload(server.url, '/r/', 'data', randomBytes(300))).status, 200);
        assert.equal((await raw(server.url, 'DELETE', `/r/locks/${names[0]}`)).status, 200);
        assert.equal((await upload(server.url, '/r/', 'locks', randomBytes(300))).status, 200);
        assert.equal(await listLocks(server.url), 5);
      } finally {
        await server.close();
      }
    });
  });

  it('has documented defaults that keep what locks can hold small', () => {
    assert.ok(defaultMaxLockBytes * defaultMaxLocksPerRepo <= 2 * 1024 * 1024);
  });
});

describe('507 messages', () => {
  it('never tell a user the whole data folder limit or usage; the operator log has them', async () => {
    await withTempDir(async (dir) => {
      const { logger, lines } = capturingLogger();
      const server = await startTestServer(
        dir,
        { quotas: { maxTotalBytes: 12_345, repoRules: [], userRules: [] } },
        undefined,
        undefined,
        logger,
      );
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        const res = await upload(server.url, '/r/', 'data', randomBytes(20_000));
        assert.equal(res.status, 507);
        const text = res.body.toString();
        assert.match(text, /storage limit/);
        assert.doesNotMatch(text, /12345|12 345|data folder|left/);
        const logged = lines.find((line) => line.msg.includes('storage limit')) as
          { detail?: string } | undefined;
        assert.match(logged?.detail ?? '', /12345 bytes/);
      } finally {
        await server.close();
      }
    });
  });
});
