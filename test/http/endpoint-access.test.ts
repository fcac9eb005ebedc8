/**
 * The server's own endpoints decide access as the protocol does: the user's grants capped by the
 * listener's ceiling. Real servers on real sockets, plus the decision itself for the operation
 * the trash endpoints ask for (test/http/trash.test.ts drives them through real listeners).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessControl } from '../../src/access/access-control.ts';
import { defaultGrants } from '../../src/access/grants.ts';
import { parseTrustedPeers, resolveClient } from '../../src/http/client-address.ts';
import { authorizeEndpoint } from '../../src/http/endpoint-access.ts';
import type { EndpointAccess } from '../../src/http/endpoint-access.ts';
import { UserLimits } from '../../src/limits/user-limits.ts';
import type { HttpRequest } from '../../src/util/http-types.ts';
import { raw } from '../helpers/http.ts';
import { serverForSuite } from './operations-helpers.ts';

const passwords = { metrics: 'scrape-secret', alice: 'alice-secret', admin: 'admin-secret' };

describe('server endpoints and access', () => {
  const server = serverForSuite({
    users: passwords,
    config: { privateRepos: true, grants: defaultGrants(true), prometheus: true },
  });

  it("serve metrics to rest-server's `metrics` user with --private-repos, and to no host", async () => {
    const as = async (user: keyof typeof passwords, target: string): Promise<number> =>
      (await server.as(user, 'GET', target)).status;
    assert.equal(await as('metrics', '/metrics'), 200);
    assert.equal(await as('metrics', '/.ratchet/metrics'), 200);
    // A host sees its own repositories only: metrics name everyone's.
    assert.equal(await as('alice', '/metrics'), 403);
    assert.equal((await raw(server.url, 'GET', '/metrics')).status, 401);
    // The grant reaches the root path itself, not the repositories below it.
    assert.equal(await as('metrics', '/alice/config'), 403);
    assert.equal((await raw(server.url, 'GET', '/.ratchet/health')).status, 200);
  });

  it("decide an endpoint's operation under the listener's ceiling, as the protocol does", async () => {
    const access = new AccessControl(defaultGrants(true, 'admin'));
    const limits = new UserLimits([]);
    const req = { socket: { remoteAddress: '127.0.0.1' }, headers: {} } as unknown as HttpRequest;
    const client = resolveClient(req, parseTrustedPeers([]));
    const as = (user: string) => () => Promise.resolve(user);
    const emptyTrash: EndpointAccess = {
      kind: 'operation',
      operation: 'delete',
      resource: 'data',
      repo: ['alice'],
    };
    const decide = (user: string, maxRole: 'append-only' | 'admin', endpoint = emptyTrash) =>
      authorizeEndpoint(
        endpoint,
        req,
        client,
        { identify: as(user), access, maxRole, limits },
        () => undefined,
      );
    // The admin may delete through an admin listener, never through an append-only one.
    assert.equal(await decide('admin', 'admin'), 'admin');
    await assert.rejects(decide('admin', 'append-only'), { code: 'FORBIDDEN' });
    // The host may not delete its own backups anywhere, nor reach another's repository.
    await assert.rejects(decide('alice', 'admin'), { code: 'FORBIDDEN' });
    const readBob: EndpointAccess = { kind: 'operation', operation: 'read', resource: 'repo', repo: ['bob'] };
    await assert.rejects(decide('alice', 'admin', readBob), { code: 'FORBIDDEN' });
    assert.equal(await decide('bob', 'append-only', readBob), 'bob');
  });
});
