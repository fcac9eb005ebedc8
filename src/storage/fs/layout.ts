/**
 * rest-server's on-disk layout (the same as restic's local backend). Every filesystem path the
 * server touches is built here, and each one is checked to stay inside the data root.
 */
import path from 'node:path';
import { RatchetError } from '../../errors.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import type { RepoPath } from '../../domain/repo-path.ts';
import { isObjectName, objectTypes } from '../../domain/object-types.ts';
import { isRepoComponent } from '../../domain/repo-path.ts';
import type { ObjectRef } from '../../domain/object-ref.ts';

/** Prefix of in-progress uploads; never a valid object name, so never listed. */
export const tempPrefix = '.ratchet-upload-';

// Repository folders are remembered (validated and built once) up to this many repositories.
const repoDirCacheSize = 1024;

export class FsLayout {
  readonly root: string;
  private readonly rootPrefix: string;
  private readonly repoDirCache = new Map<string, string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.rootPrefix = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
  }

  /** The server's own state (saved index), hidden from repositories by its leading dot. */
  stateDir(): string {
    return path.join(this.root, '.ratchet');
  }

  /** The repository's folder. */
  repoDir(repo: RepoPath): string {
    // Valid components hold no control characters, so this key names one repository; an invalid
    // path can only hit the entry of the valid repository at the very same place on disk.
    const key = repo.length === 1 ? (repo[0] ?? '') : repo.join('\u0000');
    const known = this.repoDirCache.get(key);
    if (known !== undefined) return known;
    for (const component of repo) {
      if (!isRepoComponent(component)) throw new RatchetError('NOT_FOUND', 'invalid repository path');
    }
    const dir = this.contained(path.join(this.root, ...repo));
    if (this.repoDirCache.size >= repoDirCacheSize) this.repoDirCache.clear();
    this.repoDirCache.set(key, dir);
    return dir;
  }

  /** The folder holding objects of a type (data objects sit one fan-out level below it). */
  typeDir(repo: RepoPath, type: ObjectType): string {
    return this.child(this.repoDir(repo), type);
  }

  /** The folder an object's file lives in. */
  objectDir(ref: ObjectRef): string {
    if (ref.type === 'config') return this.repoDir(ref.repo);
    const dir = this.typeDir(ref.repo, ref.type);
    return ref.type === 'data' ? dir + path.sep + ref.name.slice(0, 2) : dir;
  }

  /** The object's file. */
  objectPath(ref: ObjectRef): string {
    if (ref.type === 'config') return this.child(this.repoDir(ref.repo), 'config');
    if (!isObjectName(ref.name)) throw new RatchetError('NOT_FOUND', 'invalid object name');
    return this.objectDir(ref) + path.sep + ref.name;
  }

  /** The repository's type folders, keys/ last (its presence marks the repository as existing). */
  typeDirs(repo: RepoPath): string[] {
    const base = this.repoDir(repo);
    return [...objectTypes.filter((type) => type !== 'keys'), 'keys'].map((type) => this.child(base, type));
  }

  /** A plain name inside a folder built here (already normalised): no path.join needed. */
  private child(dir: string, name: string): string {
    return dir.endsWith(path.sep) ? dir + name : dir + path.sep + name;
  }

  private contained(target: string): string {
    if (target !== this.root && !target.startsWith(this.rootPrefix)) {
      throw new RatchetError('NOT_FOUND', 'path outside the data root');
    }
    return target;
  }
}
