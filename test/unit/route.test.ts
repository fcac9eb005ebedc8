import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRoute } from '../../src/protocol/route.ts';

const name = 'a'.repeat(64);
const parse = (path: string): unknown => parseRoute(path);

describe('parseRoute', () => {
  it('parses every valid shape', () => {
    assert.deepEqual(parse('/'), { kind: 'repo', repo: [] });
    assert.deepEqual(parse('/alice/'), { kind: 'repo', repo: ['alice'] });
    assert.deepEqual(parse('/alice'), { kind: 'repo', repo: ['alice'] });
    assert.deepEqual(parse('/alice/laptop/'), { kind: 'repo', repo: ['alice', 'laptop'] });
    assert.deepEqual(parse('/config'), { kind: 'config', repo: [] });
    assert.deepEqual(parse('/alice/config'), { kind: 'config', repo: ['alice'] });
    assert.deepEqual(parse('/data/'), { kind: 'list', repo: [], type: 'data' });
    assert.deepEqual(parse('/a/b/c/snapshots/'), { kind: 'list', repo: ['a', 'b', 'c'], type: 'snapshots' });
    assert.deepEqual(parse(`/keys/${name}`), { kind: 'object', repo: [], type: 'keys', name });
    assert.deepEqual(parse(`/alice/data/${name}`), { kind: 'object', repo: ['alice'], type: 'data', name });
    for (const type of ['data', 'keys', 'locks', 'snapshots', 'index']) {
      assert.deepEqual(parse(`/r/${type}/${name}`), { kind: 'object', repo: ['r'], type, name });
    }
  });

  it('decodes percent-encoded ordinary characters in repo names', () => {
    assert.deepEqual(parse('/al%69ce/config'), { kind: 'config', repo: ['alice'] });
    assert.deepEqual(parse('/my%20repo/'), { kind: 'repo', repo: ['my repo'] });
  });

  it('refuses traversal and separators in every encoding', () => {
    for (const path of [
      '/../config',
      '/./config',
      '/alice/../bob/config',
      '/%2e%2e/config',
      '/%2E%2E/config',
      '/.%2e/config',
      '/%2e/config',
      '/alice%2fbob/config',
      '/alice%2Fbob/config',
      '/alice%5cbob/config',
      '/a%00b/config',
      '/a%0ab/config',
      '/%ZZ/config',
      '/%/config',
      '//config',
      '/alice//config',
      'config',
      '',
    ]) {
      assert.equal(parse(path), undefined, path);
    }
  });

  it('refuses type names, config and dot names as repo components', () => {
    for (const path of [
      '/data/config',
      '/config/config',
      '/snapshots/x/',
      '/.htpasswd/config',
      '/.ratchet/',
      '/.ratchet/health',
      '/a/.hidden/',
    ])
      assert.equal(parse(path), undefined, path);
    // A type name at the front is the root repository's folder, not a repository called `keys`.
    assert.deepEqual(parse('/keys/'), { kind: 'list', repo: [], type: 'keys' });
  });

  it('refuses malformed object names and type paths without their slash', () => {
    assert.equal(parse(`/data/${'A'.repeat(64)}`), undefined);
    assert.equal(parse(`/data/${'a'.repeat(63)}`), undefined);
    assert.equal(parse(`/data/${'a'.repeat(65)}`), undefined);
    assert.equal(parse(`/data/${'g'.repeat(64)}`), undefined);
    assert.equal(parse(`/data/${name}/`), undefined);
    assert.equal(parse(`/other/${name}`), undefined);
    assert.equal(parse('/alice/data'), undefined);
    assert.equal(parse('/config/'), undefined);
    assert.equal(parse(`/data/00/${name}`), undefined);
  });

  it('refuses over-long components', () => {
    assert.equal(parse(`/${'x'.repeat(256)}/config`), undefined);
    assert.deepEqual(parse(`/${'x'.repeat(255)}/config`), { kind: 'config', repo: ['x'.repeat(255)] });
  });
});
