/** When synchronous filesystem calls give way to the thread pool (src/storage/fs/fast-fs.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SyncGuard } from '../../src/storage/fs/fast-fs.ts';

/** Records `calls` synchronous calls as if they had taken `ms` together. */
function record(guard: SyncGuard, ms: number, calls = 1): void {
  const started = guard.begin();
  assert.ok(started !== undefined, 'synchronous calls are allowed');
  guard.end(started - ms, calls);
}

describe('SyncGuard', () => {
  it('never allows synchronous calls when disabled', () => {
    assert.equal(new SyncGuard({ enabled: false }).begin(), undefined);
  });

  it('keeps synchronous calls through fast calls and rare slow ones', () => {
    const guard = new SyncGuard({ enabled: true });
    for (let i = 0; i < 1000; i++) record(guard, 0.01);
    record(guard, 5);
    record(guard, 5);
    for (let i = 0; i < 1000; i++) record(guard, 0.01);
    assert.notEqual(guard.begin(), undefined);
  });

  it('switches to the thread pool after one call that stalled the loop', () => {
    let reported = 0;
    const guard = new SyncGuard({ enabled: true, onSlow: (ms) => (reported = ms) });
    record(guard, 80);
    assert.equal(guard.begin(), undefined);
    assert.ok(reported >= 80);
  });

  it('switches when a share of the calls is slow', () => {
    const guard = new SyncGuard({ enabled: true });
    for (let i = 0; i < 20; i++) record(guard, 0.01);
    record(guard, 10);
    record(guard, 10);
    assert.notEqual(guard.begin(), undefined, 'two slow calls are not enough');
    record(guard, 10);
    assert.equal(guard.begin(), undefined);
  });

  it('weighs a slow batch by its size', () => {
    const guard = new SyncGuard({ enabled: true });
    for (let i = 0; i < 100; i++) record(guard, 0.01);
    // 256 stats in 30 ms: 117 µs each, far above a cached stat, yet under the stall limit.
    record(guard, 30, 256);
    assert.equal(guard.begin(), undefined);
  });

  it('allows synchronous calls again after the back-off', async () => {
    const guard = new SyncGuard({ enabled: true, backoffMs: 50 });
    record(guard, 80);
    assert.equal(guard.begin(), undefined);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.notEqual(guard.begin(), undefined);
  });
});
