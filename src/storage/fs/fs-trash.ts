/**
 * The file backend's trash (--delete-grace): a deleted object is renamed into its repository's
 * `.ratchet-trash/<type>/<name>.<deleted ms>`. The folder starts with a dot, so no URL reaches it
 * (repository path components never do), restic's local backend never looks there, and the
 * rename stays on the repository's own file system, whatever disk the repository is on.
 *
 * Durability: the trash folder and the object's folder are flushed after the rename, so a
 * crash leaves the object under one of its two names, never none. A restore links the trash
 * copy back (link(2) never replaces an object), flushes, then removes the trash name.
 */
import { readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectRef } from '../../domain/object-ref.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import { isObjectName, objectTypes } from '../../domain/object-types.ts';
import type { RepoPath } from '../../domain/repo-path.ts';
import { errnoCode } from '../../errors.ts';
import type { DeleteResult, RestoreOutcome, TrashEntry } from '../storage.ts';
import type { DirectoryIndex } from './dir-index.ts';
import type { DirSyncer } from './dir-sync.ts';
import { sha256OfFile } from './durable.ts';
import { linkPath, lstatOrUndefined, unlinkPath } from './fast-fs.ts';
import { isMissing } from './fs-errors.ts';
import { makeFolder, makeFolderPath } from './fs-repos.ts';
import type { FsLayout } from './layout.ts';

export const trashFolderName = '.ratchet-trash';
const trashTypes: readonly (ObjectType | 'config')[] = [...objectTypes, 'config'];

export class FsTrash {
  private readonly layout: FsLayout;
  private readonly syncer: DirSyncer;
  private readonly index: DirectoryIndex;
  private readonly dirMode: number;

  constructor(layout: FsLayout, syncer: DirSyncer, index: DirectoryIndex, dirMode: number) {
    this.layout = layout;
    this.syncer = syncer;
    this.index = index;
    this.dirMode = dirMode;
  }

  private trashDir(repo: RepoPath, type: ObjectType | 'config'): string {
    return path.join(this.layout.repoDir(repo), trashFolderName, type);
  }

  private trashPath(entry: Pick<TrashEntry, 'repo' | 'type' | 'name' | 'deletedMs'>): string {
    return path.join(this.trashDir(entry.repo, entry.type), `${entry.name}.${entry.deletedMs}`);
  }

  async moveToTrash(ref: ObjectRef, deletedMs: number): Promise<DeleteResult> {
    const file = this.layout.objectPath(ref);
    const info = await lstatOrUndefined(file);
    // A symbolic link is not an object (never listed): it is left alone, as a delete does.
    if (info === undefined || !info.isFile()) return { existed: false, bytes: 0 };
    const name = ref.type === 'config' ? 'config' : ref.name;
    const dir = this.trashDir(ref.repo, ref.type);
    await makeFolderPath(dir, this.dirMode);
    try {
      await rename(file, this.trashPath({ repo: ref.repo, type: ref.type, name, deletedMs }));
    } catch (err) {
      if (isMissing(err)) return { existed: false, bytes: 0 };
      throw err;
    }
    const objectDir = this.layout.objectDir(ref);
    if (ref.type !== 'config') this.index.noteRemoved(objectDir, ref.name);
    await Promise.all([this.syncer.sync(dir), this.syncer.sync(objectDir)]);
    return { existed: true, bytes: info.size };
  }

  async *listTrash(repo: RepoPath): AsyncIterable<TrashEntry> {
    for (const type of trashTypes) {
      const dir = this.trashDir(repo, type);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      for (const file of names.sort()) {
        const match = /^(.+)\.(\d+)$/.exec(file);
        const name = match?.[1] ?? '';
        if (match === null || (type === 'config' ? name !== 'config' : !isObjectName(name))) continue;
        const info = await lstatOrUndefined(path.join(dir, file));
        if (info?.isFile() !== true) continue;
        yield { repo, type, name, size: info.size, deletedMs: Number(match[2]) };
      }
    }
  }

  async restoreFromTrash(entry: TrashEntry): Promise<RestoreOutcome> {
    const from = this.trashPath(entry);
    const verified = entry.type === 'config' || (await sha256OfFile(from)) === entry.name;
    if (!verified) return 'damaged';
    const ref: ObjectRef =
      entry.type === 'config'
        ? { repo: entry.repo, type: 'config' }
        : { repo: entry.repo, type: entry.type, name: entry.name };
    const target = this.layout.objectPath(ref);
    const dir = this.layout.objectDir(ref);
    // A data fan-out folder may be gone since (or never made): its name must be durable too.
    if (await makeFolder(dir, this.dirMode)) await this.syncer.sync(path.dirname(dir));
    try {
      await linkPath(from, target);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const expected = entry.type === 'config' ? await sha256OfFile(from) : entry.name;
      const same = (await sha256OfFile(target).catch(() => undefined)) === expected;
      if (!same) return 'conflict';
      await this.purgeFromTrash(entry);
      return 'already-there';
    }
    await this.syncer.sync(dir);
    if (ref.type !== 'config') this.index.noteAdded(dir, ref.name, entry.size, Date.now());
    await unlinkPath(from);
    await this.syncer.sync(path.dirname(from));
    return 'restored';
  }

  async purgeFromTrash(entry: TrashEntry): Promise<number> {
    const file = this.trashPath(entry);
    const info = await stat(file).catch(() => undefined);
    if (info === undefined) return 0;
    try {
      await unlinkPath(file);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw err;
    }
    await this.syncer.sync(path.dirname(file));
    return info.size;
  }
}
