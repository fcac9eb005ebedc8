/** A listener's repository root (/{user}) and the depth check on the full repository path. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RatchetError } from '../../src/errors.ts';
import {
  checkRepoDepth,
  formatRepoRoot,
  parseRepoRoot,
  placeUnderRoot,
  rootNeedsUser,
} from '../../src/protocol/repo-root.ts';
import { parseRoute } from '../../src/protocol/route.ts';

const name = 'a'.repeat(64);
const route = (path: string) => {
  const parsed = parseRoute(path);
  assert.ok(parsed !== undefined, path);
  return parsed;
};
const refusedWith = (code: string, pattern: RegExp) => (err: unknown) =>
  err instanceof RatchetError && err.code === code && pattern.test(err.message);

describe('repository root of a listener', () => {
  it('parses literals and the {user} placeholder, and prints them back', () => {
    const root = parseRepoRoot('/hosts/{user}/');
    assert.deepEqual(root, [{ literal: 'hosts' }, { user: true }]);
    assert.equal(formatRepoRoot(root), '/hosts/{user}');
    assert.equal(rootNeedsUser(root), true);
    assert.equal(rootNeedsUser(parseRepoRoot('/shared')), false);
    assert.deepEqual(parseRepoRoot('/'), []);
  });

  it('refuses roots that are not absolute, other placeholders and names no repository may have', () => {
    assert.throws(() => parseRepoRoot('{user}'), /must start with "\/"/);
    assert.throws(() => parseRepoRoot('/{host}'), /only placeholder is \{user\}/);
    assert.throws(() => parseRepoRoot('/x{user}'), /only placeholder/);
    assert.throws(() => parseRepoRoot('/.ratchet'), /cannot name a repository folder/);
    assert.throws(() => parseRepoRoot('/data/{user}'), /cannot name a repository folder/);
    assert.throws(() => parseRepoRoot('/a/../b'), /cannot name a repository folder/);
  });

  it("places every kind of route below the user's folder", () => {
    const root = parseRepoRoot('/{user}');
    assert.deepEqual(placeUnderRoot(root, 'host1', route('/')), { kind: 'repo', repo: ['host1'] });
    assert.deepEqual(placeUnderRoot(root, 'host1', route('/config')), { kind: 'config', repo: ['host1'] });
    assert.deepEqual(placeUnderRoot(root, 'host1', route('/keys/')), {
      kind: 'list',
      repo: ['host1'],
      type: 'keys',
    });
    assert.deepEqual(placeUnderRoot(root, 'host1', route(`/sub/data/${name}`)), {
      kind: 'object',
      repo: ['host1', 'sub'],
      type: 'data',
      name,
    });
  });

  it('needs a user whose name can be a folder', () => {
    const root = parseRepoRoot('/{user}');
    assert.throws(
      () => placeUnderRoot(root, undefined, route('/config')),
      refusedWith('UNAUTHORIZED', /log in/),
    );
    assert.throws(
      () => placeUnderRoot(root, 'snapshots', route('/config')),
      refusedWith('FORBIDDEN', /folder/),
    );
    assert.deepEqual(placeUnderRoot(parseRepoRoot('/shared'), undefined, route('/config')).repo, ['shared']);
  });

  it('says when a repository path is deeper than --max-repo-depth', () => {
    checkRepoDepth(['a', 'b'], 2);
    assert.throws(
      () => checkRepoDepth(['a', 'b', 'c'], 2),
      refusedWith('NOT_FOUND', /has 3 folders; --max-repo-depth allows 2/),
    );
  });
});
