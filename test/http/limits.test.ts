/**
 * Per-user limits over a real socket: a request rate with a burst (429 with Retry-After beyond
 * it, other users unaffected), and upload and download bandwidth that slow a transfer down
 * without failing it. Timing is only ever checked as a lower bound.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { blob, raw } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { serverForSuite } from './operations-helpers.ts';

const passwords: Record<string, string> = {
  alice: 'alice-pw',
  bob: 'bob-pw',
  carol: 'carol-pw',
  dave: 'dave-pw',
};

const mib = 1024 * 1024;
const bounded = { timeout: 60_000 };

describe('per-user limits', () => {
  const server = serverForSuite({
    users: passwords,
    config: {
      limits: [
        // Slow refill: the 4th request is refused however long the first three took.
        { users: ['alice'], requestsPerSecond: 0.1, burst: 3 },
        { users: ['carol'], uploadBytesPerSecond: mib },
        { users: ['dave'], downloadBytesPerSecond: mib },
      ],
    },
  });

  before(async () => {
    assert.equal((await server.as('bob', 'POST', '/shared/?create=true')).status, 200);
    // Every user's password is checked once here, so the timed requests below skip bcrypt.
    for (const user of ['carol', 'dave'])
      assert.equal((await server.as(user, 'GET', '/shared/keys/')).status, 200);
  });

  it('answers 429 with Retry-After once the burst is spent, for that user only', bounded, async () => {
    const statuses: number[] = [];
    let refused: RawResponse | undefined;
    for (let i = 0; i < 4; i++) {
      const res = await server.as('alice', 'GET', '/shared/keys/');
      statuses.push(res.status);
      if (res.status === 429) refused = res;
    }
    assert.deepEqual(statuses, [200, 200, 200, 429], 'a burst of 3, then the 4th immediate request');
    assert.ok(refused !== undefined);
    const retryAfter = String(refused.headers['retry-after']);
    assert.match(retryAfter, /^\d+$/, 'Retry-After is a number of seconds');
    assert.ok(Number(retryAfter) >= 1);
    // Other users are not affected, nor are the server's own endpoints.
    for (let i = 0; i < 5; i++) assert.equal((await server.as('bob', 'GET', '/shared/keys/')).status, 200);
    assert.equal((await raw(server.url, 'GET', '/.ratchet/health')).status, 200);
  });

  it('slows an upload to the user’s bandwidth without failing it', bounded, async () => {
    const { data, name } = blob(2 * mib);
    const started = performance.now();
    const res = await server.as('carol', 'POST', `/shared/data/${name}`, data);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(res.status, 200);
    // 2 MiB at 1 MiB/s, less the bucket's initial allowance.
    assert.ok(seconds >= 1.5, `took ${seconds.toFixed(2)} s`);
    const back = await server.as('bob', 'GET', `/shared/data/${name}`);
    assert.ok(back.body.equals(data), 'stored whole');
  });

  it('slows a download to the user’s bandwidth without failing it', bounded, async () => {
    const { data, name } = blob(2 * mib);
    assert.equal((await server.as('bob', 'POST', `/shared/data/${name}`, data)).status, 200);
    const started = performance.now();
    const res = await server.as('dave', 'GET', `/shared/data/${name}`);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(data), 'the whole object arrives');
    assert.ok(seconds >= 1.5, `took ${seconds.toFixed(2)} s`);
  });
});
