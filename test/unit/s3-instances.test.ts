/** Which instances may serve one S3 prefix together: the pure decision of s3-instances.ts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { whyNotBeside } from '../../src/storage/s3/s3-instances.ts';
import type { InstanceFacts, LiveInstance } from '../../src/storage/s3/s3-instances.ts';

const own: InstanceFacts = { shared: true, stateId: 'redis-1', namespace: 'ns-1' };
const other = (facts: Partial<InstanceFacts> | undefined): LiveInstance => ({
  id: 'host-b',
  ageMs: 3000,
  facts,
});

describe('whyNotBeside', () => {
  it('lets a server start alone, or beside servers with the same Redis and storage names', () => {
    assert.equal(whyNotBeside([], { ...own, shared: false }), undefined);
    assert.equal(whyNotBeside([other(own)], own), undefined);
    // An id or a namespace that one side does not know (Redis away at its start) is not held against it.
    assert.equal(whyNotBeside([other({ shared: true })], { ...own, stateId: undefined }), undefined);
  });

  it('refuses without --state on either side, or with an unreadable heartbeat', () => {
    assert.match(whyNotBeside([other(own)], { ...own, shared: false }) ?? '', /must share their state/);
    assert.match(whyNotBeside([other({ ...own, shared: false })], own) ?? '', /host-b \(3 s ago\).*--state/);
    assert.match(whyNotBeside([other(undefined)], own) ?? '', /must share their state/);
  });

  it('refuses another Redis, and the same Redis with the storage named differently', () => {
    assert.match(
      whyNotBeside([other({ ...own, stateId: 'redis-2' })], own) ?? '',
      /host-b use\(s\) another Redis/,
    );
    assert.match(
      whyNotBeside([other({ ...own, namespace: 'ns-2' })], own) ?? '',
      /names the storage differently|name\(s\) the storage differently/,
    );
  });
});
