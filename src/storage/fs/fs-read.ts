/**
 * The read path of the file backend: open, fstat, then either one pread into memory (small
 * reads, synchronous while the SyncGuard allows) or a file stream (large ones).
 */
import { closeSync, constants, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { errnoCode, RatchetError } from '../../errors.ts';
import type { RangeSpec } from '../../domain/byte-range.ts';
import { applyRange } from '../../domain/byte-range.ts';
import type { ReadResult } from '../storage.ts';
import { closeFd, fstatFd, openFd, readFd } from './fast-fs.ts';
import type { SyncGuard } from './fast-fs.ts';
import { isMissing } from './fs-errors.ts';

// Reads of at most this many bytes (a range, a small object) are one pread into one buffer
// instead of a file stream: one thread-pool round trip instead of several.
const bufferedReadBytes = 1 << 20;
// Reads of at most this many bytes are done synchronously while the SyncGuard allows it
// (a page-cache hit costs a few µs; a slow disk turns it off).
const syncReadBytes = 256 * 1024;
const streamChunkBytes = 256 * 1024;
// Objects are opened without following a symbolic link (O_NOFOLLOW: the open fails with ELOOP).
const readNoFollow = constants.O_RDONLY | constants.O_NOFOLLOW;

/** Reads the file, or the part of it named by the range; NOT_FOUND when it is not a file. */
export async function readFile(
  file: string,
  range: RangeSpec | undefined,
  guard: SyncGuard,
): Promise<ReadResult> {
  const { fd, size } = await openForRead(file, guard);
  let streaming = false;
  try {
    const resolved = applyRange(range, size);
    const start = resolved?.start ?? 0;
    const length = resolved === undefined ? size : resolved.end - resolved.start + 1;
    if (length > bufferedReadBytes) {
      // The stream closes the descriptor when it ends or is destroyed.
      const body = createReadStream('', {
        fd,
        start,
        end: start + length - 1,
        highWaterMark: streamChunkBytes,
        autoClose: true,
      });
      streaming = true;
      return { size, range: resolved, body };
    }
    let data: Buffer;
    const started = length <= syncReadBytes ? guard.begin() : undefined;
    if (started !== undefined) {
      // Most likely in the page cache: one pread on the loop costs less than a pool round trip.
      data = readExactlySync(fd, start, length);
      guard.end(started);
    } else {
      data = await readExactly(fd, start, length);
    }
    return { size, range: resolved, data };
  } finally {
    if (!streaming) closeAfterRead(fd, guard);
  }
}

/** Opens an object for reading and returns its descriptor and size. */
async function openForRead(file: string, guard: SyncGuard): Promise<{ fd: number; size: number }> {
  const started = guard.begin();
  let fd: number;
  try {
    fd = started === undefined ? await openFd(file, readNoFollow) : openSync(file, readNoFollow);
  } catch (err) {
    // ELOOP: the object is a symbolic link, which is never followed.
    const code = errnoCode(err);
    if (isMissing(err) || code === 'EISDIR' || code === 'ELOOP')
      throw new RatchetError('NOT_FOUND', 'no such object');
    throw err;
  }
  try {
    const info = started === undefined ? await fstatFd(fd) : fstatSync(fd);
    if (started !== undefined) guard.end(started);
    if (!info.isFile()) throw new RatchetError('NOT_FOUND', 'no such object');
    return { fd, size: info.size };
  } catch (err) {
    closeAfterRead(fd, guard);
    throw err;
  }
}

/** close(2) of a descriptor only read from: nothing to flush, so cheap enough for the loop. */
function closeAfterRead(fd: number, guard: SyncGuard): void {
  if (guard.begin() === undefined) {
    closeFd(fd).catch(() => undefined);
    return;
  }
  try {
    closeSync(fd);
  } catch {
    // A read-only descriptor has nothing to lose on close.
  }
}

/**
 * The Content-Length is already set from fstat: sending fewer bytes would make a keep-alive
 * client read the next response as part of this body. Objects are immutable, so a shorter file
 * means something truncated it on disk.
 */
function shortRead(read: number, expected: number): Error {
  return new Error(`object file ended after ${read} of ${expected} bytes: changed on disk while being read`);
}

/** Reads `length` bytes at `position` with pread; throws if the file ends before. */
async function readExactly(fd: number, position: number, length: number): Promise<Buffer> {
  const data = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const n = await readFd(fd, data, filled, length - filled, position + filled);
    if (n === 0) throw shortRead(filled, length);
    filled += n;
  }
  return data;
}

/** readExactly on the event loop. */
function readExactlySync(fd: number, position: number, length: number): Buffer {
  const data = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const n = readSync(fd, data, filled, length - filled, position + filled);
    if (n === 0) throw shortRead(filled, length);
    filled += n;
  }
  return data;
}
