/**
 * Local filesystem storage in rest-server's layout. Uploads go to an exclusive temporary file
 * beside the target, are hashed while they stream, fsynced, then published with link(2), which
 * fails instead of replacing an existing object; the folder is fsynced after.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode, RatchetError } from '../../errors.ts';
import type { RangeSpec } from '../../protocol/range.ts';
import { applyRange } from '../../protocol/range.ts';
import type { ObjectType, RepoPath } from '../../protocol/route.ts';
import type {
  ObjectEntry,
  ObjectRef,
  ReadResult,
  RepoSummary,
  Storage,
  WriteOptions,
  WriteResult,
} from '../storage.ts';
import { isRepoComponent, objectTypes } from '../../protocol/route.ts';
import { DirectoryIndex } from './dir-index.ts';
import { DirSyncer } from './dir-sync.ts';
import { sha256OfFile } from './durable.ts';
import {
  closeFd,
  fdatasyncFd,
  fstatFd,
  fsyncFd,
  linkPath,
  openFd,
  readFd,
  statOrUndefined,
  SyncGuard,
  unlinkPath,
  writevFd,
} from './fast-fs.ts';
import { isMissing, translateFsError } from './fs-errors.ts';
import { DataFolderState } from './data-folder-state.ts';
import { FsLayout, tempPrefix } from './layout.ts';
import { currentProcess } from './process-identity.ts';
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
}

// Writes are gathered into batches of this size: fewer syscalls than one write per socket chunk.
// One batch is written while the next one is gathered (and hashed).
const writeBatchBytes = 512 * 1024;
// Reads of at most this many bytes (a range, a small object) are one pread into one buffer
// instead of a file stream: one thread-pool round trip instead of several.
const bufferedReadBytes = 1 << 20;
// Reads of at most this many bytes are done synchronously while the SyncGuard allows it
// (a page-cache hit costs a few µs; a slow disk turns it off).
const syncReadBytes = 256 * 1024;
const streamChunkBytes = 256 * 1024;
// Large uploads start flushing to disk in the background every this many bytes.
const earlyFlushBytes = 4 << 20;

/** A verified, fsynced temp file waiting to be published under its object name. */
interface StagedObject {
  readonly temp: string;
  /** The object's folder and path. */
  readonly dir: string;
  readonly target: string;
  readonly digest: string;
  /** The digest was checked against the name, so a differing stored copy is the damaged one. */
  readonly verified: boolean;
  /** Called once the temporary name no longer exists. */
  readonly tempGone: () => void;
}

export class FsStorage implements Storage {
  readonly layout: FsLayout;
  /** The directory index behind listings (exposed for tests and benchmarks). */
  readonly index: DirectoryIndex;
  private readonly fileMode: number;
  private readonly dirMode: number;
  private readonly logger: Logger | undefined;
  private readonly guard: SyncGuard;
  private readonly dirSyncer: DirSyncer;
  private readonly self = currentProcess();
  private readonly state: DataFolderState;
  private readonly sizeChecker: SizeChecker;
  /** Unique per process: temporary names are this plus a counter (no random bytes per upload). */
  private readonly tempStem = tempStem(this.self);
  private tempCounter = 0;

  constructor(options: FsStorageOptions) {
    this.layout = new FsLayout(options.root);
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
   * loads the saved index, and in the background removes uploads a crash left behind and
   * starts the size check.
   */
  async init(): Promise<void> {
    await mkdir(this.layout.root, { recursive: true, mode: this.dirMode });
    await this.state.open(this.self);
    this.sizeChecker.start();
    void this.sweepTemporaryFiles(this.layout.root).catch((err: unknown) => {
      this.logger?.warn({ err }, 'sweeping leftover temporary files failed');
    });
  }

  async createRepo(repo: RepoPath): Promise<void> {
    const [base = this.layout.root, ...rest] = this.layout.repoDirs(repo);
    try {
      const first = await mkdir(base, { recursive: true, mode: this.dirMode });
      for (const dir of rest) await this.mkdirIfMissing(dir);
      // Flush every folder that got a new entry: the repository's ancestors created here, the
      // repository (its type folders) and data/ (its fan-out folders).
      const parents = new Set([base, path.join(base, 'data')]);
      if (first !== undefined) {
        const top = path.dirname(first);
        for (let dir = base; dir !== top && dir !== path.dirname(dir);) {
          dir = path.dirname(dir);
          parents.add(dir);
        }
      }
      await Promise.all([...parents].map((dir) => this.dirSyncer.sync(dir)));
    } catch (err) {
      throw translateFsError(err);
    }
  }

  async repoExists(repo: RepoPath): Promise<boolean> {
    return (await this.repoRoot(repo)) !== undefined;
  }

  /** A repository's config file (if any) when the repository exists: a config file or keys/. */
  private async repoRoot(repo: RepoPath): Promise<{ config: Stats | undefined } | undefined> {
    const dir = this.layout.repoDir(repo);
    const [config, keys] = await Promise.all([
      statOrUndefined(path.join(dir, 'config')),
      statOrUndefined(path.join(dir, 'keys')),
    ]);
    const configFile = config?.isFile() ? config : undefined;
    return configFile !== undefined || keys?.isDirectory() ? { config: configFile } : undefined;
  }

  async stat(ref: ObjectRef): Promise<number | undefined> {
    const info = await this.guard.stat(this.layout.objectPath(ref));
    return info?.isFile() ? info.size : undefined;
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined): Promise<ReadResult> {
    const { fd, size } = await this.openForRead(this.layout.objectPath(ref));
    let streaming = false;
    try {
      const resolved = applyRange(range, size);
      const start = resolved?.start ?? 0;
      const length = resolved === undefined ? size : resolved.end - resolved.start + 1;
      if (length > bufferedReadBytes) {
        // The stream closes the descriptor when it ends or is destroyed.
        const body = createReadStream('', {
          fd,
          start,
          end: start + length - 1,
          highWaterMark: streamChunkBytes,
          autoClose: true,
        });
        streaming = true;
        return { size, range: resolved, body };
      }
      let data: Buffer;
      const started = length <= syncReadBytes ? this.guard.begin() : undefined;
      if (started !== undefined) {
        // Most likely in the page cache: one pread on the loop costs less than a pool round trip.
        data = readExactlySync(fd, start, length);
        this.guard.end(started);
      } else {
        data = await readExactly(fd, start, length);
      }
      return { size, range: resolved, data };
    } finally {
      if (!streaming) this.closeAfterRead(fd);
    }
  }

  /** Opens an object for reading and returns its descriptor and size; NOT_FOUND when it is not a file. */
  private async openForRead(file: string): Promise<{ fd: number; size: number }> {
    const started = this.guard.begin();
    let fd: number;
    try {
      fd = started === undefined ? await openFd(file, 'r') : openSync(file, 'r');
    } catch (err) {
      if (isMissing(err) || errnoCode(err) === 'EISDIR')
        throw new RatchetError('NOT_FOUND', 'no such object');
      throw err;
    }
    try {
      const info = started === undefined ? await fstatFd(fd) : fstatSync(fd);
      if (started !== undefined) this.guard.end(started);
      if (!info.isFile()) throw new RatchetError('NOT_FOUND', 'no such object');
      return { fd, size: info.size };
    } catch (err) {
      this.closeAfterRead(fd);
      throw err;
    }
  }

  /** close(2) of a descriptor only read from: nothing to flush, so cheap enough for the loop. */
  private closeAfterRead(fd: number): void {
    if (this.guard.begin() === undefined) {
      closeFd(fd).catch(() => undefined);
      return;
    }
    try {
      closeSync(fd);
    } catch {
      // A read-only descriptor has nothing to lose on close.
    }
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    const dir = this.layout.objectDir(ref);
    const target = this.layout.objectPath(ref);
    const { fd, temp } = await this.openTemp(ref, dir);
    let fdOpen = true;
    let tempExists = true;
    try {
      const { digest, size } = await writeHashed(fd, body, options.signal);
      if (options.contentLength !== undefined && size !== options.contentLength) {
        throw new RatchetError(
          'INCOMPLETE_BODY',
          `body has ${size} bytes, Content-Length said ${options.contentLength}`,
        );
      }
      if (options.expectedSha256 !== undefined && digest !== options.expectedSha256) {
        throw new RatchetError('HASH_MISMATCH', 'content does not match its SHA-256 name');
      }
      await fsyncFd(fd);
      fdOpen = false;
      // After the fsync there is nothing left to flush: close(2) returns at once.
      closeSync(fd);
      const created = await this.publish({
        temp,
        dir,
        target,
        digest,
        verified: options.expectedSha256 !== undefined,
        tempGone: () => {
          tempExists = false;
        },
      });
      if (created && ref.type !== 'config') this.index.noteAdded(dir, ref.name, size, Date.now());
      return { created, size };
    } catch (err) {
      throw translateFsError(err);
    } finally {
      if (fdOpen) await closeFd(fd).catch(() => undefined);
      if (tempExists) await unlinkPath(temp).catch(() => undefined);
    }
  }

  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await unlinkPath(this.layout.objectPath(ref));
      if (ref.type !== 'config') this.index.noteRemoved(this.layout.objectDir(ref), ref.name);
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  async *list(repo: RepoPath, type: ObjectType): AsyncIterable<ObjectEntry> {
    if (!(await this.repoExists(repo))) throw new RatchetError('NOT_FOUND', 'no such repository');
    for (const dir of await this.objectFolders(repo, type)) {
      for (const [name, size] of (await this.index.entries(dir)).sizes) yield { name, size };
    }
  }

  async probe(): Promise<void> {
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

  async *listRepos(): AsyncIterable<RepoPath> {
    yield* this.reposBelow([]);
  }

  /** Walks folders only (never object files), skipping dot folders and a repository's own folders. */
  private async *reposBelow(prefix: string[]): AsyncIterable<RepoPath> {
    if (await this.repoExists(prefix)) yield prefix;
    for (const entry of await readdirOrEmpty(this.layout.repoDir(prefix))) {
      if (entry.isDirectory() && isRepoComponent(entry.name)) yield* this.reposBelow([...prefix, entry.name]);
    }
  }

  async summarize(repo: RepoPath): Promise<RepoSummary> {
    const root = await this.repoRoot(repo);
    if (root === undefined) throw new RatchetError('NOT_FOUND', 'no such repository');
    let bytes = root.config?.size ?? 0;
    const objects = { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 };
    let newestSnapshotMs: number | undefined;
    for (const type of objectTypes) {
      for (const dir of await this.objectFolders(repo, type)) {
        const { sizes, mtimes } = await this.index.entries(dir);
        for (const size of sizes.values()) bytes += size;
        objects[type] += sizes.size;
        if (type !== 'snapshots') continue;
        for (const mtimeMs of mtimes?.values() ?? []) {
          if (newestSnapshotMs === undefined || mtimeMs > newestSnapshotMs) newestSnapshotMs = mtimeMs;
        }
      }
    }
    return { bytes, objects, newestSnapshotMs };
  }

  async close(): Promise<void> {
    this.dirSyncer.close();
    await this.sizeChecker.stop();
    await this.state.close();
  }

  /** The folders holding objects of a type: the type folder, or data's fan-out folders. */
  private async objectFolders(repo: RepoPath, type: ObjectType): Promise<string[]> {
    const typeDir = this.layout.typeDir(repo, type);
    if (type !== 'data') return [typeDir];
    return (await readdirOrEmpty(typeDir))
      .filter((sub) => sub.isDirectory() && /^[0-9a-f]{2}$/.test(sub.name))
      .map((sub) => path.join(typeDir, sub.name));
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
        await mkdir(dir, { recursive: true, mode: this.dirMode });
        // The new folder's name must be durable before objects inside it are reported stored.
        await this.dirSyncer.sync(path.dirname(dir));
      } catch (err) {
        throw translateFsError(err);
      }
      createdDir = true;
    }
  }

  /**
   * Moves the finished temp file into place without replacing anything; false when identical
   * content was there. `tempGone` is called once the temporary name no longer exists.
   */
  private async publish(staged: StagedObject): Promise<boolean> {
    const { temp, dir, target, tempGone } = staged;
    try {
      await linkPath(temp, target);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return this.resolveExisting(staged);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: check, then rename (not atomic against a racing writer).
      if ((await statOrUndefined(target)) !== undefined) return this.resolveExisting(staged);
      return this.replaceTarget(staged);
    }
    // The temporary name is removed while the folder is flushed; either order is durable, since
    // the object's own name was created (by link) before the flush started.
    tempGone();
    await Promise.all([this.dirSyncer.sync(dir), unlinkPath(temp).catch(() => undefined)]);
    return true;
  }

  private async resolveExisting(staged: StagedObject): Promise<boolean> {
    const { dir, target, digest, verified } = staged;
    const existing = await sha256OfFile(target);
    if (existing === digest) {
      // The name may come from an upload whose folder flush is still running (or failed): this
      // client is answered only once a flush that started now has made the name durable.
      await this.dirSyncer.sync(dir);
      return false;
    }
    if (!verified)
      throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
    // The new content matches the name and the stored one does not: the stored copy is damaged.
    this.logger?.warn({ file: target }, 'replacing a stored object whose content did not match its name');
    return this.replaceTarget(staged);
  }

  /** Renames the temp file over the target (replacing it) and makes the new name durable. */
  private async replaceTarget({ temp, dir, target, tempGone }: StagedObject): Promise<boolean> {
    await rename(temp, target);
    tempGone();
    await this.dirSyncer.sync(dir);
    return true;
  }

  private async mkdirIfMissing(dir: string): Promise<void> {
    try {
      await mkdir(dir, { mode: this.dirMode });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
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
 * Streams the body into the file in batches, hashing as it goes. One batch is being written
 * while the next is gathered, so the socket keeps being read during a write. Every
 * `earlyFlushBytes` written, an fdatasync starts in the background (one at a time), so that
 * the disk works while the body still arrives and the final fsync has little left to do.
 */
async function writeHashed(
  fd: number,
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let inFlight: Promise<void> | undefined;
  let flushing: Promise<void> | undefined;
  let flushError: Error | undefined;
  let flushedAt = 0;
  const startFlush = (): void => {
    flushedAt = size;
    // An error here must reach the caller: the final fsync may not report it a second time.
    flushing = fdatasyncFd(fd).then(
      () => {
        flushing = undefined;
      },
      (err: unknown) => {
        flushing = undefined;
        flushError ??= err instanceof Error ? err : new Error(String(err));
      },
    );
  };
  try {
    for await (const chunk of body) {
      signal?.throwIfAborted();
      hash.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= writeBatchBytes) {
        if (inFlight !== undefined) await inFlight;
        if (flushError !== undefined) throw flushError;
        if (flushing === undefined && size - flushedAt >= earlyFlushBytes) startFlush();
        inFlight = writeAll(fd, pending, pendingBytes, size);
        // Awaited later (or in finally): a rejection must not go unhandled meanwhile.
        inFlight.catch(() => undefined);
        size += pendingBytes;
        pending = [];
        pendingBytes = 0;
      }
    }
    signal?.throwIfAborted();
    if (inFlight !== undefined) await inFlight;
    inFlight = undefined;
    if (pending.length > 0) await writeAll(fd, pending, pendingBytes, size);
    size += pendingBytes;
    if (flushing !== undefined) await flushing;
    if (flushError !== undefined) throw flushError;
    return { digest: hash.digest('hex'), size };
  } finally {
    // The descriptor is closed after this returns: no write or flush may still be using it then.
    if (inFlight !== undefined) await inFlight.catch(() => undefined);
    if (flushing !== undefined) await flushing;
  }
}

/** pwritev until every byte is written: the kernel may accept a batch only in part. */
async function writeAll(fd: number, buffers: Uint8Array[], total: number, position: number): Promise<void> {
  let remaining = buffers;
  let left = total;
  let at = position;
  for (;;) {
    const written = await writevFd(fd, remaining, at);
    left -= written;
    at += written;
    if (left <= 0) return;
    let skip = written;
    const rest: Uint8Array[] = [];
    for (const buffer of remaining) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
      } else {
        rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
    }
    remaining = rest;
  }
}

/**
 * The Content-Length is already set from fstat: sending fewer bytes would make a keep-alive
 * client read the next response as part of this body. Objects are immutable, so a shorter file
 * means something truncated it on disk.
 */
function shortRead(read: number, expected: number): Error {
  return new Error(`object file ended after ${read} of ${expected} bytes: changed on disk while being read`);
}

/** Reads `length` bytes at `position` with pread; throws if the file ends before. */
async function readExactly(fd: number, position: number, length: number): Promise<Buffer> {
  const data = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const n = await readFd(fd, data, filled, length - filled, position + filled);
    if (n === 0) throw shortRead(filled, length);
    filled += n;
  }
  return data;
}

/** readExactly on the event loop. */
function readExactlySync(fd: number, position: number, length: number): Buffer {
  const data = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const n = readSync(fd, data, filled, length - filled, position + filled);
    if (n === 0) throw shortRead(filled, length);
    filled += n;
  }
  return data;
}

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}
