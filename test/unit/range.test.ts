import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyRange, RangeNotSatisfiable, resolveRange } from '../../src/domain/byte-range.ts';
import { parseRange } from '../../src/protocol/range.ts';

describe('parseRange', () => {
  it('parses single byte ranges', () => {
    assert.deepEqual(parseRange('bytes=0-'), { kind: 'from', start: 0 });
    assert.deepEqual(parseRange('bytes=5-9'), { kind: 'from', start: 5, end: 9 });
    assert.deepEqual(parseRange(' bytes=5-5 '), { kind: 'from', start: 5, end: 5 });
    assert.deepEqual(parseRange('bytes=-20'), { kind: 'suffix', length: 20 });
  });

  it('ignores absent, malformed and multi-range headers', () => {
    for (const header of [
      undefined,
      '',
      'bytes=',
      'bytes=-',
      'bytes=9-5',
      'bytes=a-b',
      'items=0-1',
      'bytes=0-1,3-4',
      'bytes=1e3-',
      `bytes=${'9'.repeat(30)}-`,
    ]) {
      assert.equal(parseRange(header), undefined, String(header));
    }
  });
});

describe('resolveRange and applyRange', () => {
  it('cuts an end past the object at the end', () => {
    assert.deepEqual(resolveRange({ kind: 'from', start: 10, end: 1000 }, 100), { start: 10, end: 99 });
    assert.deepEqual(resolveRange({ kind: 'from', start: 99 }, 100), { start: 99, end: 99 });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 500 }, 100), { start: 0, end: 99 });
  });

  it('finds ranges starting at or past the end unsatisfiable', () => {
    assert.equal(resolveRange({ kind: 'from', start: 100 }, 100), undefined);
    assert.equal(resolveRange({ kind: 'suffix', length: 0 }, 100), undefined);
    assert.throws(
      () => applyRange({ kind: 'from', start: 100 }, 100),
      (err) => err instanceof RangeNotSatisfiable && err.code === 'RANGE_NOT_SATISFIABLE' && err.size === 100,
    );
  });

  it('serves an empty object whole and a missing range as the whole object', () => {
    assert.equal(applyRange({ kind: 'from', start: 0 }, 0), undefined);
    assert.equal(applyRange(undefined, 10), undefined);
  });
});
