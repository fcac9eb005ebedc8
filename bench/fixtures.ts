/** Test data: objects named by their SHA-256, the pre-filled listing repo, restic's data set. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { seededRandom } from './stats.ts';
import { run } from './system.ts';

export const MiB = 1024 * 1024;
/** Repository pre-filled on disk with the listing objects before the servers start. */
export const listingRepo = 'list';
const objectTypes = ['data', 'keys', 'locks', 'snapshots', 'index'] as const;

/** An object to upload: its name and the body chunks (shared buffers, never copied). */
export interface UploadObject {
  readonly name: string;
  readonly chunks: readonly Buffer[];
  readonly size: number;
}

/**
 * Makes distinct 16 MiB objects cheaply: one random 16 MiB buffer shared by all, and a
 * 32-byte random head per object, so every object has its own content and SHA-256.
 */
export class BigObjectFactory {
  private readonly tail: Buffer;
  readonly size: number;

  constructor(size = 16 * MiB) {
    this.size = size;
    this.tail = randomBytes(size - 32);
  }

  /** `count` fresh objects with their names computed (hashing happens here, not while timed). */
  make(count: number): UploadObject[] {
    const objects: UploadObject[] = [];
    for (let i = 0; i < count; i++) {
      const head = randomBytes(32);
      const name = createHash('sha256').update(head).update(this.tail).digest('hex');
      objects.push({ name, chunks: [head, this.tail], size: this.size });
    }
    return objects;
  }
}

/** `count` fresh random objects of `size` bytes each. */
export function makeSmallObjects(count: number, size: number): UploadObject[] {
  const pool = randomBytes(count * size);
  const objects: UploadObject[] = [];
  for (let i = 0; i < count; i++) {
    const body = pool.subarray(i * size, (i + 1) * size);
    objects.push({ name: createHash('sha256').update(body).digest('hex'), chunks: [body], size });
  }
  return objects;
}

/** Creates an empty repository folder in restic's layout (type folders, data/00..ff). */
function makeRepoFolders(repoDir: string): void {
  for (const t of objectTypes) mkdirSync(path.join(repoDir, t), { recursive: true, mode: 0o700 });
  for (let i = 0; i < 256; i++) {
    mkdirSync(path.join(repoDir, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
  }
}

/**
 * Writes a repository of `count` tiny data objects straight into a server's data folder,
 * before the server starts: data/XX/<sha256>, a few bytes each. Returns the total bytes.
 */
export function writeListingRepo(dataDir: string, repo: string, count: number): number {
  const repoDir = path.join(dataDir, repo);
  makeRepoFolders(repoDir);
  writeFileSync(path.join(repoDir, 'config'), randomBytes(155), { mode: 0o600 });
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(`ratchet bench listing object ${i}\n`);
    const name = createHash('sha256').update(body).digest('hex');
    writeFileSync(path.join(repoDir, 'data', name.slice(0, 2), name), body, { mode: 0o600 });
    bytes += body.length;
  }
  return bytes;
}

/**
 * Hard-links the listing repository written once under `template` (by writeListingRepo) into a
 * server's data folder, which must exist: much faster than writing it again. Throws when cp fails.
 */
export function linkListingRepo(template: string, dataDir: string): void {
  const cp = run('cp', ['-al', path.join(template, listingRepo), path.join(dataDir, listingRepo)], {
    timeoutSeconds: 120,
  });
  if (cp.code !== 0) throw new Error(`cp -al failed: ${cp.stderr}`);
}

/** Shape of the data set that restic backs up. */
export interface DatasetShape {
  readonly largeFiles: number;
  readonly largeMiB: number;
  readonly smallFiles: number;
}

/**
 * Generates restic's data set under `dir`: large incompressible files of about `largeMiB`
 * each and many small files (100 B to 16 KiB) in nested folders. Returns its total size.
 */
export function writeDataset(dir: string, shape: DatasetShape): number {
  const random = seededRandom(20251126);
  let total = 0;
  for (let i = 0; i < shape.largeFiles; i++) {
    const folder = path.join(dir, 'large', String(i % 4));
    mkdirSync(folder, { recursive: true });
    const size = Math.round(shape.largeMiB * MiB * (0.5 + random()));
    writeFileSync(path.join(folder, `blob-${i}.bin`), randomBytes(size));
    total += size;
  }
  for (let i = 0; i < shape.smallFiles; i++) {
    const folder = path.join(dir, 'small', String(i % 20), String(i % 7));
    mkdirSync(folder, { recursive: true });
    const size = 100 + Math.floor(random() * 16 * 1024);
    writeFileSync(path.join(folder, `file-${i}.dat`), randomBytes(size));
    total += size;
  }
  return total;
}

/** Changes a copy of the data set between two backups: rewrites some files, adds one. */
export function mutateDataset(dir: string, shape: DatasetShape): void {
  for (let i = 0; i < shape.smallFiles; i += 10) {
    const file = path.join(dir, 'small', String(i % 20), String(i % 7), `file-${i}.dat`);
    writeFileSync(file, randomBytes(100 + (i % 4096)));
  }
  for (let i = 0; i < shape.largeFiles; i += 5) {
    const file = path.join(dir, 'large', String(i % 4), `blob-${i}.bin`);
    writeFileSync(file, randomBytes(Math.round(shape.largeMiB * MiB)));
  }
  writeFileSync(path.join(dir, 'added.bin'), randomBytes(Math.round(shape.largeMiB * MiB)));
}
