/** Small durability helpers: fsync by path and content hashing of an existing file. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

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
