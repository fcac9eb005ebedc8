/**
 * Upload verification, once, in front of every backend: the body is hashed and counted as the
 * backend consumes it, and the backend asks for approval before the object becomes visible. A
 * body longer than its declared length is refused as soon as it overflows.
 */
import { createHash } from 'node:crypto';
import type { ObjectRef } from '../domain/object-ref.ts';
import { RatchetError } from '../errors.ts';
import type { ApprovedUpload, Storage, UploadCheck, WriteResult } from './storage.ts';

export interface UploadExpectations {
  /** Hex SHA-256 the content must have; undefined skips verification (config, --no-verify-upload). */
  readonly sha256: string | undefined;
  /** Declared body length; a body that ends short or runs long is refused. */
  readonly length: number | undefined;
}

/** Wraps a body so that it is hashed and counted as it is read, and returns the matching check. */
export function checkUpload(
  body: AsyncIterable<Uint8Array>,
  expected: UploadExpectations,
): { body: AsyncIterable<Uint8Array>; check: UploadCheck } {
  const hash = createHash('sha256');
  let size = 0;
  let ended = false;
  let sha256: string | undefined;
  // A plain iterator rather than an async generator: one promise per chunk instead of a
  // generator's queue, on the path of every upload.
  const counted: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const source = body[Symbol.asyncIterator]();
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          const step = await source.next();
          if (step.done === true) {
            ended = true;
            return step;
          }
          const chunk = step.value;
          size += chunk.length;
          if (expected.length !== undefined && size > expected.length) {
            // A throw from next() is not followed by return(): release the source here, as a
            // generator would (the request's reader must let go so the rest can be discarded).
            await source.return?.().catch(() => undefined);
            throw overLength(size, expected.length);
          }
          hash.update(chunk);
          return step;
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          await source.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
  let approved: ApprovedUpload | undefined;
  const check: UploadCheck = {
    expected,
    approve() {
      if (approved !== undefined) return approved;
      if (!ended) throw new RatchetError('INCOMPLETE_BODY', 'the upload was not read to its end');
      if (expected.length !== undefined && size !== expected.length) {
        throw new RatchetError(
          'INCOMPLETE_BODY',
          `body has ${size} bytes, Content-Length said ${expected.length}`,
        );
      }
      // The body has ended, so the hash is final: digest it once, keep the answer.
      sha256 ??= hash.digest('hex');
      if (expected.sha256 !== undefined && sha256 !== expected.sha256) {
        throw new RatchetError('HASH_MISMATCH', 'content does not match its SHA-256 name');
      }
      approved = { sha256, size, verified: expected.sha256 !== undefined };
      return approved;
    },
  };
  return { body: counted, check };
}

function overLength(size: number, declared: number): RatchetError {
  return new RatchetError(
    'BAD_REQUEST',
    `body has more than the ${declared} bytes Content-Length said (${size})`,
  );
}

/** Writes through the storage with the upload check in front: the one way uploads are stored. */
export function writeChecked(
  storage: Storage,
  ref: ObjectRef,
  body: AsyncIterable<Uint8Array>,
  expected: UploadExpectations,
  signal?: AbortSignal,
): Promise<WriteResult> {
  const checked = checkUpload(body, expected);
  return storage.write(ref, checked.body, { check: checked.check, signal });
}
