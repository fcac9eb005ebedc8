/** Small durability helpers: fsync by path, atomic replacement of a small file, content hashing. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Flushes a file's content, or a folder's entries (new or renamed names), to disk. Opened
 * read-only: Linux fsyncs any descriptor, and folders cannot be opened for writing.
 */
export async function fsyncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The hex SHA-256 of a file's content. */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * Replaces a small file atomically and durably: a temporary file beside it is written, flushed
 * and renamed over it, then the folder is flushed. The temporary file is removed on failure.
 */
export async function replaceFileDurably(file: string, text: string, mode: number): Promise<void> {
  const temp = `${file}.tmp`;
  try {
    const handle = await open(temp, 'w', mode);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncPath(path.dirname(file));
}
