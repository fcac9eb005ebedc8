/** The upload check that stands in front of every backend: hash, length, and when it may approve. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RatchetError } from '../../src/errors.ts';
import { checkUpload } from '../../src/storage/upload-check.ts';

const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function* parts(data: Buffer, size = 1000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of body) n += chunk.length;
  return n;
}

const code = (expected: string) => (err: unknown) => err instanceof RatchetError && err.code === expected;

describe('upload check', () => {
  it('approves a body that matches its name and length, with what it was', async () => {
    const data = randomBytes(4500);
    const { body, check } = checkUpload(parts(data), { sha256: sha(data), length: data.length });
    assert.equal(await drain(body), data.length);
    assert.deepEqual(check.approve(), { sha256: sha(data), size: data.length, verified: true });
  });

  it('never approves before the body was read to its end', async () => {
    const data = randomBytes(4500);
    const { body, check } = checkUpload(parts(data), { sha256: sha(data), length: data.length });
    assert.throws(() => check.approve(), code('INCOMPLETE_BODY'));
    const iterator = body[Symbol.asyncIterator]();
    await iterator.next();
    assert.throws(() => check.approve(), code('INCOMPLETE_BODY'));
  });

  it('refuses content that does not match its name', async () => {
    const data = randomBytes(100);
    const { body, check } = checkUpload(parts(data), { sha256: sha(randomBytes(100)), length: 100 });
    await drain(body);
    assert.throws(() => check.approve(), code('HASH_MISMATCH'));
  });

  it('refuses a body shorter than declared, and stops one longer as soon as it overflows', async () => {
    const data = randomBytes(3000);
    const short = checkUpload(parts(data), { sha256: undefined, length: 3001 });
    await drain(short.body);
    assert.throws(() => short.check.approve(), code('INCOMPLETE_BODY'));
    let pulled = 0;
    async function* counted(): AsyncIterable<Uint8Array> {
      for await (const chunk of parts(data)) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const long = checkUpload(counted(), { sha256: undefined, length: 1500 });
    await assert.rejects(drain(long.body), code('BAD_REQUEST'));
    assert.equal(pulled, 2000, 'stopped at the first part past the declared length');
  });

  it('approves unverified content (config, --no-verify-upload) and says so', async () => {
    const data = randomBytes(10);
    const { body, check } = checkUpload(parts(data), { sha256: undefined, length: undefined });
    await drain(body);
    assert.deepEqual(check.approve(), { sha256: sha(data), size: 10, verified: false });
  });
});
