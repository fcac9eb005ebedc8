import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RatchetError } from '../../src/errors.ts';
import { UserLimits } from '../../src/limits/user-limits.ts';

describe('user limits', () => {
  it('answers 429 with Retry-After over the request rate, per user', () => {
    const limits = new UserLimits([{ users: ['*'], requestsPerSecond: 1, burst: 3 }]);
    for (let i = 0; i < 3; i++) limits.admit('alice');
    assert.throws(
      () => limits.admit('alice'),
      (err) =>
        err instanceof RatchetError && err.code === 'TOO_MANY_REQUESTS' && err.headers['Retry-After'] === '1',
    );
    limits.admit('bob');
  });

  it('uses the rule naming the user before the wildcard, and nothing without rules', () => {
    const limits = new UserLimits([
      { users: ['*'], requestsPerSecond: 1, burst: 1 },
      { users: ['fast'], requestsPerSecond: 1000 },
    ]);
    for (let i = 0; i < 100; i++) limits.admit('fast');
    assert.equal(new UserLimits([]).active, false);
  });

  it('paces a transfer to the bandwidth limit without failing it', async () => {
    const limits = new UserLimits([{ users: ['*'], uploadBytesPerSecond: 1 << 20 }]);
    async function* body(): AsyncIterable<Uint8Array> {
      for (let i = 0; i < 8; i++) {
        await Promise.resolve();
        yield Buffer.alloc(64 * 1024);
      }
    }
    const started = Date.now();
    let bytes = 0;
    for await (const chunk of limits.paceUpload('alice', body())) bytes += chunk.length;
    const elapsed = Date.now() - started;
    assert.equal(bytes, 512 * 1024);
    // Pacing is about time, so time is asserted, as a lower bound only (load can only add to
    // it): 512 KiB at 1 MiB/s, less the bucket's first 1/10 s, is about 400 ms. The bound is
    // far below that, for timers that fire a little early and a millisecond clock; without
    // pacing the loop takes a millisecond or two.
    assert.ok(elapsed >= 250, `took ${elapsed} ms`);
  });
});
