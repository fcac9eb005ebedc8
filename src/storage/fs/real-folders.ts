/**
 * Whether the folders between a repository and an object (its type folder, and a data object's
 * fan-out folder) are real folders: symbolic links below a repository are never followed, so
 * nothing there reaches outside it. The repository's own folder and the data root may be links
 * (other disks), as in rest-server.
 *
 * One lstat(2) per folder below the repository, outermost first: a link there is reported as a
 * link (not a folder), and once the outer folder is known real, the inner one's lstat resolves
 * through real folders only. HEAD does its object's lstat in the same synchronous batch. Costs,
 * measured in docs/benchmarks.md (session 9): two lstats of cached inodes take less of the
 * event loop than one realpath(3) of the whole path, which reads every component from `/`.
 */
import type { Stats } from 'node:fs';
import type { ObjectRef } from '../../domain/object-ref.ts';
import { errnoCode } from '../../errors.ts';
import type { SyncGuard } from './fast-fs.ts';
import { lstatOrUndefined } from './fast-fs.ts';
import type { FsLayout } from './layout.ts';

export class RealFolders {
  private readonly layout: FsLayout;
  private readonly guard: SyncGuard;

  constructor(layout: FsLayout, guard: SyncGuard) {
    this.layout = layout;
    this.guard = guard;
  }

  /** True when every folder below the repository on the way to the object is a real folder. */
  async check(ref: ObjectRef): Promise<boolean> {
    if (ref.type === 'config') return true;
    const infos = await this.lstatAll(this.foldersBelowRepo(ref));
    return infos?.every(isRealFolder) === true;
  }

  /**
   * The object's lstat(2) when every folder below the repository is real and the object is a
   * file; undefined otherwise (missing, a link, or reached through a link).
   */
  async statFile(ref: ObjectRef, file: string): Promise<Stats | undefined> {
    const paths = ref.type === 'config' ? [file] : [...this.foldersBelowRepo(ref), file];
    const infos = await this.lstatAll(paths);
    const info = infos?.pop();
    return infos?.every(isRealFolder) === true && info?.isFile() === true ? info : undefined;
  }

  /** lstat of each path, in one synchronous batch while allowed; undefined when a link loops on the way. */
  private async lstatAll(paths: readonly string[]): Promise<(Stats | undefined)[] | undefined> {
    try {
      return this.guard.lstatBatchSync(paths) ?? (await lstatEach(paths));
    } catch (err) {
      if (errnoCode(err) === 'ELOOP') return undefined;
      throw err;
    }
  }

  /** The type folder, then (for data) the fan-out folder: outermost first. */
  private foldersBelowRepo(ref: ObjectRef): string[] {
    const dir = this.layout.objectDir(ref);
    if (ref.type !== 'data') return [dir];
    return [this.layout.typeDir(ref.repo, ref.type), dir];
  }
}

function isRealFolder(info: Stats | undefined): boolean {
  return info?.isDirectory() === true;
}

/** lstat of each path in turn through the thread pool (in order: an outer link is seen first). */
async function lstatEach(paths: readonly string[]): Promise<(Stats | undefined)[]> {
  const infos: (Stats | undefined)[] = [];
  for (const file of paths) infos.push(await lstatOrUndefined(file));
  return infos;
}
