/** Small durability helpers: fsync by path, atomic replacement of a file, content hashing. */
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
 * Replaces a file atomically and durably: `fill` writes a temporary file beside it through the
 * given function, which is then flushed and renamed over the file, and the folder is flushed.
 * The temporary file is removed on failure (a full disk, say) and the error thrown.
 */
export async function replaceFileDurably(
  file: string,
  mode: number,
  fill: (write: (text: string) => Promise<void>) => Promise<void>,
): Promise<void> {
  const temp = `${file}.tmp`;
  try {
    const handle = await open(temp, 'w', mode);
    try {
      // Each call appends at the current position.
      await fill(async (text) => {
        await handle.writeFile(text);
      });
      // Flushed before the rename, so a crash cannot leave a current-looking file with lost lines.
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
