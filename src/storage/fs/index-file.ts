/**
 * Saves the directory index on shutdown and loads it on start, so a restart knows every folder's
 * objects without reading them again: a saved folder is used only while its mtime still matches.
 * One JSON document per line, so neither side holds the whole file as one string.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import type { DirectoryIndex } from './dir-index.ts';
import { isMissing } from './fs-errors.ts';
import { fsyncPath } from './durable.ts';

const fileName = 'index.v2.jsonl';
// Earlier formats: removed on start, their folders are read again.
const oldFileNames = ['index.v1.jsonl'];

interface SavedFolder {
  readonly dir: string;
  readonly mtimeMs: number;
  /** [name, size] */
  readonly sizes: [string, number][];
  /** [name, mtime in ms], for folders that keep modification times. */
  readonly mtimes?: [string, number][];
}

/** Loads the saved index into the given one; returns how many folders it restored. */
export async function loadIndex(stateDir: string, root: string, index: DirectoryIndex): Promise<number> {
  for (const old of oldFileNames) await unlink(path.join(stateDir, old)).catch(() => undefined);
  const file = path.join(stateDir, fileName);
  let count = 0;
  try {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === '') continue;
      const saved = JSON.parse(line) as SavedFolder;
      const dir = path.resolve(root, saved.dir);
      if (!dir.startsWith(root + path.sep)) continue;
      index.restore(dir, {
        mtimeMs: saved.mtimeMs,
        sizes: new Map(saved.sizes),
        mtimes: saved.mtimes === undefined ? undefined : new Map(saved.mtimes),
      });
      count++;
    }
  } catch (err) {
    if (isMissing(err)) return 0;
    throw err;
  }
  // A crash after this point must not leave a stale file that looks current.
  await unlink(file).catch(() => undefined);
  return count;
}

/** Writes the index atomically (temp file, rename). */
export async function saveIndex(
  stateDir: string,
  root: string,
  index: DirectoryIndex,
  dirMode: number,
): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: dirMode });
  const file = path.join(stateDir, fileName);
  const temp = `${file}.tmp`;
  const out = createWriteStream(temp, { mode: 0o600 });
  for (const [dir, folder] of index.snapshot()) {
    if (folder.mtimeMs < 0) continue;
    const saved: SavedFolder = {
      dir: path.relative(root, dir),
      mtimeMs: folder.mtimeMs,
      sizes: [...folder.sizes],
      ...(folder.mtimes === undefined ? {} : { mtimes: [...folder.mtimes] }),
    };
    if (!out.write(`${JSON.stringify(saved)}\n`))
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await finished(out);
  // Flushed before the rename, so a crash cannot leave a current-looking file with lost lines.
  await fsyncPath(temp);
  await rename(temp, file);
  await fsyncPath(stateDir);
}
