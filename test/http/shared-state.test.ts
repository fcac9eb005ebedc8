/**
 * --state redis://: two real server processes share one real redis-server. Failed logins sent
 * through both add up to one throttle; with Redis gone, logins that would need a password check
 * get 503 (the throttle fails closed), verified users keep working and readiness says 503;
 * Redis back, everything recovers without a restart.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { basic, blob, raw, upload } from '../helpers/http.ts';
import { startRatchetServer, withTempDir } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { startRedis } from '../../bench/redis-server.ts';
import type { RedisServer } from '../../bench/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

/** Two instances with the same users and --state, each on a data folder of its own. */
async function withTwoInstances(
  test: (a: RatchetProcess, b: RatchetProcess) => Promise<void>,
): Promise<void> {
  await redis.flush();
  await withTempDir(async (dir) => {
    const htpasswd = path.join(dir, 'htpasswd');
    await writeFile(htpasswd, `alice:${await hashPassword('alice-secret', 4)}\n`, { mode: 0o600 });
    const start = (name: string): Promise<RatchetProcess> =>
      startRatchetServer([
        ...['--path', path.join(dir, name), '--htpasswd-file', htpasswd, '--listen', '127.0.0.1:0'],
        ...['--state', redis.url],
      ]);
    const a = await start('a');
    try {
      const b = await start('b');
      try {
        await test(a, b);
      } finally {
        assert.equal(await b.stop(), 0, 'instance b exits cleanly');
      }
    } finally {
      assert.equal(await a.stop(), 0, 'instance a exits cleanly');
    }
  });
}

const wrong = { headers: { Authorization: basic('alice', 'guess') } };
const right = { headers: { Authorization: basic('alice', 'alice-secret') } };

describe('shared state in Redis (--state)', () => {
  it('wrong passwords sent through two instances add up to one block', async () => {
    await withTwoInstances(async (a, b) => {
      // One process blocks an address+user pair after 5 failures: here 3 go to a and 2 to b.
      const statuses: number[] = [];
      for (const server of [a, b, a, b, a])
        statuses.push((await raw(server.url, 'GET', '/x/config', wrong)).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
      // The sixth, on either instance, is refused before any password check, even a right one.
      const blockedA = await raw(a.url, 'GET', '/alice/config', right);
      const blockedB = await raw(b.url, 'GET', '/alice/config', right);
      assert.equal(blockedA.status, 429);
      assert.equal(blockedB.status, 429);
      assert.ok(Number(blockedB.headers['retry-after']) > 0, 'Retry-After is set');
    });
  });

  it('with Redis gone: uploads and uncached logins 503, verified users keep reading, readiness 503; then recovery', async () => {
    const key = blob(300);
    await withTwoInstances(async (a, b) => {
      assert.equal((await raw(a.url, 'POST', '/alice/?create=true', right)).status, 200);
      assert.equal((await raw(a.url, 'GET', '/.ratchet/ready')).status, 200);
      await redis.stop();
      try {
        // Verified on a a moment ago: still served there.
        assert.equal((await raw(a.url, 'GET', '/alice/keys/', right)).status, 200);
        // ... but an upload, which the shared usage must count, waits for Redis: nothing is stored.
        const refused = await upload(a.url, '/alice/', 'keys', key.data, key.name, 'POST', right.headers);
        assert.equal(refused.status, 503);
        assert.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After is set');
        assert.equal((await raw(a.url, 'HEAD', `/alice/keys/${key.name}`, right)).status, 404);
        // Never verified on b: the throttle cannot be asked, so no password check happens.
        const uncached = await raw(b.url, 'GET', '/alice/keys/', right);
        assert.equal(uncached.status, 503);
        assert.ok(Number(uncached.headers['retry-after']) > 0, 'Retry-After is set');
        assert.equal((await raw(b.url, 'GET', '/alice/keys/', wrong)).status, 503);
        await waitFor(
          async () => (await raw(a.url, 'GET', '/.ratchet/ready')).status === 503,
          'readiness to report 503',
        );
        assert.match(a.stderr() + a.stdout(), /shared state: (lost|connection closed)/);
        assert.doesNotMatch(uncached.body.toString(), /at .*\.ts:\d+/, 'no stack trace to the client');
      } finally {
        await redis.start();
      }
      let last = 0;
      await waitFor(
        async () => (last = (await raw(b.url, 'POST', '/alice/?create=true', right)).status) === 200,
        'recovery on b',
      ).catch((err: unknown) => {
        throw new Error(`last status ${last}\n${b.stderr()}`, { cause: err });
      });
      await waitFor(
        async () => (await raw(a.url, 'GET', '/.ratchet/ready')).status === 200,
        'readiness again',
      );
      const stored = await upload(a.url, '/alice/', 'keys', key.data, key.name, 'POST', right.headers);
      assert.equal(stored.status, 200);
    });
  });
});
