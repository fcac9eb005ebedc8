/** Helpers for the tests of the file backend's index: what is on disk, what storage lists. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isObjectName, objectTypes } from '../../src/domain/object-types.ts';
import type { ObjectType } from '../../src/domain/object-types.ts';
import type { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { indexFileName } from '../../src/storage/fs/index-file.ts';

/** The saved index of a data folder. */
export const indexFile = (root: string): string => path.join(root, '.ratchet', indexFileName);

/**
 * The folder an object of the type lives in (data fans out by the name's first two digits),
 * made if missing: Ratchet makes a fan-out folder with the first upload that needs it.
 */
export function objectFolder(root: string, repo: string, type: ObjectType, name: string): string {
  const typeDir = path.join(root, repo, type);
  const folder = type === 'data' ? path.join(typeDir, name.slice(0, 2)) : typeDir;
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** Writes a valid object file of `size` random bytes the way another program would; returns its name. */
export async function writeObject(
  root: string,
  repo: string,
  type: ObjectType,
  size: number,
): Promise<string> {
  const data = randomBytes(size);
  const name = createHash('sha256').update(data).digest('hex');
  await writeFile(path.join(objectFolder(root, repo, type, name), name), data);
  return name;
}

// Moves back one second on every call, so that each backdating gives folders a new mtime.
let clock = Date.now() - 86_400_000;

/**
 * Sets the mtime of every file and folder below root (but .ratchet) modified in the last hour to
 * a past moment, as if time had passed since they changed: they are then outside the racy window.
 */
export async function backdate(root: string): Promise<void> {
  clock -= 1000;
  const when = new Date(clock);
  const recent = Date.now() - 3600_000;
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    const full = path.join(entry.parentPath, entry.name);
    if (path.relative(root, full).startsWith('.ratchet')) continue;
    if ((await stat(full)).mtimeMs > recent) await utimes(full, when, when);
  }
  if ((await stat(root)).mtimeMs > recent) await utimes(root, when, when);
}

/** Every object on disk in the repositories: `type/name:size`, sorted. */
export async function diskObjects(root: string, repos: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const repo of repos) {
    for (const type of objectTypes) {
      const typeDir = path.join(root, repo, type);
      const folders =
        type === 'data'
          ? (await readdir(typeDir).catch(() => [])).map((sub) => path.join(typeDir, sub))
          : [typeDir];
      for (const folder of folders) {
        for (const name of await readdir(folder).catch(() => [])) {
          if (!isObjectName(name)) continue;
          const info = await stat(path.join(folder, name));
          if (info.isFile()) out.push(`${repo}/${type}/${name}:${info.size}`);
        }
      }
    }
  }
  return out.sort();
}

/** Every object the storage lists in the repositories, in diskObjects' form. */
export async function listedObjects(storage: FsStorage, repos: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const repo of repos) {
    for (const type of objectTypes) {
      for await (const entry of storage.list([repo], type))
        out.push(`${repo}/${type}/${entry.name}:${entry.size}`);
    }
  }
  return out.sort();
}

/** Asserts that listings and stat (HEAD) of every object equal what is on disk. */
export async function assertListingsTrue(
  storage: FsStorage,
  root: string,
  repos: readonly string[],
): Promise<void> {
  const disk = await diskObjects(root, repos);
  assert.deepEqual(await listedObjects(storage, repos), disk);
  for (const line of disk) {
    const [repo = '', type = '', rest = ''] = line.split('/');
    const [name = '', size = ''] = rest.split(':');
    assert.equal(await storage.stat({ repo: [repo], type: type as ObjectType, name }), Number(size), line);
  }
}

/** The saved index's lines. */
async function indexLines(root: string): Promise<string[]> {
  return (await readFile(indexFile(root), 'utf8')).split('\n').filter((line) => line !== '');
}

/** Rewrites the saved index with the folder lines changed by `edit`, header and checksum kept. */
export async function editFolderLines(root: string, edit: (folders: string[]) => string[]): Promise<void> {
  const lines = await indexLines(root);
  const header = lines[0] ?? '';
  const trailer = lines.at(-1) ?? '';
  await writeFile(indexFile(root), `${[header, ...edit(lines.slice(1, -1)), trailer].join('\n')}\n`);
}
