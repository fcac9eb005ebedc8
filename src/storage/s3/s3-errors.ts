/**
 * The one place where what the S3 store or the network said becomes a RatchetError. A store that
 * cannot be reached or fails is UNAVAILABLE with Retry-After (restic retries; the readiness probe
 * turns 503 until it answers again); the original error stays the cause, for the operator's log.
 */
import { RatchetError } from '../../errors.ts';

/** Seconds a client is asked to wait when the store is unreachable. */
const retryAfterSeconds = 5;

/** The HTTP status the store answered with, if it answered at all. */
export function s3Status(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const metadata = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return metadata?.httpStatusCode;
}

/** The store's error code (NoSuchKey, PreconditionFailed, ...), or the error's name. */
export function s3Code(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { Code, name } = err as { Code?: unknown; name?: unknown };
  if (typeof Code === 'string') return Code;
  return typeof name === 'string' ? name : undefined;
}

/** True when the store said the key (or bucket entry) does not exist. */
export function isNotFound(err: unknown): boolean {
  const code = s3Code(err);
  return s3Status(err) === 404 && code !== 'NoSuchBucket';
}

/** True when a conditional create found the name taken (412, or 409 for a racing condition). */
export function isNameTaken(err: unknown): boolean {
  const status = s3Status(err);
  return status === 412 || (status === 409 && s3Code(err) === 'ConditionalRequestConflict');
}

/** True when the store refused a body that does not match the payload hash it was signed with. */
export function isPayloadMismatch(err: unknown): boolean {
  const code = s3Code(err);
  return code === 'XAmzContentSHA256Mismatch' || code === 'BadDigest';
}

/** The RatchetError for a failed store call; `signal`'s reason when the caller went away. */
export function fromS3Error(err: unknown, what: string, signal?: AbortSignal): unknown {
  if (signal?.aborted === true) return signal.reason;
  if (err instanceof RatchetError) return err;
  if (isNotFound(err)) return new RatchetError('NOT_FOUND', 'no such object', { cause: err });
  if (isPayloadMismatch(err)) {
    return new RatchetError('HASH_MISMATCH', 'content does not match its SHA-256 name', { cause: err });
  }
  if (s3Code(err) === 'EntityTooLarge') {
    return new RatchetError('TOO_LARGE', 'the object is larger than the store accepts', { cause: err });
  }
  const status = s3Status(err);
  const detail =
    status === undefined ? (s3Code(err) ?? 'no answer') : `${status} ${s3Code(err) ?? ''}`.trim();
  return new RatchetError('UNAVAILABLE', `object storage unavailable (${what}: ${detail})`, {
    cause: err,
    headers: { 'Retry-After': String(retryAfterSeconds) },
  });
}
