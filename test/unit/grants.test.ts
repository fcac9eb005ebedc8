import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePattern, defaultGrants, GrantTable } from '../../src/access/grants.ts';

describe('grant patterns', () => {
  it('refuses malformed patterns', () => {
    for (const pattern of ['alice/**', '/a*/', '/{usr}/', '/a//b']) {
      assert.throws(() => compilePattern(pattern), /pattern/, pattern);
    }
  });

  it('matches {user}, * and ** as documented', () => {
    const table = new GrantTable([
      { users: ['*'], repos: ['/{user}/**'], role: 'append-only' },
      { users: ['auditor'], repos: ['/**'], role: 'read-only' },
      { users: ['admin'], repos: ['/**'], role: 'admin' },
      { users: ['ops'], repos: ['/servers/*/'], role: 'admin' },
    ]);
    assert.equal(table.roleFor('alice', ['alice']), 'append-only');
    assert.equal(table.roleFor('alice', ['alice', 'laptop']), 'append-only');
    assert.equal(table.roleFor('alice', ['bob']), undefined);
    assert.equal(table.roleFor('alice', []), undefined);
    assert.equal(table.roleFor('alice', ['alicex']), undefined);
    assert.equal(table.roleFor('auditor', ['bob', 'x']), 'read-only');
    assert.equal(table.roleFor('auditor', ['auditor']), 'append-only');
    assert.equal(table.roleFor('admin', []), 'admin');
    assert.equal(table.roleFor('admin', ['admin']), 'admin');
    assert.equal(table.roleFor('ops', ['servers', 'web1']), 'admin');
    assert.equal(table.roleFor('ops', ['servers']), undefined);
    assert.equal(table.roleFor('ops', ['servers', 'web1', 'x']), undefined);
    assert.equal(table.roleFor(undefined, ['alice']), undefined);
  });

  it('reproduces rest-server defaults', () => {
    const open = new GrantTable(defaultGrants(false));
    assert.equal(open.roleFor('alice', ['bob']), 'admin');
    assert.equal(open.roleFor('alice', []), 'admin');
    const priv = new GrantTable(defaultGrants(true));
    assert.equal(priv.roleFor('alice', ['alice']), 'admin');
    assert.equal(priv.roleFor('alice', ['alice', 'sub']), 'admin');
    assert.equal(priv.roleFor('alice', ['bob']), undefined);
    assert.equal(priv.roleFor('alice', []), undefined);
  });
});
