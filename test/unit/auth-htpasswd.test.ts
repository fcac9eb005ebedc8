import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { hasUserLine, removeUserLines, setUserHash } from '../../src/auth/htpasswd-file.ts';
import { HtpasswdParseError, parseHtpasswd, userNameProblem } from '../../src/auth/htpasswd.ts';

const sha = '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI=';
const bcryptHash = '$2y$05$vm.ydAJJI48iw.F/zMeLXOAxiLGdkje1eV369PRXcofiyi/IhfzpK';

describe('parseHtpasswd', () => {
  it('skips the fixture lines of unknown schemes and invalid users, each with its line number', () => {
    const parsed = parseHtpasswd(
      readFileSync(new URL('../fixtures/htpasswd/skipped.htpasswd', import.meta.url)),
    );
    assert.deepEqual([...parsed.users.keys()], ['good', 'also-good']);
    assert.equal(parsed.users.get('good'), sha);
    assert.deepEqual(
      parsed.warnings.map((w) => w.line),
      [4, 5, 6, 7, 8, 9, 10],
    );
    const byLine = new Map(parsed.warnings.map((w) => [w.line, w.message]));
    assert.match(
      byLine.get(4) ?? '',
      /des-crypt.*traditional DES crypt hash, which is not supported \(it uses only the first 8 characters of a password\); set a new password with `ratchet user passwd`; the line is skipped/,
    );
    assert.match(byLine.get(5) ?? '', /plaintext.*unsupported hash scheme/);
    assert.match(byLine.get(6) ?? '', /yescrypt.*unsupported hash scheme/);
    assert.match(byLine.get(7) ?? '', /starts with a dot/);
    assert.match(byLine.get(8) ?? '', /"data" is reserved/);
    assert.match(byLine.get(9) ?? '', /"good" is listed again; the first line is used/);
    assert.match(byLine.get(10) ?? '', /slash/);
  });

  it('returns a prototype-free map', () => {
    const parsed = parseHtpasswd(`__proto__:${sha}\nconstructor:${sha}\n`);
    assert.ok(parsed.users instanceof Map);
    assert.equal(parsed.users.get('__proto__'), sha);
    assert.equal(parsed.users.get('toString'), undefined);
    assert.equal(parsed.users.size, 2);
  });

  it('accepts CRLF, comments, blank lines, surrounding blanks, a missing final newline and extra fields', () => {
    const text = `# users\r\n\r\nalice:${sha}\r\n  bob:${bcryptHash}  \r\n\t# indented comment\ncarol:${sha}:comment`;
    const parsed = parseHtpasswd(text);
    assert.deepEqual(
      [...parsed.users],
      [
        ['alice', sha],
        ['bob', bcryptHash],
        ['carol', sha],
      ],
    );
    assert.deepEqual(parsed.warnings, []);
  });

  it('accepts an empty file', () => {
    assert.equal(parseHtpasswd('').users.size, 0);
    assert.equal(parseHtpasswd(Buffer.alloc(0)).users.size, 0);
  });

  it('refuses a file that is not htpasswd at all, naming the line', () => {
    assert.throws(
      () => parseHtpasswd(`alice:${sha}\n<<<<<<< HEAD\n`),
      (err: unknown) => {
        assert.ok(err instanceof HtpasswdParseError);
        assert.equal(err.line, 2);
        assert.match(err.message, /line 2: the line has no ":"/);
        return true;
      },
    );
    assert.throws(() => parseHtpasswd(Buffer.from([0x61, 0x3a, 0xff, 0xfe, 0x0a])), /not valid UTF-8/);
    assert.throws(() => parseHtpasswd(Buffer.from(`alice:${sha}\nbob\u0000:x\n`)), /line 2: .*NUL/);
  });

  it('decodes UTF-8 user names', () => {
    const parsed = parseHtpasswd(Buffer.from(`jürgen-日本:${sha}\n`, 'utf8'));
    assert.deepEqual([...parsed.users.keys()], ['jürgen-日本']);
  });
});

describe('userNameProblem', () => {
  it('accepts names that also work as repo path components', () => {
    for (const name of [
      'alice',
      'host-01.example.org',
      'my host',
      'jürgen',
      'a'.repeat(255),
      'configs',
      'Data',
    ])
      assert.equal(userNameProblem(name), undefined, name);
  });

  it('refuses names that would break the file or a repo path', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['a'.repeat(256), /longer than 255 bytes/],
      ['é'.repeat(128), /longer than 255 bytes/],
      ['a:b', /":"/],
      ['a/b', /slash/],
      ['a\\b', /slash/],
      ['.', /dot/],
      ['..', /dot/],
      ['.hidden', /dot/],
      ['tab\there', /control/],
      ['nul\u0000', /control/],
      ['del\u007f', /control/],
      ['c1\u0085', /control/],
      [' alice', /white space/],
      ['alice ', /white space/],
      ['locks', /reserved/],
      ['config', /reserved/],
    ];
    for (const [name, problem] of cases)
      assert.match(userNameProblem(name) ?? 'valid', problem, JSON.stringify(name));
  });
});

describe('editing lines', () => {
  const text = `# admins\nalice:${sha}\nodd:$y$unsupported\n\nbob:${sha}\nalice:${bcryptHash}\n`;

  it('replaces the first line of a user, drops its duplicates and keeps every other line', () => {
    assert.equal(
      setUserHash(text, 'alice', 'NEW'),
      `# admins\nalice:NEW\nodd:$y$unsupported\n\nbob:${sha}\n`,
    );
  });

  it('appends a new user, keeping CRLF files CRLF and adding a missing final newline', () => {
    assert.equal(setUserHash('', 'carol', 'H'), 'carol:H\n');
    assert.equal(setUserHash(`alice:${sha}`, 'carol', 'H'), `alice:${sha}\ncarol:H\n`);
    assert.equal(setUserHash(`alice:${sha}\r\n`, 'carol', 'H'), `alice:${sha}\r\ncarol:H\r\n`);
    assert.equal(setUserHash(`alice:${sha}\r\n`, 'alice', 'H'), `alice:H\r\n`);
  });

  it('removes all lines of a user, usable or not', () => {
    assert.equal(removeUserLines(text, 'alice'), `# admins\nodd:$y$unsupported\n\nbob:${sha}\n`);
    assert.equal(removeUserLines(text, 'odd'), `# admins\nalice:${sha}\n\nbob:${sha}\nalice:${bcryptHash}\n`);
    assert.equal(removeUserLines(`alice:${sha}\n`, 'alice'), '');
  });

  it('finds lines of users whose hash is unusable, not comments', () => {
    assert.equal(hasUserLine(text, 'odd'), true);
    assert.equal(hasUserLine(text, 'carol'), false);
    assert.equal(hasUserLine('#alice:x\n', 'alice'), false);
    assert.equal(hasUserLine('#alice:x\n', '#alice'), false);
  });
});
