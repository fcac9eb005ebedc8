/**
 * Streams an upload's body into a file: gathered into batches, one batch written while the next
 * is gathered, with background fdatasyncs so that the final fsync has little left to do.
 */
import { fdatasyncFd, writevFd } from './fast-fs.ts';

// Writes are gathered into batches of this size: fewer syscalls than one write per socket chunk.
const writeBatchBytes = 512 * 1024;
// Large uploads start flushing to disk in the background every this many bytes.
const earlyFlushBytes = 4 << 20;

/**
 * Writes the whole body to the descriptor from offset 0 and returns its length. Every
 * `earlyFlushBytes` written, an fdatasync starts in the background (one at a time).
 */
export async function writeBody(
  fd: number,
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<number> {
  let size = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let inFlight: Promise<void> | undefined;
  let flushing: Promise<void> | undefined;
  let flushError: Error | undefined;
  let flushedAt = 0;
  const startFlush = (): void => {
    flushedAt = size;
    // An error here must reach the caller: the final fsync may not report it a second time.
    flushing = fdatasyncFd(fd).then(
      () => {
        flushing = undefined;
      },
      (err: unknown) => {
        flushing = undefined;
        flushError ??= err instanceof Error ? err : new Error(String(err));
      },
    );
  };
  try {
    for await (const chunk of body) {
      signal?.throwIfAborted();
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= writeBatchBytes) {
        if (inFlight !== undefined) await inFlight;
        if (flushError !== undefined) throw flushError;
        if (flushing === undefined && size - flushedAt >= earlyFlushBytes) startFlush();
        inFlight = writeAll(fd, pending, pendingBytes, size);
        // Awaited later (or in finally): a rejection must not go unhandled meanwhile.
        inFlight.catch(() => undefined);
        size += pendingBytes;
        pending = [];
        pendingBytes = 0;
      }
    }
    signal?.throwIfAborted();
    if (inFlight !== undefined) await inFlight;
    inFlight = undefined;
    if (pending.length > 0) await writeAll(fd, pending, pendingBytes, size);
    size += pendingBytes;
    if (flushing !== undefined) await flushing;
    if (flushError !== undefined) throw flushError;
    return size;
  } finally {
    // The descriptor is closed after this returns: no write or flush may still be using it then.
    if (inFlight !== undefined) await inFlight.catch(() => undefined);
    if (flushing !== undefined) await flushing;
  }
}

/** pwritev until every byte is written: the kernel may accept a batch only in part. */
async function writeAll(fd: number, buffers: Uint8Array[], total: number, position: number): Promise<void> {
  let remaining = buffers;
  let left = total;
  let at = position;
  for (;;) {
    const written = await writevFd(fd, remaining, at);
    left -= written;
    at += written;
    if (left <= 0) return;
    let skip = written;
    const rest: Uint8Array[] = [];
    for (const buffer of remaining) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
      } else {
        rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
    }
    remaining = rest;
  }
}
