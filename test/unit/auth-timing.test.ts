/**
 * Failed logins take as long whoever the user is: the decoy for unknown users has the most
 * common scheme and cost, and every failed check is padded to the slowest hash's duration,
 * while successful logins are not padded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { basicAuthorization } from '../../src/auth/basic-credentials.ts';
import { CryptWorker } from '../../src/auth/crypt-worker.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { decoyFor, estimatedWork, failurePaddingMs, slowestHash } from '../../src/auth/timing.ts';
import { checkHash } from '../../src/auth/verifiers.ts';
import { RatchetError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { waitFor } from '../helpers/wait.ts';

const worker = new CryptWorker();
const authenticators: Authenticator[] = [];
after(async () => {
  for (const authenticator of authenticators) await authenticator.close();
  await worker.close();
});

// Three cheap bcrypt users, one costly one, and a SHA-crypt user in between.
let users = new Map<string, string>();
before(async () => {
  users = new Map([
    ['alice', await hashPassword('alice-secret', 4)],
    ['bob', await hashPassword('bob-secret', 4)],
    ['dave', await hashPassword('dave-secret', 4)],
    ['carol', await hashPassword('carol-secret', 10)],
    ['erin', '$5$saltsalt$' + 'a'.repeat(43)],
  ]);
});

function create(): Authenticator {
  const authenticator = new Authenticator({ logger: silentLogger(), cryptEngine: worker });
  authenticator.setUsers(users);
  authenticators.push(authenticator);
  return authenticator;
}

/** How long one login takes in ms, and whether it succeeded. */
async function timed(authenticator: Authenticator, user: string, password: string, from: string) {
  const started = performance.now();
  const ok = await authenticator.authenticate(basicAuthorization(user, password), from).then(
    () => true,
    (err: unknown) => {
      assert.ok(err instanceof RatchetError && err.code === 'UNAUTHORIZED', String(err));
      return false;
    },
  );
  return { ok, ms: performance.now() - started };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

describe('login timing', () => {
  it('picks the decoy from the most common scheme and cost, the padding target from the slowest', () => {
    assert.match(decoyFor(users), /^\$2b\$04\$/, 'bcrypt cost 4, as three of the five users');
    assert.equal(slowestHash(users)?.costKey, 'bcrypt:10');
    assert.equal(slowestHash(users)?.hash, users.get('carol'));
    assert.equal(slowestHash(new Map()), undefined);
    const work = (hash: string) => {
      const check = checkHash(hash);
      assert.ok(check.ok);
      return estimatedWork(check);
    };
    assert.ok(work(users.get('carol') ?? '') > work(users.get('erin') ?? ''));
    assert.ok(work(users.get('erin') ?? '') > work(users.get('alice') ?? ''));
    // The padding decision: what is left of the slowest check's duration, never negative.
    assert.equal(failurePaddingMs(100, 30), 70);
    assert.equal(failurePaddingMs(100, 150), 0);
    assert.equal(failurePaddingMs(undefined, 5), 0);
  });

  it('pads failed checks to the slowest hash, and never successful logins', async () => {
    const authenticator = create();
    await waitFor(() => authenticator.stats().slowestCheckMs !== undefined, 'the slowest hash measured');
    assert.equal((await timed(authenticator, 'alice', 'alice-secret', '192.0.2.1')).ok, true);
    assert.equal(authenticator.stats().padded, 0, 'a success is not padded');
    assert.equal((await timed(authenticator, 'alice', 'wrong', '192.0.2.1')).ok, false);
    assert.equal(authenticator.stats().padded, 1, 'a cheap wrong password is padded');
    assert.equal((await timed(authenticator, 'nobody', 'wrong', '192.0.2.1')).ok, false);
    assert.equal(authenticator.stats().padded, 2, 'an unknown user is padded');
  });

  it('answers an unknown user about as late as a wrong password for the costliest user (many samples)', async () => {
    const authenticator = create();
    const unknown: number[] = [];
    const costly: number[] = [];
    for (let i = 0; i < 12; i++) {
      // A fresh address each time, so the throttle never steps in.
      unknown.push((await timed(authenticator, `nobody${i}`, 'wrong', `198.51.100.${i}`)).ms);
      costly.push((await timed(authenticator, 'carol', `wrong${i}`, `203.0.113.${i}`)).ms);
    }
    // Unpadded, the unknown user's cost-4 decoy is about 64 times faster than carol's cost 10.
    assert.ok(
      median(unknown) >= 0.5 * median(costly),
      `unknown ${median(unknown).toFixed(1)} ms against ${median(costly).toFixed(1)} ms`,
    );
  });
});
