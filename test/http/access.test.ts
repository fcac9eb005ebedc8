/**
 * Authentication and access over a real socket, with the real htpasswd authenticator: 401s,
 * private repositories, roles, listener ceilings, the proxy header, and login throttling.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { basic, blob, raw, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { serverForSuite } from './operations-helpers.ts';

const passwords: Record<string, string> = {
  alice: 'alice-secret',
  bob: 'bob-secret',
  auditor: 'auditor-secret',
  admin: 'admin-secret',
  ünï: 'pässwörd-日本',
};

function as(
  user: string,
  base: string,
  method: string,
  urlPath: string,
  extra: { headers?: Record<string, string | number>; body?: Buffer; password?: string } = {},
): Promise<RawResponse> {
  return raw(base, method, urlPath, {
    headers: {
      Authorization: basic(user, extra.password ?? passwords[user] ?? ''),
      Accept: v2,
      ...extra.headers,
    },
    body: extra.body,
  });
}

/** A GET from a chosen loopback source address (127.0.0.0/8 is all loopback on Linux). */
function from(
  localAddress: string,
  base: string,
  urlPath: string,
  authorization: string,
): Promise<RawResponse> {
  return raw(base, 'GET', urlPath, { headers: { Authorization: authorization }, localAddress });
}

describe('authentication and access', () => {
  const loopback = { kind: 'tcp', host: '127.0.0.1', port: 0 } as const;
  const server = serverForSuite({
    users: passwords,
    config: {
      proxyAuthUsername: 'X-Forwarded-User',
      listeners: [
        { address: loopback, maxRole: 'append-only', forHosts: true },
        { address: loopback, maxRole: 'admin', forHosts: false },
      ],
      grants: [
        { users: ['*'], repos: ['/{user}/**'], role: 'append-only' },
        { users: ['auditor'], repos: ['/**'], role: 'read-only' },
        { users: ['admin'], repos: ['/**'], role: 'admin' },
      ],
    },
  });
  let publicUrl: string;
  let adminUrl: string;

  before(async () => {
    [publicUrl = '', adminUrl = ''] = server.urls;
    for (const user of ['alice', 'bob', 'ünï']) {
      assert.equal(
        (await as(user, publicUrl, 'POST', `/${encodeURIComponent(user)}/?create=true`)).status,
        200,
        user,
      );
    }
  });

  it('answers 401 with a Basic challenge without or with wrong credentials', async () => {
    const none = await raw(publicUrl, 'GET', '/alice/keys/');
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="restic"');
    const wrong = await as('alice', publicUrl, 'GET', '/alice/keys/', { password: 'nope' });
    assert.equal(wrong.status, 401);
    const unknown = await as('mallory', publicUrl, 'GET', '/alice/keys/', { password: 'x' });
    assert.equal(unknown.status, 401);
    // Unauthenticated clients learn nothing about paths either.
    assert.equal((await raw(publicUrl, 'GET', '/no/such/shape/x')).status, 401);
  });

  it('accepts UTF-8 user names and passwords', async () => {
    assert.equal((await as('ünï', publicUrl, 'GET', `/${encodeURIComponent('ünï')}/keys/`)).status, 200);
  });

  it("gives a host append-only access to its own repository and none to another's", async () => {
    const { data, name } = blob(100);
    assert.equal((await as('alice', publicUrl, 'POST', `/alice/data/${name}`, { body: data })).status, 200);
    assert.equal((await as('alice', publicUrl, 'DELETE', `/alice/data/${name}`)).status, 403);
    assert.equal(
      (await as('alice', adminUrl, 'DELETE', `/alice/data/${name}`)).status,
      403,
      'grants cap too',
    );
    assert.equal(
      (await as('alice', publicUrl, 'POST', '/alice/laptop/?create=true')).status,
      200,
      'below own',
    );
    for (const [method, target] of [
      ['GET', '/bob/keys/'],
      ['HEAD', '/bob/config'],
      ['GET', '/bob/config'],
      ['POST', `/bob/data/${name}`],
      ['POST', '/bob/?create=true'],
      ['GET', '/keys/'],
    ] as const) {
      const res = await as('alice', publicUrl, method, target, method === 'POST' ? { body: data } : {});
      assert.equal(res.status, 403, `${method} ${target}`);
    }
  });

  it('lets a read-only user read and handle locks but not write or delete', async () => {
    const { data, name } = blob(100);
    await as('alice', publicUrl, 'POST', `/alice/snapshots/${name}`, { body: data });
    assert.equal((await as('auditor', adminUrl, 'GET', `/alice/snapshots/${name}`)).status, 200);
    assert.equal((await as('auditor', adminUrl, 'GET', '/bob/keys/')).status, 200);
    const other = blob(50);
    assert.equal(
      (await as('auditor', adminUrl, 'POST', `/alice/data/${other.name}`, { body: other.data })).status,
      403,
    );
    assert.equal((await as('auditor', adminUrl, 'DELETE', `/alice/snapshots/${name}`)).status, 403);
    const lock = blob(20);
    assert.equal(
      (await as('auditor', adminUrl, 'POST', `/alice/locks/${lock.name}`, { body: lock.data })).status,
      200,
    );
    assert.equal((await as('auditor', adminUrl, 'DELETE', `/alice/locks/${lock.name}`)).status, 200);
  });

  it('caps the admin at append-only on the public listener and lets it delete on the admin listener', async () => {
    const { data, name } = blob(100);
    await as('alice', publicUrl, 'POST', `/alice/index/${name}`, { body: data });
    assert.equal((await as('admin', publicUrl, 'DELETE', `/alice/index/${name}`)).status, 403);
    assert.equal((await as('admin', publicUrl, 'HEAD', `/alice/index/${name}`)).status, 200);
    assert.equal((await as('admin', adminUrl, 'DELETE', `/alice/index/${name}`)).status, 200);
    assert.equal((await as('admin', adminUrl, 'HEAD', `/alice/index/${name}`)).status, 404);
  });

  it('trusts the configured proxy header as the user name', async () => {
    const res = await raw(publicUrl, 'GET', '/bob/keys/', {
      headers: { 'X-Forwarded-User': 'bob', Accept: v2 },
    });
    assert.equal(res.status, 200);
    const denied = await raw(publicUrl, 'GET', '/alice/keys/', {
      headers: { 'X-Forwarded-User': 'bob', Accept: v2 },
    });
    assert.equal(denied.status, 403);
  });

  it('throttles a burst of wrong passwords with 429, without locking out the right user elsewhere', async () => {
    const wrong = basic('bob', 'guess');
    const statuses: number[] = [];
    for (let i = 0; i < 30 && !statuses.includes(429); i++) {
      statuses.push((await from('127.0.0.3', publicUrl, '/bob/keys/', wrong)).status);
    }
    assert.deepEqual(new Set(statuses), new Set([401, 429]), `statuses: ${statuses.join(',')}`);
    const blocked = await from('127.0.0.3', publicUrl, '/bob/keys/', basic('bob', passwords.bob ?? ''));
    assert.equal(blocked.status, 429, 'the attacking address stays blocked, even with the right password');
    assert.match(String(blocked.headers['retry-after']), /^\d+$/);
    assert.equal(
      (await from('127.0.0.5', publicUrl, '/bob/keys/', basic('bob', passwords.bob ?? ''))).status,
      200,
      'bob from elsewhere',
    );
  });
});
