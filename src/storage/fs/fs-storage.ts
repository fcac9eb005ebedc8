/**
 * Local filesystem storage in rest-server's layout. Uploads go to an exclusive temporary file
 * beside the target, are fsynced once the upload check approves them, then published with
 * link(2), which fails instead of replacing an existing object; the folder is fsynced after.
 * The parts live beside this file: fs-read (read path), fs-upload (body to file), fs-publish
 * (no-overwrite publishing), fs-repos (repository folders), dir-index (listings).
 */
import { randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, RatchetError } from '../../errors.ts';
import type { RangeSpec } from '../../domain/byte-range.ts';
import type { ObjectEntry, ObjectRef } from '../../domain/object-ref.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import type { RepoPath } from '../../domain/repo-path.ts';
import type {
  DeleteResult,
  ListHints,
  ReadResult,
  RestoreOutcome,
  Storage,
  TrashEntry,
  WriteOptions,
  WriteResult,
} from '../storage.ts';
import { DirectoryIndex } from './dir-index.ts';
import { DirSyncer } from './dir-sync.ts';
import {
  closeFd,
  fsyncFd,
  lstatOrUndefined,
  openFd,
  statOrUndefined,
  SyncGuard,
  unlinkPath,
} from './fast-fs.ts';
import { dataFolderError, isMissing, translateFsError } from './fs-errors.ts';
import { Publisher } from './fs-publish.ts';
import { readFile } from './fs-read.ts';
import {
  createRepoFolders,
  makeFolderPath,
  objectFolders,
  readdirOrEmpty,
  repoRoot,
  reposBelow,
} from './fs-repos.ts';
import { writeBody } from './fs-upload.ts';
import { NewFolders } from './new-folders.ts';
import { FsTrash } from './fs-trash.ts';
import { RealFolders } from './real-folders.ts';
import { moveFlatDataObjects } from './flat-data.ts';
import { DataFolderState } from './data-folder-state.ts';
import { FsLayout, tempPrefix } from './layout.ts';
import { currentProcess } from './process-identity.ts';
import type { ProcessIdentity } from './process-identity.ts';
import { defaultSizeCheck, SizeChecker } from './size-check.ts';
import type { SizeCheckOptions } from './size-check.ts';
import { isAbandonedTemp, tempStem } from './temp-files.ts';

export interface FsStorageOptions {
  readonly root: string;
  /** Let the group read and write repos (0660/0770 instead of 0600/0700), as rest-server's flag. */
  readonly groupAccessible?: boolean;
  readonly logger?: Logger;
  /**
   * Let the read paths (HEAD, GET, listings) stat and open files synchronously on the event loop:
   * several times cheaper than the thread pool for cached inodes. A call slower than 2 ms turns
   * it off for 10 s (cold disk, network filesystem). Default true. Uploads always use the pool.
   */
  readonly syncMetadata?: boolean;
  /** The background size check's pace (size-check.ts); tests make it fast. */
  readonly sizeCheck?: SizeCheckOptions;
  /**
   * One of several workers (--workers): the primary holds the data folder's lock and did the
   * start-up work (holdDataFolder); this process neither loads nor saves the index.
   */
  readonly heldByPrimary?: boolean;
}

export class FsStorage implements Storage {
  readonly layout: FsLayout;
  /** The directory index behind listings (exposed for tests and benchmarks). */
  readonly index: DirectoryIndex;
  private readonly fileMode: number;
  private readonly dirMode: number;
  private readonly logger: Logger | undefined;
  private readonly guard: SyncGuard;
  /** Whether the folders below a repository on the way to an object are real (never links). */
  private readonly realFolders: RealFolders;
  private readonly dirSyncer: DirSyncer;
  private readonly publisher: Publisher;
  private readonly newFolders: NewFolders;
  private readonly trash: FsTrash;
  private readonly self = currentProcess();
  private readonly state: DataFolderState;
  private readonly sizeChecker: SizeChecker;
  private readonly heldByPrimary: boolean;
  /** Unique per process: temporary names are this plus a counter (no random bytes per upload). */
  private readonly tempStem = tempStem(this.self);
  private tempCounter = 0;

  constructor(options: FsStorageOptions) {
    this.layout = new FsLayout(options.root);
    this.heldByPrimary = options.heldByPrimary ?? false;
    this.fileMode = options.groupAccessible ? 0o660 : 0o600;
    this.dirMode = options.groupAccessible ? 0o770 : 0o700;
    this.logger = options.logger;
    this.guard = new SyncGuard({
      enabled: options.syncMetadata ?? true,
      onSlow: (ms) =>
        this.logger?.debug({ ms }, 'slow filesystem call: using the thread pool for metadata for a while'),
    });
    this.index = new DirectoryIndex({
      guard: this.guard,
      // Only snapshot times are needed (when a repository was last backed up).
      keepsMtimes: (dir) => path.basename(dir) === 'snapshots',
      onSizeChange: (file, cached, actual) =>
        this.logger?.warn(
          { file, cached, actual },
          'a stored object changed size: it was rewritten in place',
        ),
    });
    this.dirSyncer = new DirSyncer(this.guard);
    this.realFolders = new RealFolders(this.layout, this.guard);
    this.publisher = new Publisher(this.dirSyncer, this.logger);
    this.newFolders = new NewFolders(this.dirSyncer, this.dirMode);
    this.trash = new FsTrash(this.layout, this.dirSyncer, this.index, this.dirMode);
    this.state = new DataFolderState({
      root: this.layout.root,
      index: this.index,
      logger: this.logger,
      dirMode: this.dirMode,
    });
    this.sizeChecker = new SizeChecker(this.index, options.sizeCheck ?? defaultSizeCheck, (err) =>
      this.logger?.warn({ err }, 'the background size check failed'),
    );
  }

  /**
   * Creates the data root if needed, takes its lock (UNAVAILABLE when another server holds it),
   * loads the saved index, moves data objects of the nginx recipe's flat layout into the fan-out
   * folders (flat-data.ts), and in the background removes uploads a crash left behind and
   * starts the size check.
   */
  async init(): Promise<void> {
    if (!this.heldByPrimary)
      await openDataFolder(this.layout, this.state, this.self, this.dirSyncer, this.logger);
    this.sizeChecker.start();
    void this.sweepTemporaryFiles(this.layout.root).catch((err: unknown) => {
      this.logger?.warn({ err }, 'sweeping leftover temporary files failed');
    });
  }

  async createRepo(repo: RepoPath, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    await createRepoFolders(this.layout, repo, this.dirMode, this.dirSyncer);
  }

  async repoExists(repo: RepoPath, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    return (await repoRoot(this.layout, repo)) !== undefined;
  }

  async stat(ref: ObjectRef, signal?: AbortSignal): Promise<number | undefined> {
    signal?.throwIfAborted();
    const file = this.layout.objectPath(ref);
    return (await this.realFolders.statFile(ref, file))?.size;
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined, signal?: AbortSignal): Promise<ReadResult> {
    signal?.throwIfAborted();
    const file = this.layout.objectPath(ref);
    if (!(await this.realFolders.check(ref))) throw new RatchetError('NOT_FOUND', 'no such object');
    return readFile(file, range, this.guard);
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    options.signal?.throwIfAborted();
    const dir = this.layout.objectDir(ref);
    const target = this.layout.objectPath(ref);
    const { fd, temp } = await this.openTemp(ref, dir);
    // After openTemp, which makes a missing fan-out folder: never write through a linked folder.
    if (!(await this.realFolders.check(ref))) {
      await closeFd(fd).catch(() => undefined);
      await unlinkPath(temp).catch(() => undefined);
      throw new RatchetError(
        'CONFLICT',
        'a folder of this object type is a symbolic link; it is not written through',
      );
    }
    let fdOpen = true;
    let tempExists = true;
    try {
      await writeBody(fd, body, options.signal);
      const approved = options.check.approve();
      await fsyncFd(fd);
      fdOpen = false;
      // After the fsync there is nothing left to flush: close(2) returns at once.
      closeSync(fd);
      const created = await this.publisher.publish({
        temp,
        dir,
        target,
        approved,
        tempGone: () => {
          tempExists = false;
        },
      });
      // The folder's own name must be durable before an object in it is reported stored.
      await this.newFolders.durable(dir);
      if (created && ref.type !== 'config') this.index.noteAdded(dir, ref.name, approved.size, Date.now());
      return { created, size: approved.size };
    } catch (err) {
      throw translateFsError(err);
    } finally {
      if (fdOpen) await closeFd(fd).catch(() => undefined);
      if (tempExists) await unlinkPath(temp).catch(() => undefined);
    }
  }

  async delete(ref: ObjectRef, signal?: AbortSignal): Promise<DeleteResult> {
    signal?.throwIfAborted();
    const file = this.layout.objectPath(ref);
    try {
      // Objects are immutable, so the size read just before the unlink is the size removed. A
      // symbolic link is not an object (never listed): it is left alone.
      const info = await lstatOrUndefined(file);
      if (info === undefined || !info.isFile()) return { existed: false, bytes: 0 };
      await unlinkPath(file);
      if (ref.type !== 'config') this.index.noteRemoved(this.layout.objectDir(ref), ref.name);
      return { existed: true, bytes: info.size };
    } catch (err) {
      if (isMissing(err)) return { existed: false, bytes: 0 };
      throw err;
    }
  }

  moveToTrash(ref: ObjectRef, deletedMs: number, signal?: AbortSignal): Promise<DeleteResult> {
    signal?.throwIfAborted();
    return this.trash.moveToTrash(ref, deletedMs).catch((err: unknown) => {
      throw translateFsError(err);
    });
  }

  listTrash(repo: RepoPath, signal?: AbortSignal): AsyncIterable<TrashEntry> {
    signal?.throwIfAborted();
    return this.trash.listTrash(repo);
  }

  restoreFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<RestoreOutcome> {
    signal?.throwIfAborted();
    return this.trash.restoreFromTrash(entry).catch((err: unknown) => {
      throw translateFsError(err);
    });
  }

  purgeFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<number> {
    signal?.throwIfAborted();
    return this.trash.purgeFromTrash(entry);
  }

  async *list(
    repo: RepoPath,
    type: ObjectType,
    signal?: AbortSignal,
    hints?: ListHints,
  ): AsyncIterable<ObjectEntry> {
    if (!(await this.repoExists(repo, signal))) throw new RatchetError('NOT_FOUND', 'no such repository');
    for (const dir of await objectFolders(this.layout, repo, type)) {
      signal?.throwIfAborted();
      const { sizes, mtimes } = await this.index.entries(dir, hints?.cache ?? true);
      if (mtimes === undefined) {
        for (const [name, size] of sizes) yield { name, size };
      } else {
        for (const [name, size] of sizes) yield { name, size, modifiedMs: mtimes.get(name) };
      }
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const stateDir = this.layout.stateDir();
    const file = path.join(stateDir, `${tempPrefix}probe-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(stateDir, { recursive: true, mode: this.dirMode });
      const handle = await open(file, 'wx', this.fileMode);
      try {
        await handle.writeFile('ready?');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await unlink(file);
    } catch (err) {
      await unlink(file).catch(() => undefined);
      throw new RatchetError('UNAVAILABLE', 'storage is not writable', { cause: err });
    }
  }

  listRepos(signal?: AbortSignal): AsyncIterable<RepoPath> {
    return reposBelow(this.layout, [], signal);
  }

  async close(): Promise<void> {
    this.dirSyncer.close();
    await this.sizeChecker.stop();
    await this.state.close();
  }

  /** Creates an exclusive temporary file beside the target (creating a missing fan-out folder). */
  private async openTemp(ref: ObjectRef, dir: string): Promise<{ fd: number; temp: string }> {
    let createdDir = false;
    for (let attempt = 0; ; attempt++) {
      const temp = `${dir}${path.sep}${this.tempStem}${(this.tempCounter++).toString(36)}`;
      try {
        return { fd: await openFd(temp, 'wx', this.fileMode), temp };
      } catch (err) {
        // Another process with the same stem (practically impossible): try the next name.
        if (errnoCode(err) === 'EEXIST' && attempt < 3) continue;
        if (!isMissing(err) || createdDir) throw translateFsError(err);
      }
      // The folder is missing: fine for a data fan-out folder of an existing repo, not otherwise.
      if (!(await this.repoExists(ref.repo))) throw new RatchetError('NOT_FOUND', 'no such repository');
      try {
        // Its name is made durable while the body is written; write() waits for that.
        await this.newFolders.make(dir);
      } catch (err) {
        throw translateFsError(err);
      }
      createdDir = true;
    }
  }

  /** Removes temporary files whose writer is provably gone (temp-files.ts), in every folder. */
  private async sweepTemporaryFiles(dir: string): Promise<void> {
    for (const entry of await readdirOrEmpty(dir)) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await this.sweepTemporaryFiles(full);
      } else if (entry.name.startsWith(tempPrefix)) {
        const info = await statOrUndefined(full);
        if (info && isAbandonedTemp(entry.name, info.mtimeMs, Date.now())) {
          await unlink(full).catch(() => undefined);
          this.logger?.info({ file: full }, 'removed a temporary file left by an interrupted upload');
        }
      }
    }
  }
}

/**
 * The start-up work of one server on a data folder: create it, take its lock (UNAVAILABLE when
 * another server holds it), load the saved index (when given one) and move the nginx recipe's
 * flat data objects into the fan-out folders.
 */
async function openDataFolder(
  layout: FsLayout,
  state: DataFolderState,
  self: ProcessIdentity,
  dirSyncer: DirSyncer,
  logger: Logger | undefined,
): Promise<void> {
  const dirMode = state.dirMode;
  try {
    await makeFolderPath(layout.root, dirMode);
    await state.open(self);
  } catch (err) {
    throw err instanceof RatchetError ? err : dataFolderError(layout.root, err);
  }
  // Under the lock and before anything is served: listings must find these objects. When they
  // cannot be moved (a read-only disk), listings of those repositories refuse instead.
  await moveFlatDataObjects(layout, dirSyncer, dirMode, logger).catch((err: unknown) =>
    logger?.error({ err }, 'moving data objects out of data/ (nginx recipe layout) failed'),
  );
}

/**
 * For the primary of several workers (--workers): does the start-up work of the data folder
 * once and holds its lock until release(); the workers open it with `heldByPrimary`. No index
 * is saved (each worker builds its own from the folders), and the generation moves on, so an
 * index saved before this run is not used after it.
 */
export async function holdDataFolder(options: {
  root: string;
  groupAccessible?: boolean;
  logger?: Logger;
}): Promise<{ release(): Promise<void> }> {
  const layout = new FsLayout(options.root);
  const dirMode = options.groupAccessible ? 0o770 : 0o700;
  const guard = new SyncGuard({ enabled: false });
  const dirSyncer = new DirSyncer(guard);
  const state = new DataFolderState({ root: layout.root, index: undefined, logger: options.logger, dirMode });
  try {
    await openDataFolder(layout, state, currentProcess(), dirSyncer, options.logger);
  } finally {
    dirSyncer.close();
  }
  return { release: () => state.close() };
}
