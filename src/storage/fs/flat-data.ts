/**
 * Repositories written by the nginx recipe (WebDAV maps `/data/<id>` to a file of that path) keep
 * data objects directly in `data/`; rest-server's layout, which Ratchet serves, keeps them one
 * fan-out level below (`data/ab/ab…`). At start, before anything is served, such objects are
 * moved into their fan-out folder, so that the recipe's data folder works as it is:
 *
 * - link(2) into the fan-out folder, that folder flushed, then the flat name removed and `data/`
 *   flushed: a crash in between leaves the object under one name or both, never none.
 * - A name already in the fan-out folder keeps whichever copy matches its SHA-256 name; when
 *   neither does, both stay and the repository is reported (listings then refuse it, below).
 *
 * Listings never silently omit such objects: a data listing of a repository that holds objects
 * directly in `data/` (another program still writing there) is refused instead.
 */
import type { Dirent } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../../errors.ts';
import type { DirSyncer } from './dir-sync.ts';
import { sha256OfFile } from './durable.ts';
import { linkPath, lstatOrUndefined, unlinkPath } from './fast-fs.ts';
import { flatObjects, makeFolder, readdirOrEmpty, reposBelow } from './fs-repos.ts';
import type { FsLayout } from './layout.ts';

export interface FlatMoveReport {
  readonly moved: number;
  /** Repositories whose flat objects could not all be moved (see the log). */
  readonly unresolved: number;
}

/** Moves every repository's flat data objects into the fan-out folders (see the file comment). */
export async function moveFlatDataObjects(
  layout: FsLayout,
  syncer: DirSyncer,
  dirMode: number,
  logger: Logger | undefined,
): Promise<FlatMoveReport> {
  let moved = 0;
  let unresolved = 0;
  for await (const repo of reposBelow(layout, [])) {
    const dataDir = layout.typeDir(repo, 'data');
    const flat = flatObjects(await readdirOrEmpty(dataDir));
    if (flat.length === 0) continue;
    const outcome = await moveRepository(dataDir, flat, syncer, dirMode, logger);
    moved += outcome.moved;
    if (outcome.left > 0) unresolved++;
    logger?.warn(
      { repo: repo.join('/'), moved: outcome.moved, left: outcome.left },
      'moved data objects from data/ into the fan-out folders (nginx recipe layout)',
    );
  }
  return { moved, unresolved };
}

async function moveRepository(
  dataDir: string,
  flat: readonly Dirent[],
  syncer: DirSyncer,
  dirMode: number,
  logger: Logger | undefined,
): Promise<{ moved: number; left: number }> {
  const linked: string[] = [];
  const touched = new Set<string>();
  let left = 0;
  for (const entry of flat) {
    const from = path.join(dataDir, entry.name);
    const folder = path.join(dataDir, entry.name.slice(0, 2));
    const to = path.join(folder, entry.name);
    if (await makeFolder(folder, dirMode)) touched.add(dataDir);
    if (await linkOrKeepGood(from, to, entry.name, logger)) {
      linked.push(from);
      touched.add(folder);
    } else {
      left++;
    }
  }
  // Every new name durable before any old one goes.
  await Promise.all([...touched].map((dir) => syncer.sync(dir)));
  for (const from of linked) await unlinkPath(from);
  await syncer.sync(dataDir);
  return { moved: linked.length, left };
}

/**
 * Links `from` to `to`; when `to` exists, true if a copy matching the name is now at `to` (the
 * flat one may go), false when neither copy matches (both stay).
 */
async function linkOrKeepGood(
  from: string,
  to: string,
  name: string,
  logger: Logger | undefined,
): Promise<boolean> {
  try {
    await linkPath(from, to);
    return true;
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }
  // A move interrupted after its link: both names are the same file, nothing to compare.
  const [fromInfo, toInfo] = await Promise.all([lstatOrUndefined(from), lstatOrUndefined(to)]);
  if (fromInfo !== undefined && toInfo?.ino === fromInfo.ino && toInfo.dev === fromInfo.dev) return true;
  if ((await sha256OfFile(to).catch(() => undefined)) === name) return true;
  if ((await sha256OfFile(from)) === name) {
    // The fan-out copy is damaged and the flat one is good: the good one replaces it.
    await unlinkPath(to);
    await linkPath(from, to);
    return true;
  }
  logger?.error(
    { file: from, other: to },
    'two copies of a data object, neither matching its name: both kept',
  );
  return false;
}
