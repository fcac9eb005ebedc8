/**
 * Whether the folders between a repository and an object (its type folder, and a data object's
 * fan-out folder) are real folders: symbolic links below a repository are never followed, so
 * nothing there reaches outside it. The repository's own folder and the data root may be links
 * (other disks), as in rest-server.
 *
 * One realpath(3) of the object's folder, compared with the repository folder's real path plus
 * the relative part: equal exactly when no folder below the repository is a link (a link there
 * resolves elsewhere, or loops). The repository folder's real path is remembered; when the two
 * differ it is read again before the answer, so a stale one can only cost a second call, never
 * let a link pass. This replaces an lstat per folder: a Stats object with four Dates each, whose
 * garbage made HEAD some 25% slower (docs/benchmarks.md, session 6).
 */
import fs from 'node:fs';
import type { ObjectRef } from '../../domain/object-ref.ts';
import type { SyncGuard } from './fast-fs.ts';
import { errnoCode } from '../../errors.ts';
import { isMissing } from './fs-errors.ts';
import type { FsLayout } from './layout.ts';

// Repositories whose real path is remembered; the map starts over when full.
const rememberedRepos = 4096;

export class RealFolders {
  private readonly layout: FsLayout;
  private readonly guard: SyncGuard;
  private readonly repoReal = new Map<string, string>();

  constructor(layout: FsLayout, guard: SyncGuard) {
    this.layout = layout;
    this.guard = guard;
  }

  /** True when every folder below the repository on the way to the object is a real folder. */
  async check(ref: ObjectRef): Promise<boolean> {
    if (ref.type === 'config') return true;
    const repoDir = this.layout.repoDir(ref.repo);
    const dir = this.layout.objectDir(ref);
    const below = dir.slice(repoDir.length);
    const real = await this.realPath(dir);
    if (real === undefined) return false;
    const known = this.repoReal.get(repoDir);
    if (known !== undefined && real === known + below) return true;
    const repoReal = await this.realPath(repoDir);
    if (repoReal === undefined) return false;
    if (this.repoReal.size >= rememberedRepos) this.repoReal.clear();
    this.repoReal.set(repoDir, repoReal);
    return real === repoReal + below;
  }

  /** realpath(3), synchronously while the guard allows; undefined when a part is missing or loops. */
  private async realPath(dir: string): Promise<string | undefined> {
    try {
      const now = this.guard.attempt(() => fs.realpathSync.native(dir));
      return now?.value ?? (await realPathInPool(dir));
    } catch (err) {
      if (isMissing(err) || errnoCode(err) === 'ELOOP') return undefined;
      throw err;
    }
  }
}

function realPathInPool(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    fs.realpath.native(dir, (err, resolved) => {
      if (err) reject(err);
      else resolve(resolved);
    });
  });
}
