import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeAddress, parseListenAddress } from '../../src/config/listen-address.ts';
import { encodeEntry, listFormat, v1MediaType, v2MediaType } from '../../src/protocol/list-response.ts';

describe('listen addresses', () => {
  it('parses the forms rest-server takes', () => {
    assert.deepEqual(parseListenAddress('127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseListenAddress(':8000'), { kind: 'tcp', host: undefined, port: 8000 });
    assert.deepEqual(parseListenAddress('[::1]:0'), { kind: 'tcp', host: '::1', port: 0 });
    assert.deepEqual(parseListenAddress('localhost:1'), { kind: 'tcp', host: 'localhost', port: 1 });
    assert.deepEqual(parseListenAddress('unix:/run/ratchet.sock'), {
      kind: 'unix',
      path: '/run/ratchet.sock',
    });
  });

  it('refuses anything else', () => {
    for (const text of ['8000', 'host', 'host:', 'host:70000', '::1:80', 'unix:', 'a:b:c']) {
      assert.throws(() => parseListenAddress(text), /invalid listen address/, text);
    }
  });

  it('describes addresses as URLs', () => {
    assert.equal(describeAddress({ kind: 'tcp', host: '::1', port: 80 }), 'http://[::1]:80');
    assert.equal(describeAddress({ kind: 'tcp', host: undefined, port: 80 }), 'http://0.0.0.0:80');
  });
});

describe('list encoding', () => {
  it('chooses v2 only for the exact media type', () => {
    assert.equal(listFormat(v2MediaType), 'v2');
    assert.equal(listFormat(`${v2MediaType}; q=1`), 'v1');
    assert.equal(listFormat(undefined), 'v1');
    assert.equal(listFormat(v1MediaType), 'v1');
  });

  it('encodes entries as restic reads them', () => {
    const entry = { name: 'ab'.repeat(32), size: 42 };
    assert.deepEqual(JSON.parse(encodeEntry(entry, 'v2')), entry);
    assert.equal(JSON.parse(encodeEntry(entry, 'v1')), entry.name);
  });
});
