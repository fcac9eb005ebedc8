/** Walking a data folder: its regular files, and leftover in-progress uploads. */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { tempPrefix } from '../../src/storage/fs/layout.ts';

/** Every regular file below dir, with its size and mtime. */
export async function filesUnder(dir: string): Promise<{ file: string; size: number; mtimeMs: number }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
  return Promise.all(
    files.map(async (file) => {
      const info = await stat(file);
      return { file, size: info.size, mtimeMs: info.mtimeMs };
    }),
  );
}

/** Leftover in-progress uploads (Ratchet's temporary-file prefix) anywhere below dir. */
export async function tempFilesUnder(dir: string): Promise<string[]> {
  return (await filesUnder(dir))
    .map((f) => f.file)
    .filter((file) => path.basename(file).startsWith(tempPrefix));
}
