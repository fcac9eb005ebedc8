/**
 * One PutObject per object, streamed, with the guarantees of the file backend:
 * - the store verifies: the expected SHA-256 (the object's name) is the signed payload hash, so
 *   RGW, AWS, MinIO and Garage refuse a body that does not match and store nothing;
 * - the veto holds: the last chunk is held back until the upload check approves the whole body;
 *   a refusal aborts the request, and a store never keeps a body shorter than its ContentLength;
 * - exclusive: `If-None-Match: *` makes a second writer of a name fail with 412.
 * A body whose hash is not known in advance (config, --no-verify-upload) or whose length is not
 * declared is buffered up to a bound, approved, and sent with its own hash.
 */
import { Readable } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { RatchetError } from '../../errors.ts';
import type { ApprovedUpload, UploadCheck } from '../storage.ts';

/** Bodies without a known hash or length are held in memory up to this size. */
export const maxBufferedBytes = 8 * 1024 * 1024;

/** What a PutObject stored. */
export interface PutOutcome {
  readonly approved: ApprovedUpload;
  /** False when the name was taken (412): another writer stored it first. */
  readonly stored: boolean;
}

export interface PutRequest {
  readonly client: S3Client;
  readonly bucket: string;
  readonly key: string;
  readonly body: AsyncIterable<Uint8Array>;
  readonly check: UploadCheck;
  /** Send If-None-Match: * (the store honours it; see the start-up probe). */
  readonly exclusive: boolean;
  readonly signal: AbortSignal | undefined;
  /** Turns a store error into a RatchetError (s3-errors.ts). */
  readonly mapError: (err: unknown) => unknown;
  /** True for a 412 or a racing-condition 409. */
  readonly isNameTaken: (err: unknown) => boolean;
}

/** Stores the body under the key, exclusively, once the check approves it. */
export async function putObject(request: PutRequest): Promise<PutOutcome> {
  const expected = request.check.expected;
  const length = expected?.length;
  if (expected?.sha256 !== undefined && length !== undefined) {
    return putStreamed(request, expected.sha256, length);
  }
  if (length !== undefined && length > maxBufferedBytes)
    return putStreamed(request, 'UNSIGNED-PAYLOAD', length);
  const content = await bufferBody(request.body, request.signal);
  const approved = request.check.approve();
  return send(request, Readable.from([content]), approved.sha256, content.length, () => approved);
}

async function putStreamed(request: PutRequest, payloadHash: string, length: number): Promise<PutOutcome> {
  let approved: ApprovedUpload | undefined;
  const body = Readable.from(
    heldBack(request.body, request.check, (ok) => (approved = ok)),
    {
      objectMode: false,
    },
  );
  return send(request, body, payloadHash, length, () => {
    if (approved === undefined)
      throw new RatchetError('INCOMPLETE_BODY', 'the upload was not read to its end');
    return approved;
  });
}

/** Yields the body but its last chunk, asks the check, then yields the last chunk. */
async function* heldBack(
  body: AsyncIterable<Uint8Array>,
  check: UploadCheck,
  onApproved: (approved: ApprovedUpload) => void,
): AsyncGenerator<Uint8Array> {
  let held: Uint8Array | undefined;
  for await (const chunk of body) {
    if (held !== undefined) yield held;
    held = chunk;
  }
  onApproved(check.approve());
  if (held !== undefined) yield held;
}

async function send(
  request: PutRequest,
  body: Readable,
  payloadHash: string,
  length: number,
  approvedUpload: () => ApprovedUpload,
): Promise<PutOutcome> {
  const { signal } = request;
  signal?.throwIfAborted();
  // A failing body (a refused check, a client gone) aborts the request: the store then holds a
  // body shorter than ContentLength and keeps nothing.
  const controller = new AbortController();
  let bodyFailure: Error | undefined;
  body.on('error', (err) => {
    bodyFailure ??= err;
    controller.abort(err);
  });
  const onAbort = (): void => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const command = new PutObjectCommand({
    Bucket: request.bucket,
    Key: request.key,
    Body: body,
    ContentLength: length,
    ContentType: 'application/octet-stream',
    IfNoneMatch: request.exclusive ? '*' : undefined,
    Metadata: payloadHash === 'UNSIGNED-PAYLOAD' ? undefined : { sha256: payloadHash },
  });
  command.middlewareStack.add(
    (next) => (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = payloadHash;
      return next(args);
    },
    { step: 'build', name: 'ratchetSignedPayloadHash' },
  );
  try {
    await request.client.send(command, { abortSignal: controller.signal });
    return { approved: approvedUpload(), stored: true };
  } catch (err) {
    if (bodyFailure !== undefined) throw bodyFailure;
    if (signal?.aborted === true) throw signal.reason;
    if (request.isNameTaken(err)) return { approved: approvedUpload(), stored: false };
    throw request.mapError(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body.destroy();
  }
}

/** The whole body in memory, up to maxBufferedBytes; LENGTH_REQUIRED beyond. */
async function bufferBody(body: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    size += chunk.length;
    if (size > maxBufferedBytes) {
      throw new RatchetError(
        'LENGTH_REQUIRED',
        `an upload without Content-Length may have at most ${maxBufferedBytes} bytes on object storage`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
