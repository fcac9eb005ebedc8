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
import { errnoCode, RatchetError } from '../../errors.ts';
import type { DeleteResult, RestoreOutcome, TrashEntry } from '../storage.ts';
import type { DirectoryIndex } from './dir-index.ts';
import type { DirSyncer } from './dir-sync.ts';
import { sha256OfFile } from './durable.ts';
import { linkPath, lstatOrUndefined, unlessMissing, unlinkPath } from './fast-fs.ts';
import { isMissing } from './fs-errors.ts';
import { makeFolder } from './fs-repos.ts';
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
    const dir = await this.realTrashDir(ref.repo, ref.type, true);
    if (dir === undefined) throw new RatchetError('UNAVAILABLE', 'the trash folder could not be made');
    try {
      await rename(file, this.trashPath({ repo: ref.repo, type: ref.type, name, deletedMs }));
    } catch (err) {
      if (isMissing(err)) return { existed: false, bytes: 0 };
      throw err;
    }
    const objectDir = this.layout.objectDir(ref);
    if (ref.type !== 'config') this.index.noteRemoved(objectDir, ref.name);
    // The new name first, then the old one's removal: a crash leaves one of them, never none.
    await this.syncer.sync(dir);
    await this.syncer.sync(objectDir);
    return { existed: true, bytes: info.size };
  }

  async *listTrash(repo: RepoPath): AsyncIterable<TrashEntry> {
    for (const type of trashTypes) {
      const dir = await this.realTrashDir(repo, type, false);
      if (dir === undefined) continue;
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      for (const file of names.sort()) {
        // Exactly as moveToTrash names them: anything else in the folder is not an entry.
        const match = /^(.+)\.([1-9]\d{0,14})$/.exec(file);
        const name = match?.[1] ?? '';
        if (match === null || (type === 'config' ? name !== 'config' : !isObjectName(name))) continue;
        const info = await lstatOrUndefined(path.join(dir, file));
        if (info?.isFile() !== true) continue;
        yield { repo, type, name, size: info.size, deletedMs: Number(match[2]) };
      }
    }
  }

  async restoreFromTrash(entry: TrashEntry): Promise<RestoreOutcome> {
    if ((await this.realTrashDir(entry.repo, entry.type, false)) === undefined) return 'gone';
    const from = this.trashPath(entry);
    if ((await lstatOrUndefined(from))?.isFile() !== true) return 'gone';
    // Config objects have no name to check against: they come back as they were.
    const verified =
      entry.type === 'config' || (await sha256OfFile(from).catch(() => undefined)) === entry.name;
    if (!verified) return (await lstatOrUndefined(from)) === undefined ? 'gone' : 'damaged';
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
      const code = errnoCode(err);
      if (code === 'ENOENT') return 'gone'; // purged meanwhile
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP')
        return this.renameBack(entry, from, target, dir);
      if (code !== 'EEXIST') throw err;
      return this.resolveExisting(entry, from, target);
    }
    await this.syncer.sync(dir);
    if (ref.type !== 'config') this.index.noteAdded(dir, ref.name, entry.size, Date.now());
    // Purged meanwhile (after the link): the object is back all the same.
    await unlessMissing(unlinkPath(from));
    await this.syncer.sync(path.dirname(from));
    return 'restored';
  }

  /** The name is taken: identical content (a real file, never a link) drops the trash copy. */
  private async resolveExisting(entry: TrashEntry, from: string, target: string): Promise<RestoreOutcome> {
    if ((await lstatOrUndefined(target))?.isFile() !== true) return 'conflict';
    const expected = entry.type === 'config' ? await sha256OfFile(from) : entry.name;
    if ((await sha256OfFile(target).catch(() => undefined)) !== expected) return 'conflict';
    await this.purgeFromTrash(entry);
    return 'already-there';
  }

  /** A file system without hard links: check, then rename (as uploads do there). */
  private async renameBack(
    entry: TrashEntry,
    from: string,
    target: string,
    dir: string,
  ): Promise<RestoreOutcome> {
    if ((await lstatOrUndefined(target)) !== undefined) return this.resolveExisting(entry, from, target);
    await rename(from, target);
    await this.syncer.sync(dir);
    if (entry.type !== 'config') this.index.noteAdded(dir, entry.name, entry.size, Date.now());
    await this.syncer.sync(path.dirname(from));
    return 'restored';
  }

  /**
   * The trash folder of a type when it and `.ratchet-trash` are real folders (never followed
   * links), made (with durable names) when `make`; undefined when absent or a link.
   */
  private async realTrashDir(
    repo: RepoPath,
    type: ObjectType | 'config',
    make: boolean,
  ): Promise<string | undefined> {
    const top = path.join(this.layout.repoDir(repo), trashFolderName);
    const dir = path.join(top, type);
    for (const folder of [top, dir]) {
      let info = await lstatOrUndefined(folder);
      if (info === undefined && make) {
        if (await makeFolder(folder, this.dirMode)) await this.syncer.sync(path.dirname(folder));
        info = await lstatOrUndefined(folder);
      }
      if (info === undefined) return undefined;
      if (!info.isDirectory())
        throw new RatchetError(
          'CONFLICT',
          'the trash folder of this repository is not a plain folder; nothing is moved there',
        );
    }
    return dir;
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
