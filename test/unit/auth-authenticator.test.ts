import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { Authenticator } from '../../src/auth/authenticator.ts';
import type { AuthenticatorOptions } from '../../src/auth/authenticator.ts';
import { basicAuthorization } from '../../src/auth/basic-credentials.ts';
import { CryptWorker } from '../../src/auth/crypt-worker.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { parseHtpasswd } from '../../src/auth/htpasswd.ts';
import { RatchetError } from '../../src/errors.ts';
import type { ErrorCode } from '../../src/errors.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { waitFor } from '../helpers/wait.ts';

const fixtures = new URL('../fixtures/htpasswd/', import.meta.url);
const passwords = JSON.parse(readFileSync(new URL('passwords.json', fixtures), 'utf8')) as Record<
  string,
  string
>;
const fixtureUsers = parseHtpasswd(readFileSync(new URL('schemes.htpasswd', fixtures))).users;

const worker = new CryptWorker();
after(() => worker.close());

const clock = { now: 1_000_000 };
const authenticators: Authenticator[] = [];
after(async () => {
  for (const authenticator of authenticators) await authenticator.close();
});

function create(
  users: ReadonlyMap<string, string>,
  options: Partial<AuthenticatorOptions> = {},
): Authenticator {
  const authenticator = new Authenticator({
    logger: silentLogger(),
    cryptEngine: worker,
    now: () => clock.now,
    ...options,
  });
  authenticator.setUsers(users);
  authenticators.push(authenticator);
  return authenticator;
}

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<RatchetError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RatchetError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

let alice = '';
let bob = '';
before(async () => {
  alice = await hashPassword('alice-secret', 4);
  bob = await hashPassword('bob-secret', 4);
});

describe('Authenticator', () => {
  it('accepts the fixture users of every scheme through a Basic header, ASCII and UTF-8', async () => {
    const authenticator = create(fixtureUsers);
    for (const [user] of fixtureUsers) {
      if (!/^(bcrypt-htpasswd|apr1-htpasswd|md5crypt|sha1|sha256-openssl|sha512-mkpasswd-rounds)-/.test(user))
        continue;
      const kind = user.endsWith('-utf8') ? 'utf8' : user.endsWith('-long') ? 'long' : 'ascii';
      const password = passwords[kind] ?? '';
      assert.equal(await authenticator.authenticate(basicAuthorization(user, password), '192.0.2.1'), user);
    }
  });

  it('refuses a wrong password with 401 and a Basic challenge', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    const err = await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'wrong'), '192.0.2.1'),
      'UNAUTHORIZED',
    );
    assert.equal(err.headers['WWW-Authenticate'], 'Basic realm="restic"');
  });

  it('asks for credentials when there are none, without counting a failure', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    for (const header of [undefined, '']) {
      const err = await rejection(authenticator.authenticate(header, '192.0.2.1'), 'UNAUTHORIZED');
      assert.equal(err.message, 'authentication required');
      assert.equal(err.headers['WWW-Authenticate'], 'Basic realm="restic"');
    }
    assert.equal(authenticator.stats().failures, 0);
  });

  it('refuses malformed headers with 401 and counts them', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    for (const header of ['Bearer abc', 'Basic !!!', `Basic ${Buffer.from('alice').toString('base64')}`]) {
      const err = await rejection(authenticator.authenticate(header, '192.0.2.1'), 'UNAUTHORIZED');
      assert.equal(err.headers['WWW-Authenticate'], 'Basic realm="restic"');
    }
    assert.equal(authenticator.stats().failures, 3);
  });

  it('treats an unknown user like a wrong password: same error, and a real (decoy) password check', async () => {
    const cost = 8;
    const users = new Map([
      ['alice', await bcrypt.hash('alice-secret', cost)],
      ['bob', await bcrypt.hash('bob-secret', cost)],
    ]);
    const authenticator = create(users, { realm: 'backups' });
    const wrong = await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'nope'), '192.0.2.1'),
      'UNAUTHORIZED',
    );
    const checks = authenticator.stats().checks;
    const unknown = await rejection(
      authenticator.authenticate(basicAuthorization('mallory', 'nope'), '192.0.2.2'),
      'UNAUTHORIZED',
    );
    assert.equal(authenticator.stats().checks, checks + 1);
    assert.equal(unknown.message, wrong.message);
    assert.deepEqual(unknown.headers, wrong.headers);
    assert.equal(unknown.headers['WWW-Authenticate'], 'Basic realm="backups"');
  });

  it('checks an unknown user against a decoy of the most common scheme and cost among the users', async () => {
    // SHA-crypt runs in the crypt engine, so a recording engine around the real worker shows
    // which hash each check used.
    const settings: string[] = [];
    const recording = {
      crypt: (kind: 'md5' | 'sha', password: string, setting: string) => {
        settings.push(setting);
        return worker.crypt(kind, password, setting);
      },
    };
    const pick = (...names: string[]) => new Map(names.map((name) => [name, fixtureUsers.get(name) ?? '']));
    const users = pick('sha512-mkpasswd-rounds-ascii', 'sha512-mkpasswd-rounds-utf8', 'sha256-openssl-ascii');
    const authenticator = create(users, { cryptEngine: recording });
    // The costliest hash's check is measured once at load (the padding's target): not this check.
    await waitFor(() => authenticator.stats().slowestCheckMs !== undefined, 'the slowest hash measured');
    settings.length = 0;
    await rejection(
      authenticator.authenticate(basicAuthorization('mallory', 'nope'), '192.0.2.2'),
      'UNAUTHORIZED',
    );
    assert.equal(settings.length, 1, 'one real check for the unknown user');
    const [decoy = ''] = settings;
    assert.match(decoy, /^\$6\$rounds=10000\$/, 'SHA-512 with 10000 rounds, as two of the three users');
    for (const hash of users.values()) assert.ok(!hash.startsWith(decoy), "not a user's own salt");
  });

  it('caches verified credentials: no second check until the TTL expires', async () => {
    const authenticator = create(new Map([['alice', alice]]), { cacheTtlMs: 60_000 });
    const header = basicAuthorization('alice', 'alice-secret');
    assert.equal(await authenticator.authenticate(header, '192.0.2.1'), 'alice');
    assert.equal(authenticator.stats().checks, 1);
    for (let i = 0; i < 5; i++) assert.equal(await authenticator.authenticate(header, '192.0.2.9'), 'alice');
    assert.equal(authenticator.stats().checks, 1);
    assert.equal(authenticator.stats().cacheHits, 5);
    clock.now += 60_000;
    assert.equal(await authenticator.authenticate(header, '192.0.2.1'), 'alice');
    assert.equal(authenticator.stats().checks, 2);
  });

  it('never caches a wrong password', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    const header = basicAuthorization('alice', 'wrong');
    await rejection(authenticator.authenticate(header, '192.0.2.1'), 'UNAUTHORIZED');
    await rejection(authenticator.authenticate(header, '192.0.2.1'), 'UNAUTHORIZED');
    assert.equal(authenticator.stats().checks, 2);
    assert.equal(authenticator.stats().cachedCredentials, 0);
  });

  it('drops cached credentials when the user hash changes or the user goes', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    const oldHeader = basicAuthorization('alice', 'alice-secret');
    assert.equal(await authenticator.authenticate(oldHeader, '192.0.2.1'), 'alice');
    const changed = await hashPassword('new-secret', 4);
    authenticator.setUsers(new Map([['alice', changed]]));
    assert.equal(authenticator.stats().cachedCredentials, 0);
    await rejection(authenticator.authenticate(oldHeader, '192.0.2.1'), 'UNAUTHORIZED');
    assert.equal(
      await authenticator.authenticate(basicAuthorization('alice', 'new-secret'), '192.0.2.1'),
      'alice',
    );
    authenticator.setUsers(new Map([['bob', bob]]));
    await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'new-secret'), '192.0.2.1'),
      'UNAUTHORIZED',
    );
  });

  it('keeps cached credentials of users whose hash did not change', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    await authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), '192.0.2.1');
    authenticator.setUsers(
      new Map([
        ['alice', alice],
        ['bob', bob],
      ]),
    );
    await authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), '192.0.2.1');
    assert.equal(authenticator.stats().checks, 1);
  });

  it('refuses a password checked against a hash that was replaced meanwhile', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    const pending = authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), '192.0.2.1');
    authenticator.setUsers(new Map([['alice', bob]]));
    await rejection(pending, 'UNAUTHORIZED');
  });

  it('shares one check among identical concurrent requests', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    const header = basicAuthorization('alice', 'alice-secret');
    const users = await Promise.all(
      Array.from({ length: 5 }, () => authenticator.authenticate(header, '192.0.2.1')),
    );
    assert.deepEqual(users, Array(5).fill('alice'));
    assert.equal(authenticator.stats().checks, 1);
  });

  it('answers 429 with Retry-After when too many checks are waiting', async () => {
    const authenticator = create(new Map([['alice', alice]]), { maxConcurrentChecks: 1, maxQueuedChecks: 1 });
    const attempts = ['a', 'b', 'c'].map((password) =>
      authenticator.authenticate(basicAuthorization('alice', password), '192.0.2.1').then(
        () => 'ok',
        (err: RatchetError) => err,
      ),
    );
    const results = await Promise.all(attempts);
    const busy = results.filter((r) => r instanceof RatchetError && r.code === 'TOO_MANY_REQUESTS');
    assert.equal(busy.length, 1);
    assert.equal((busy[0] as RatchetError).headers['Retry-After'], '1');
  });

  it('bounds the checks one user name may have waiting, whatever the addresses', async () => {
    const authenticator = create(new Map([['alice', alice]]), {
      maxConcurrentChecks: 1,
      maxQueuedChecksPerClient: 2,
    });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        authenticator.authenticate(basicAuthorization('alice', `guess${i}`), `192.0.2.${i + 1}`).then(
          () => 'ok',
          (err: RatchetError) => err.message,
        ),
      ),
    );
    // One running and two waiting for alice; the other seven are refused before any check.
    assert.equal(results.filter((r) => r === 'invalid credentials').length, 3);
    assert.equal(results.filter((r) => r === 'too many logins in progress').length, 7);
    assert.equal(authenticator.stats().checks, 3);
    // Another user is not held up by alice's share.
    const bobResult = await authenticator
      .authenticate(basicAuthorization('bob', 'x'), '192.0.2.99')
      .catch((err: RatchetError) => err.message);
    assert.equal(bobResult, 'invalid credentials');
  });

  it('throttles a burst of wrong passwords with 429, yet the right password works from another address', async () => {
    const authenticator = create(
      new Map([
        ['alice', alice],
        ['bob', bob],
      ]),
    );
    const attacker = '203.0.113.5';
    const statuses: ErrorCode[] = [];
    for (let i = 0; i < 8; i++) {
      const err = await rejection(
        authenticator.authenticate(basicAuthorization('alice', `guess${i}`), attacker),
        i < 5 ? 'UNAUTHORIZED' : 'TOO_MANY_REQUESTS',
      );
      statuses.push(err.code);
      if (err.code === 'TOO_MANY_REQUESTS') assert.match(err.headers['Retry-After'] ?? '', /^[1-9]\d*$/);
    }
    assert.deepEqual(statuses, [
      ...Array<ErrorCode>(5).fill('UNAUTHORIZED'),
      ...Array<ErrorCode>(3).fill('TOO_MANY_REQUESTS'),
    ]);
    // Throttled attempts are refused before any password check.
    assert.equal(authenticator.stats().checks, 5);
    assert.equal(authenticator.stats().throttled, 3);
    // Even the right password is refused from the blocked address...
    await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), attacker),
      'TOO_MANY_REQUESTS',
    );
    // ...but works from the real host, and bob still logs in from the attacker's address.
    assert.equal(
      await authenticator.authenticate(basicAuthorization('alice', 'alice-secret'), '192.0.2.10'),
      'alice',
    );
    assert.equal(await authenticator.authenticate(basicAuthorization('bob', 'bob-secret'), attacker), 'bob');
  });

  it('throttles guesses at unknown users exactly like known ones', async () => {
    const authenticator = create(new Map([['alice', alice]]));
    for (const user of ['alice', 'nobody']) {
      const codes: ErrorCode[] = [];
      for (let i = 0; i < 6; i++) {
        codes.push(
          await authenticator
            .authenticate(basicAuthorization(user, `guess${i}`), `198.51.100.${user.length}`)
            .then(
              () => 'INTERNAL' as const,
              (err: RatchetError) => err.code,
            ),
        );
      }
      assert.deepEqual(codes, [...Array<ErrorCode>(5).fill('UNAUTHORIZED'), 'TOO_MANY_REQUESTS'], user);
    }
  });

  it('lets the throttle be shared and configured', async () => {
    const authenticator = create(new Map([['alice', alice]]), { throttle: { maxFailuresPerPair: 1 } });
    await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'x'), '192.0.2.77'),
      'UNAUTHORIZED',
    );
    await rejection(
      authenticator.authenticate(basicAuthorization('alice', 'x'), '192.0.2.77'),
      'TOO_MANY_REQUESTS',
    );
  });
});
