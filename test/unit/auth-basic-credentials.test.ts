import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { basicAuthorization, clientKey, parseBasicAuthorization } from '../../src/auth/basic-credentials.ts';

const encode = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('parseBasicAuthorization', () => {
  it('decodes user and password, splitting at the first colon', () => {
    assert.deepEqual(parseBasicAuthorization(basicAuthorization('alice', 'secret')), {
      user: 'alice',
      password: 'secret',
    });
    assert.deepEqual(parseBasicAuthorization(`Basic ${encode('alice:pa:ss:')}`), {
      user: 'alice',
      password: 'pa:ss:',
    });
    assert.deepEqual(parseBasicAuthorization(`Basic ${encode('bob:')}`), { user: 'bob', password: '' });
  });

  it('decodes UTF-8 in both parts', () => {
    assert.deepEqual(parseBasicAuthorization(basicAuthorization('jürgen', 'pässwörd-日本')), {
      user: 'jürgen',
      password: 'pässwörd-日本',
    });
  });

  it('accepts any case of the scheme, extra blanks and unpadded base64', () => {
    const token = encode('alice:secret1').replace(/=+$/, '');
    for (const header of [`basic ${token}`, `BASIC  ${token}`, `Basic\t${token} `]) {
      assert.deepEqual(parseBasicAuthorization(header), { user: 'alice', password: 'secret1' }, header);
    }
  });

  it('refuses everything else', () => {
    const cases = [
      '',
      'Basic',
      'Basic ',
      `Bearer ${encode('alice:secret')}`,
      `Basic ${encode('alice:secret')} extra`,
      `Basic ${encode('alice-no-colon')}`,
      `Basic ${encode(':password')}`,
      'Basic !!!!',
      'Basic YWxpY2U6c2VjcmV0=', // non-canonical padding
      'Basic YWxpY2U6c2VjcmV0Z', // a dangling character
      `Basic ${Buffer.from([0x61, 0x3a, 0xff]).toString('base64')}`, // not UTF-8
      `Basic ${encode(`${'u'.repeat(256)}:x`)}`,
      `Basic ${encode(`alice:${'p'.repeat(1025)}`)}`,
      `Basic ${encode('alice:pass\u0000word')}`,
      `Basic ${encode('al\u0000ice:password')}`,
    ];
    for (const header of cases) assert.equal(parseBasicAuthorization(header), undefined, header);
  });
});

describe('clientKey', () => {
  it('keys IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64', () => {
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('::ffff:c000:207'), '192.0.2.7');
    assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:DB8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('64:ff9b::192.0.2.7'), '64:ff9b:0:0::/64');
  });

  it('keys unix sockets and unknown addresses as local', () => {
    assert.equal(clientKey(undefined), 'local');
    assert.equal(clientKey(''), 'local');
    assert.equal(clientKey('not an address'), 'local');
  });
});
