/**
 * Saves the directory index on shutdown and loads it on start, so a restart knows every folder's
 * objects without reading them again. One JSON document per line, so neither side holds the
 * whole file as one string: a header, one line per folder, and a trailer with the SHA-256 of
 * every byte before it.
 *
 * Invariant: a saved index is used only when it proves itself, all of it or none of it:
 * - its checksum matches (a damaged, truncated or edited file is refused);
 * - its header names the format, the data folder's id and the root folder's device and inode
 *   (an index copied from another data folder is refused), and the current generation, which
 *   every start advances durably before serving (data-identity.ts): an older index of this
 *   very folder, put back after a later run, carries an older generation and is refused;
 * - each folder in it is then trusted only while the folder's mtime is the saved one
 *   (dir-index.ts), and only folders whose every entry was stat'ed during the save, with sizes
 *   settled, are written.
 * A refused file is logged with the reason and removed, and its folders are read from disk:
 * a slow correct listing beats a fast wrong one. A loaded file is removed too, so that only the
 * server that holds the data folder's lock (data-lock.ts) ever reads, writes or removes it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { DataIdentity } from './data-identity.ts';
import type { DirectoryIndex, FolderSnapshot } from './dir-index.ts';
import { replaceFileDurably } from './durable.ts';
import { isMissing } from './fs-errors.ts';

export const indexFileName = 'index.v3.jsonl';
const format = 3;
// Earlier formats: removed on start, their folders are read again.
const oldFileNames = ['index.v1.jsonl', 'index.v2.jsonl'];
// Lines are gathered into writes of about this size.
const writeChunkBytes = 1 << 20;

interface Header {
  readonly format: number;
  readonly id: string;
  readonly dev: string;
  readonly ino: string;
  readonly generation: number;
}

interface SavedFolder {
  readonly dir: string;
  readonly mtimeMs: number;
  /** [name, size] */
  readonly sizes: [string, number][];
  /** [name, mtime in ms], for folders that keep modification times. */
  readonly mtimes?: [string, number][];
}

/** What became of the saved index on start. */
export type LoadOutcome =
  | { readonly kind: 'missing' }
  | { readonly kind: 'loaded'; readonly folders: number }
  | { readonly kind: 'refused'; readonly reason: string };

class Refused extends Error {}

function headerOf(identity: DataIdentity): Header {
  const { id, dev, ino, generation } = identity;
  return { format, id, dev, ino, generation };
}

const isPairList = (value: unknown): value is [string, number][] =>
  Array.isArray(value) &&
  value.every(
    (pair) =>
      Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && Number.isFinite(pair[1]),
  );

function parseFolder(line: string): SavedFolder {
  const saved = JSON.parse(line) as Partial<SavedFolder>;
  if (
    typeof saved.dir !== 'string' ||
    !Number.isFinite(saved.mtimeMs) ||
    !isPairList(saved.sizes) ||
    (saved.mtimes !== undefined && !isPairList(saved.mtimes))
  ) {
    throw new Refused('a folder line is malformed');
  }
  return saved as SavedFolder;
}

/**
 * Loads the saved index into the given one if it proves itself for this data folder and
 * generation, then removes the file; says what happened.
 */
export async function loadIndex(
  stateDir: string,
  root: string,
  identity: DataIdentity,
  index: DirectoryIndex,
): Promise<LoadOutcome> {
  for (const old of oldFileNames) await unlink(path.join(stateDir, old)).catch(() => undefined);
  const file = path.join(stateDir, indexFileName);
  const expectedHeader = JSON.stringify(headerOf(identity));
  const hash = createHash('sha256');
  const folders: [string, FolderSnapshot][] = [];
  let lineNumber = 0;
  let trailer: string | undefined;
  let outcome: LoadOutcome;
  try {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      lineNumber++;
      if (trailer !== undefined) throw new Refused('lines follow the checksum');
      if (line.startsWith('{"sha256":')) {
        trailer = line;
        continue;
      }
      hash.update(`${line}\n`);
      if (lineNumber === 1) {
        if (line !== expectedHeader) throw new Refused(headerProblem(line, identity));
        continue;
      }
      const saved = parseFolder(line);
      const dir = path.resolve(root, saved.dir);
      if (!dir.startsWith(root + path.sep)) throw new Refused('a folder lies outside the data folder');
      folders.push([
        dir,
        {
          mtimeMs: saved.mtimeMs,
          sizes: new Map(saved.sizes),
          mtimes: saved.mtimes === undefined ? undefined : new Map(saved.mtimes),
        },
      ]);
    }
    if (trailer !== JSON.stringify({ sha256: hash.digest('hex') })) {
      throw new Refused(trailer === undefined ? 'the file is truncated' : 'the checksum does not match');
    }
    for (const [dir, snapshot] of folders) index.restore(dir, snapshot);
    outcome = { kind: 'loaded', folders: folders.length };
  } catch (err) {
    if (isMissing(err)) return { kind: 'missing' };
    if (err instanceof SyntaxError) outcome = { kind: 'refused', reason: 'a line is not JSON' };
    else if (err instanceof Refused) outcome = { kind: 'refused', reason: err.message };
    else throw err;
  }
  // Used or refused, the file is not read again: a crash later must not leave one that looks current.
  await unlink(file).catch(() => undefined);
  return outcome;
}

function headerProblem(line: string, identity: DataIdentity): string {
  let header: Partial<Header>;
  try {
    header = JSON.parse(line) as Partial<Header>;
  } catch {
    return 'the header is not JSON';
  }
  if (header.format !== format) return `format ${String(header.format)} is not ${format}`;
  if (header.id !== identity.id || header.dev !== identity.dev || header.ino !== identity.ino)
    return 'it belongs to another data folder';
  if (header.generation !== identity.generation)
    return `it was saved by run ${String(header.generation)}, not by the previous run (${identity.generation})`;
  return 'the header is malformed';
}

/**
 * Writes the index's verified folders atomically (temp file, fsync, rename), stamped with the
 * identity. On failure the temporary file is removed and the error thrown.
 */
export async function saveIndex(
  stateDir: string,
  root: string,
  identity: DataIdentity,
  index: DirectoryIndex,
): Promise<void> {
  await replaceFileDurably(path.join(stateDir, indexFileName), 0o600, async (write) => {
    const hash = createHash('sha256');
    let pending = '';
    const flush = async (): Promise<void> => {
      hash.update(pending);
      await write(pending);
      pending = '';
    };
    pending += `${JSON.stringify(headerOf(identity))}\n`;
    for await (const [dir, folder] of index.verified()) {
      const saved: SavedFolder = {
        dir: path.relative(root, dir),
        mtimeMs: folder.mtimeMs,
        sizes: [...folder.sizes],
        ...(folder.mtimes === undefined ? {} : { mtimes: [...folder.mtimes] }),
      };
      pending += `${JSON.stringify(saved)}\n`;
      if (pending.length >= writeChunkBytes) await flush();
    }
    await flush();
    await write(`${JSON.stringify({ sha256: hash.digest('hex') })}\n`);
  });
}
