/**
 * Login throttling against a real server over real HTTP/1.1 sockets: a burst of concurrent
 * guesses gets no more password checks than the throttle's limits (attempts count when they
 * start), and one flooding address cannot fill the check queue ahead of another's login.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Authenticator } from '../../src/auth/authenticator.ts';
import type { AuthenticatorOptions } from '../../src/auth/authenticator.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { inlineCrypt } from '../../src/auth/verifiers.ts';
import type { CryptEngine } from '../../src/auth/verifiers.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { basic, raw } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { makeTempDir } from '../helpers/ratchet-process.ts';
import { startTestServer } from '../helpers/in-process.ts';
import type { TestServer } from '../helpers/in-process.ts';
import { waitFor } from '../helpers/wait.ts';

let users = new Map<string, string>();
const closers: (() => Promise<void>)[] = [];
before(async () => {
  // Cost 8: each check takes long enough that a burst overlaps it.
  users = new Map([
    ['alice', await hashPassword('alice-secret', 8)],
    ['bob', await hashPassword('bob-secret', 8)],
  ]);
});
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function serve(
  options: Partial<AuthenticatorOptions> = {},
  userHashes = users,
): Promise<{
  server: TestServer;
  authenticator: Authenticator;
}> {
  const authenticator = new Authenticator({ logger: silentLogger(), ...options });
  authenticator.setUsers(userHashes);
  const { dir, cleanup } = await makeTempDir();
  const server = await startTestServer(dir, { noAuth: false }, undefined, authenticator);
  closers.push(
    cleanup,
    () => authenticator.close(),
    () => server.close(),
  );
  return { server, authenticator };
}

/** One login request on its own socket, from the given loopback address. */
function login(server: TestServer, user: string, password: string, from = '127.0.0.1'): Promise<RawResponse> {
  return raw(server.url, 'POST', `/${user}/?create=true`, {
    headers: { Authorization: basic(user, password) },
    localAddress: from,
    timeoutMs: 60_000,
  });
}

function statuses(responses: readonly RawResponse[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of responses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

describe('login throttling over real sockets', () => {
  it('checks at most the configured guesses of 80 parallel wrong logins, per user and per address', async () => {
    // Waiting checks are not bounded per client here: only the throttle limits what is checked.
    const { server, authenticator } = await serve({ maxQueuedChecksPerClient: 1000 });
    // 80 wrong passwords for alice at once: the pair limit (5) is all that is ever checked.
    const burst = await Promise.all(
      Array.from({ length: 80 }, (_, i) => login(server, 'alice', `guess-${i}`)),
    );
    assert.deepEqual(statuses(burst), { 401: 5, 429: 75 });
    assert.equal(authenticator.stats().checks, 5);
    // The right password is refused while the pair is blocked, without a check.
    assert.equal((await login(server, 'alice', 'alice-secret')).status, 429);
    assert.equal(authenticator.stats().checks, 5);
    // 80 wrong logins for 80 names at once: the address limit (20, 5 used) is all that is checked.
    const names = await Promise.all(Array.from({ length: 80 }, (_, i) => login(server, `user${i}`, 'x')));
    assert.deepEqual(statuses(names), { 401: 15, 429: 65 });
    assert.equal(authenticator.stats().checks, 20);
    // The address is blocked now: even bob's right password, unchecked.
    assert.equal((await login(server, 'bob', 'bob-secret')).status, 429);
    assert.equal(authenticator.stats().checks, 20);
    // From another address bob logs in.
    assert.equal((await login(server, 'bob', 'bob-secret', '127.0.0.2')).status, 200);
  });

  it("lets another address's login be checked while one address floods the check queue", async () => {
    // SHA-crypt users go through the crypt engine, which here records the order in which checks
    // start and holds them until released, so the queue's state is known exactly.
    const setting = '$6$rounds=1000$';
    const shaUsers = new Map([
      ['alice', await inlineCrypt.crypt('sha', 'alice-secret', `${setting}alicesalt`)],
      ['bob', await inlineCrypt.crypt('sha', 'bob-secret', `${setting}bobsalt`)],
    ]);
    const started: string[] = [];
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const cryptEngine: CryptEngine = {
      async crypt(kind, password, hashSetting) {
        started.push(password);
        await gate;
        return inlineCrypt.crypt(kind, password, hashSetting);
      },
    };
    const { server, authenticator } = await serve({ cryptEngine, maxConcurrentChecks: 2 }, shaUsers);
    let answered = 0;
    const flood = Array.from({ length: 30 }, (_, i) =>
      login(server, `name${i}`, `flood-${i}`).finally(() => answered++),
    );
    // Every flood request is answered, running (2) or waiting.
    await waitFor(
      () => answered + 2 + authenticator.stats().waitingChecks === 30,
      'the flood to settle in the queue',
    );
    const waiting = authenticator.stats().waitingChecks;
    const bob = login(server, 'bob', 'bob-secret', '127.0.0.2');
    await waitFor(() => authenticator.stats().waitingChecks === waiting + 1, "bob's check to wait");
    release();
    assert.equal((await bob).status, 200);
    const flooded = await Promise.all(flood);
    const checks = started.filter((password) => password !== '');
    // The flood had 4 checks waiting (its share), so bob's check started 7th, not 21st.
    assert.equal(waiting, 4);
    assert.equal(checks.indexOf('bob-secret'), 6);
    assert.deepEqual(statuses(flooded), { 401: 6, 429: 24 });
  });
});
