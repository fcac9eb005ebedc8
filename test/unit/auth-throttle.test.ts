import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoginThrottle } from '../../src/auth/throttle.ts';
import type { ThrottleOptions } from '../../src/auth/throttle.ts';

function setup(options: Partial<ThrottleOptions> = {}): { throttle: LoginThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const throttle = new LoginThrottle({
    maxFailuresPerAddress: 20,
    maxFailuresPerPair: 5,
    userAlertFailures: 20,
    blockMs: 60_000,
    maxBlockMs: 15 * 60_000,
    windowMs: 10 * 60_000,
    ...options,
    now: () => clock.now,
  });
  return { throttle, clock };
}

describe('LoginThrottle', () => {
  it('blocks a user from one address after the pair limit, for blockMs, with the seconds to wait', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 4; i++) assert.equal(throttle.recordFailure('a', 'alice'), undefined);
    assert.equal(throttle.retryAfter('a', 'alice'), 0);
    assert.deepEqual(throttle.recordFailure('a', 'alice'), { scope: 'address+user', seconds: 60 });
    assert.equal(throttle.retryAfter('a', 'alice'), 60);
    clock.now += 59_500;
    assert.equal(throttle.retryAfter('a', 'alice'), 1);
    clock.now += 500;
    assert.equal(throttle.retryAfter('a', 'alice'), 0);
  });

  it('does not block the same user from another address, nor another user from the address', () => {
    const { throttle } = setup();
    for (let i = 0; i < 5; i++) throttle.recordFailure('a', 'alice');
    assert.ok(throttle.retryAfter('a', 'alice') > 0);
    assert.equal(throttle.retryAfter('b', 'alice'), 0);
    assert.equal(throttle.retryAfter('a', 'bob'), 0);
  });

  it('blocks an address that fails for many users, for every user', () => {
    const { throttle } = setup();
    let block;
    for (let i = 0; i < 20; i++) block = throttle.recordFailure('a', `user${i}`);
    assert.deepEqual(block, { scope: 'address', seconds: 60 });
    assert.ok(throttle.retryAfter('a', 'someone-else') > 0);
    assert.ok(throttle.retryAfter('a', undefined) > 0);
    assert.equal(throttle.retryAfter('b', 'someone-else'), 0);
  });

  it('counts malformed credentials against the address only', () => {
    const { throttle } = setup({ maxFailuresPerAddress: 3 });
    throttle.recordFailure('a', undefined);
    throttle.recordFailure('a', undefined);
    assert.equal(throttle.retryAfter('a', undefined), 0);
    throttle.recordFailure('a', undefined);
    assert.ok(throttle.retryAfter('a', 'alice') > 0);
  });

  it('doubles consecutive blocks up to maxBlockMs', () => {
    const { throttle, clock } = setup({ maxFailuresPerPair: 1, maxBlockMs: 200_000 });
    const lengths: number[] = [];
    for (let i = 0; i < 4; i++) {
      lengths.push(throttle.recordFailure('a', 'alice')?.seconds ?? 0);
      clock.now += lengths[i]! * 1000;
    }
    assert.deepEqual(lengths, [60, 120, 200, 200]);
  });

  it('forgets failures outside the window and forgives a pair on success', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 4; i++) throttle.recordFailure('a', 'alice');
    clock.now += 10 * 60_000 + 1;
    assert.equal(throttle.recordFailure('a', 'alice'), undefined);
    for (let i = 0; i < 3; i++) throttle.recordFailure('a', 'alice');
    throttle.recordSuccess('a', 'alice');
    for (let i = 0; i < 4; i++) assert.equal(throttle.recordFailure('a', 'alice'), undefined);
  });

  it('a user under a distributed attack: one guess per address, while a clean address still gets in', () => {
    const { throttle } = setup({ userAlertFailures: 10 });
    // Nine addresses guess once each: below every limit.
    for (let i = 0; i < 9; i++) throttle.recordFailure(`attacker${i}`, 'alice');
    for (let i = 0; i < 9; i++) assert.equal(throttle.retryAfter(`attacker${i}`, 'alice'), 0);
    // The tenth failure for alice raises the alert: from now on one failure blocks the pair,
    // so each attacking address gets one guess per block.
    assert.ok(throttle.recordFailure('attacker9', 'alice'));
    assert.ok(throttle.recordFailure('attacker0', 'alice'));
    assert.ok(throttle.retryAfter('attacker0', 'alice') > 0);
    assert.ok(throttle.recordFailure('attacker99', 'alice'));
    assert.ok(throttle.retryAfter('attacker99', 'alice') > 0);
    // The real host never failed: it is not blocked and can present the right password.
    assert.equal(throttle.retryAfter('restic-host', 'alice'), 0);
    // Other users keep the normal limit.
    assert.equal(throttle.recordFailure('attacker0', 'bob'), undefined);
  });

  it('keeps memory bounded under a flood of addresses and names', () => {
    const { throttle } = setup({ maxEntries: 100 });
    for (let i = 0; i < 10_000; i++) throttle.recordFailure(`10.0.${i >> 8}.${i & 255}`, `user${i}`);
    const sizes = throttle.sizes();
    assert.ok(sizes.addresses <= 100 && sizes.pairs <= 100 && sizes.users <= 100, JSON.stringify(sizes));
  });

  it('drops idle entries once they expire', () => {
    const { throttle, clock } = setup();
    for (let i = 0; i < 50; i++) throttle.recordFailure(`a${i}`, 'alice');
    clock.now += 60 * 60_000;
    throttle.recordFailure('fresh', 'bob');
    assert.deepEqual(throttle.sizes(), { addresses: 1, pairs: 1, users: 1 });
  });
});
