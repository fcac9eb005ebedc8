/**
 * rest-server's on-disk layout (the same as restic's local backend). Every filesystem path the
 * server touches is built here, and each one is checked to stay inside the data root.
 */
import path from 'node:path';
import { RatchetError } from '../../errors.ts';
import type { ObjectType, RepoPath } from '../../protocol/route.ts';
import { isObjectName, isRepoComponent, objectTypes } from '../../protocol/route.ts';
import type { ObjectRef } from '../storage.ts';

/** Prefix of in-progress uploads; never a valid object name, so never listed. */
export const tempPrefix = '.ratchet-upload-';

export class FsLayout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** The server's own state (saved index), hidden from repositories by its leading dot. */
  stateDir(): string {
    return path.join(this.root, '.ratchet');
  }

  /** The repository's folder. */
  repoDir(repo: RepoPath): string {
    for (const component of repo) {
      if (!isRepoComponent(component)) throw new RatchetError('NOT_FOUND', 'invalid repository path');
    }
    return this.contained(path.join(this.root, ...repo));
  }

  /** The folder holding objects of a type (data objects sit one fan-out level below it). */
  typeDir(repo: RepoPath, type: ObjectType): string {
    return path.join(this.repoDir(repo), type);
  }

  /** The folder an object's file lives in. */
  objectDir(ref: ObjectRef): string {
    if (ref.type === 'config') return this.repoDir(ref.repo);
    const dir = this.typeDir(ref.repo, ref.type);
    return ref.type === 'data' ? path.join(dir, ref.name.slice(0, 2)) : dir;
  }

  /** The object's file. */
  objectPath(ref: ObjectRef): string {
    if (ref.type === 'config') return path.join(this.repoDir(ref.repo), 'config');
    if (!isObjectName(ref.name)) throw new RatchetError('NOT_FOUND', 'invalid object name');
    return path.join(this.objectDir(ref), ref.name);
  }

  /** Every folder `restic init` creates for a repository, parents first. */
  repoDirs(repo: RepoPath): string[] {
    const base = this.repoDir(repo);
    const dirs = [base, ...objectTypes.map((type) => path.join(base, type))];
    for (let i = 0; i < 256; i++) dirs.push(path.join(base, 'data', i.toString(16).padStart(2, '0')));
    return dirs;
  }

  private contained(target: string): string {
    const relative = path.relative(this.root, target);
    if (relative.startsWith('..') || path.isAbsolute(relative)) {
      throw new RatchetError('NOT_FOUND', 'path outside the data root');
    }
    return target;
  }
}
