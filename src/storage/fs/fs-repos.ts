/**
 * Repositories on disk: creating one (all or nothing), telling whether one exists, finding them
 * all, and the folders that hold a type's objects.
 */
import type { Dirent, Stats } from 'node:fs';
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, RatchetError } from '../../errors.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import { isObjectName } from '../../domain/object-types.ts';
import type { RepoPath } from '../../domain/repo-path.ts';
import { isRepoComponent } from '../../domain/repo-path.ts';
import type { DirSyncer } from './dir-sync.ts';
import { lstatOrUndefined } from './fast-fs.ts';
import { isMissing, translateFsError } from './fs-errors.ts';
import type { FsLayout } from './layout.ts';

/**
 * Creates the repository's folder (and missing ancestors) and its type folders, and flushes
 * every folder that got a new entry. keys/ comes last, since it is what marks a repository as
 * existing; on failure (a full disk, no free inodes) every folder made here is removed again,
 * so nothing half-made is left. Data fan-out folders are made on first upload.
 */
export async function createRepoFolders(
  layout: FsLayout,
  repo: RepoPath,
  dirMode: number,
  syncer: DirSyncer,
): Promise<void> {
  const made: string[] = [];
  try {
    // Step by step rather than mkdir({recursive}): its errors name the wrong cause (ENOENT for
    // ENOSPC), and each new folder must be known to be undone on failure.
    const chain: string[] = [];
    for (let dir = layout.repoDir(repo); dir !== layout.root; dir = path.dirname(dir)) chain.unshift(dir);
    for (const dir of [...chain, ...layout.typeDirs(repo)]) {
      if (await makeFolder(dir, dirMode)) made.push(dir);
    }
    // Every folder that got a new entry: the parents of the folders made here.
    const parents = new Set(made.map((dir) => path.dirname(dir)));
    await Promise.all([...parents].map((dir) => syncer.sync(dir)));
  } catch (err) {
    for (const dir of made.reverse()) await rmdir(dir).catch(() => undefined);
    throw translateFsError(err);
  }
}

/**
 * Makes a folder and its missing ancestors one mkdir(2) at a time: Node's recursive mkdir reports
 * ENOENT for a read-only or full file system, which would name the wrong cause.
 */
export async function makeFolderPath(dir: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; (await lstatOrUndefined(at)) === undefined; at = path.dirname(at)) {
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const folder of missing) await makeFolder(folder, mode);
}

/** mkdir(2) of one folder; false when it already existed. */
export async function makeFolder(dir: string, mode: number): Promise<boolean> {
  try {
    await mkdir(dir, { mode });
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
}

/** The repository's config file, when the repository exists (a config file or keys/). */
export async function repoRoot(
  layout: FsLayout,
  repo: RepoPath,
): Promise<{ config: Stats | undefined } | undefined> {
  const dir = layout.repoDir(repo);
  // lstat: a config or keys/ that is a symbolic link does not make a repository.
  const [config, keys] = await Promise.all([
    lstatOrUndefined(path.join(dir, 'config')),
    lstatOrUndefined(path.join(dir, 'keys')),
  ]);
  const configFile = config?.isFile() ? config : undefined;
  return configFile !== undefined || keys?.isDirectory() ? { config: configFile } : undefined;
}

/** Every repository at or below the prefix: walks folders only, skipping dot folders and a repository's own. */
export async function* reposBelow(
  layout: FsLayout,
  prefix: RepoPath,
  signal?: AbortSignal,
): AsyncIterable<RepoPath> {
  signal?.throwIfAborted();
  if ((await repoRoot(layout, prefix)) !== undefined) yield prefix;
  for (const entry of await readdirOrEmpty(layout.repoDir(prefix))) {
    if (entry.isDirectory() && isRepoComponent(entry.name))
      yield* reposBelow(layout, [...prefix, entry.name], signal);
  }
}

/** The folders holding objects of a type: the type folder, or data's fan-out folders. */
export async function objectFolders(layout: FsLayout, repo: RepoPath, type: ObjectType): Promise<string[]> {
  const typeDir = layout.typeDir(repo, type);
  if (type !== 'data') return [typeDir];
  // A data folder that is a symbolic link holds no objects (the index skips linked folders too).
  if (!(await lstatOrUndefined(typeDir))?.isDirectory()) return [];
  const entries = await readdirOrEmpty(typeDir);
  // A listing never leaves objects out: one that would (flat-data.ts) is refused instead.
  if (flatObjects(entries).length > 0) throw flatLayoutError(typeDir);
  return entries
    .filter((sub) => sub.isDirectory() && /^[0-9a-f]{2}$/.test(sub.name))
    .map((sub) => path.join(typeDir, sub.name));
}

/** Data objects directly in a repository's data folder. */
export function flatObjects(entries: readonly Dirent[]): Dirent[] {
  return entries.filter((entry) => entry.isFile() && isObjectName(entry.name));
}

/** The listing's refusal for a data folder that holds objects directly. */
export function flatLayoutError(dataDir: string): RatchetError {
  return new RatchetError(
    'UNAVAILABLE',
    'this repository has data objects directly in data/ (the nginx recipe layout); restart the server to move them into data/<xx>/',
    { cause: new Error(`${dataDir} holds data objects directly; is another server still writing there?`) },
  );
}

/** A folder's entries; none when it is missing. */
export async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}
