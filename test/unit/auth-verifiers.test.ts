import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { CryptWorker } from '../../src/auth/crypt-worker.ts';
import { parseHtpasswd } from '../../src/auth/htpasswd.ts';
import {
  checkHash,
  constantTimeEqual,
  decoyBcryptHash,
  decoyHashLike,
  inlineCrypt,
  verifyPassword,
} from '../../src/auth/verifiers.ts';

const fixtures = new URL('../fixtures/htpasswd/', import.meta.url);
const passwords = JSON.parse(readFileSync(new URL('passwords.json', fixtures), 'utf8')) as Record<
  'ascii' | 'utf8' | 'long',
  string
>;
const schemes = parseHtpasswd(readFileSync(new URL('schemes.htpasswd', fixtures)));
const nginxSchemes = parseHtpasswd(readFileSync(new URL('nginx.htpasswd', fixtures)));

function passwordOf(user: string): string {
  if (user.endsWith('-utf8')) return passwords.utf8;
  if (user.endsWith('-long')) return passwords.long;
  return passwords.ascii;
}

const worker = new CryptWorker();
after(() => worker.close());

describe('fixtures from the real tools', () => {
  it('load without warnings, every scheme with an ASCII and a UTF-8 password', () => {
    assert.deepEqual(schemes.warnings, []);
    assert.equal(schemes.users.size, 33);
    const kinds = new Set(
      [...schemes.users.values()].map((hash) => checkHash(hash)).map((c) => c.ok && c.scheme),
    );
    assert.deepEqual(
      [...kinds].sort(),
      ['apr1', 'bcrypt', 'md5-crypt', 'sha1', 'sha256-crypt', 'sha512-crypt'].sort(),
    );
  });

  it("load nginx's {SSHA} and {PLAIN}, with a warning for each plain-text password", () => {
    assert.equal(nginxSchemes.users.size, 6);
    const kinds = [...nginxSchemes.users.values()]
      .map((hash) => checkHash(hash))
      .map((c) => c.ok && c.scheme);
    assert.deepEqual([...new Set(kinds)].sort(), ['plain', 'ssha']);
    assert.deepEqual(
      nginxSchemes.warnings.map((w) => w.message),
      ['plain-ascii', 'plain-utf8'].map(
        (user) =>
          `user "${user}": the password is stored in plain text ({PLAIN}); replace it with a hash (ratchet user passwd ${user})`,
      ),
    );
  });

  for (const [user, hash] of [...schemes.users, ...nginxSchemes.users]) {
    it(`${user}: accepts the right password and refuses wrong ones`, async () => {
      const password = passwordOf(user);
      assert.equal(await verifyPassword(password, hash, worker), true);
      assert.equal(await verifyPassword(`${password}!`.slice(0, 70) + 'Z', hash, worker), false);
      assert.equal(await verifyPassword(password.toUpperCase(), hash, worker), false);
      assert.equal(await verifyPassword('', hash, worker), false);
    });
  }

  it('UTF-8 passwords are hashed as UTF-8 bytes, not Latin-1 or NFD', async () => {
    const hashes = [...schemes.users].filter(([user]) => user.endsWith('-utf8'));
    assert.equal(hashes.length, 16);
    for (const [user, hash] of hashes) {
      const latin1 = Buffer.from(passwords.utf8, 'utf8').toString('latin1');
      assert.equal(await verifyPassword(latin1, hash, worker), false, user);
      assert.equal(await verifyPassword(passwords.utf8.normalize('NFD'), hash, worker), false, user);
    }
  });

  it('computes the same on the worker and inline', async () => {
    for (const user of ['apr1-htpasswd-utf8', 'md5crypt-openssl-utf8', 'sha512-mkpasswd-rounds-utf8']) {
      const hash = schemes.users.get(user) ?? '';
      assert.equal(await verifyPassword(passwords.utf8, hash, inlineCrypt), true, user);
    }
  });
});

describe('checkHash', () => {
  it('recognises schemes and costs', () => {
    const cases: [string, string][] = [
      ['$2y$05$' + 'a'.repeat(53), 'bcrypt:5'],
      ['$2b$10$' + 'a'.repeat(53), 'bcrypt:10'],
      ['$apr1$abcdefgh$' + 'a'.repeat(22), 'apr1'],
      ['$1$abc$' + 'a'.repeat(22), 'md5-crypt'],
      ['{SHA}' + 'A'.repeat(27) + '=', 'sha1'],
      ['{SSHA}' + 'A'.repeat(28), 'ssha'],
      ['{PLAIN}x', 'plain'],
      ['$5$salt$' + 'a'.repeat(43), 'sha256-crypt:5000'],
      ['$6$rounds=20000$salt$' + 'a'.repeat(86), 'sha512-crypt:20000'],
    ];
    for (const [hash, costKey] of cases) {
      const check = checkHash(hash);
      assert.ok(check.ok, hash);
      assert.equal(check.costKey, costKey);
    }
  });

  it('refuses unknown schemes, malformed hashes and excessive costs with a reason', () => {
    const cases: [string, RegExp][] = [
      ['tcDmEtk7dtJ/2', /traditional DES crypt hash, which is not supported/],
      ['{SSHA}' + 'A'.repeat(27) + '=', /malformed \{SSHA\}/],
      ['{PLAIN}', /empty \{PLAIN\} password/],
      ['plain text', /unsupported hash scheme/],
      ['$y$j9T$abc$def', /unsupported hash scheme/],
      ['$2y$05$short', /malformed bcrypt/],
      ['$2y$18$' + 'a'.repeat(53), /above the supported maximum 17/],
      ['$2y$03$' + 'a'.repeat(53), /not valid/],
      ['{SHA}abc', /malformed \{SHA\}/],
      ['$6$salt$' + 'a'.repeat(43), /malformed sha512-crypt/],
      ['$5$rounds=999$salt$' + 'a'.repeat(43), /rounds=999 is not valid/],
      ['$5$rounds=05000$salt$' + 'a'.repeat(43), /not valid/],
      ['$6$rounds=2000000$salt$' + 'a'.repeat(86), /above the supported maximum/],
      ['$apr1$toolongsalt$' + 'a'.repeat(22), /malformed MD5/],
    ];
    for (const [hash, reason] of cases) {
      const check = checkHash(hash);
      assert.equal(check.ok, false, hash);
      if (!check.ok) assert.match(check.reason, reason, hash);
    }
  });

  it('an unusable hash verifies nothing', async () => {
    assert.equal(await verifyPassword('correct horse battery staple', 'correct horse battery staple'), false);
    assert.equal(await verifyPassword('x', ''), false);
  });
});

describe('decoys', () => {
  it('have the scheme and cost of the model and verify no password', async () => {
    for (const hash of [...schemes.users.values(), ...nginxSchemes.users.values()]) {
      const decoy = decoyHashLike(hash);
      const model = checkHash(hash);
      const check = checkHash(decoy);
      assert.ok(model.ok && check.ok, decoy);
      assert.equal(check.costKey, model.costKey);
      assert.notEqual(decoy, hash);
      assert.equal(await verifyPassword(passwords.ascii, decoy, worker), false);
    }
    const bcryptDecoy = decoyBcryptHash(4);
    assert.equal(checkHash(bcryptDecoy).ok, true);
    assert.equal(await verifyPassword('anything', bcryptDecoy), false);
  });
});

describe('constantTimeEqual', () => {
  it('compares strings of equal and unequal length', () => {
    assert.equal(constantTimeEqual('abc', 'abc'), true);
    assert.equal(constantTimeEqual('abc', 'abd'), false);
    assert.equal(constantTimeEqual('abc', 'abcd'), false);
    assert.equal(constantTimeEqual('', ''), true);
  });
});

describe('CryptWorker', () => {
  it('fails pending and later work once closed', async () => {
    const own = new CryptWorker();
    assert.match(await own.crypt('sha', 'x', '$5$abc'), /^\$5\$abc\$/);
    await own.close();
    await assert.rejects(own.crypt('sha', 'x', '$5$abc'), /closed/);
  });

  it('answers an unusable setting with an empty result', async () => {
    assert.equal(await worker.crypt('sha', 'x', '$5$bad salt!'), '');
  });
});
