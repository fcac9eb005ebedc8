/**
 * Local filesystem storage in rest-server's layout. Uploads go to an exclusive temporary file
 * beside the target, are hashed while they stream, fsynced, then published with link(2), which
 * fails instead of replacing an existing object; the folder is fsynced after.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { RatchetError } from '../../errors.ts';
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
import { fsyncDir, sha256OfFile } from './durable.ts';
import { errnoCode, isMissing, translateFsError } from './fs-errors.ts';
import { loadIndex, saveIndex } from './index-file.ts';
import { FsLayout, tempPrefix } from './layout.ts';

export interface FsStorageOptions {
  readonly root: string;
  /** Let the group read and write repos (0660/0770 instead of 0600/0700), as rest-server's flag. */
  readonly groupAccessible?: boolean;
  readonly logger?: Logger;
}

// Writes are gathered into batches of this size: fewer syscalls than one write per socket chunk.
const writeBatchBytes = 1 << 20;

export class FsStorage implements Storage {
  readonly layout: FsLayout;
  private readonly index = new DirectoryIndex();
  private readonly fileMode: number;
  private readonly dirMode: number;
  private readonly logger: Logger | undefined;

  constructor(options: FsStorageOptions) {
    this.layout = new FsLayout(options.root);
    this.fileMode = options.groupAccessible ? 0o660 : 0o600;
    this.dirMode = options.groupAccessible ? 0o770 : 0o700;
    this.logger = options.logger;
  }

  /** Creates the data root if needed and removes uploads a crash left behind, in the background. */
  async init(): Promise<void> {
    await mkdir(this.layout.root, { recursive: true, mode: this.dirMode });
    try {
      const folders = await loadIndex(this.layout.stateDir(), this.layout.root, this.index);
      if (folders > 0) this.logger?.info({ folders }, 'loaded the object index');
    } catch (err) {
      this.logger?.warn({ err }, 'the saved object index could not be read; folders will be read afresh');
    }
    const startedAt = Date.now();
    void this.sweepTemporaryFiles(this.layout.root, startedAt).catch((err: unknown) => {
      this.logger?.warn({ err }, 'sweeping leftover temporary files failed');
    });
  }

  async createRepo(repo: RepoPath): Promise<void> {
    const [base, ...rest] = this.layout.repoDirs(repo);
    try {
      await mkdir(base ?? this.layout.root, { recursive: true, mode: this.dirMode });
      for (const dir of rest) await this.mkdirIfMissing(dir);
    } catch (err) {
      throw translateFsError(err);
    }
  }

  async repoExists(repo: RepoPath): Promise<boolean> {
    const dir = this.layout.repoDir(repo);
    const [config, keys] = await Promise.all([
      statOrUndefined(path.join(dir, 'config')),
      statOrUndefined(path.join(dir, 'keys')),
    ]);
    return Boolean(config?.isFile() || keys?.isDirectory());
  }

  async stat(ref: ObjectRef): Promise<number | undefined> {
    const info = await statOrUndefined(this.layout.objectPath(ref));
    return info?.isFile() ? info.size : undefined;
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined): Promise<ReadResult> {
    let handle: FileHandle;
    try {
      handle = await open(this.layout.objectPath(ref), 'r');
    } catch (err) {
      if (isMissing(err) || errnoCode(err) === 'EISDIR')
        throw new RatchetError('NOT_FOUND', 'no such object');
      throw err;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new RatchetError('NOT_FOUND', 'no such object');
      const size = info.size;
      const resolved = applyRange(range, size);
      const body = handle.createReadStream({
        start: resolved?.start ?? 0,
        end: resolved?.end ?? Math.max(0, size - 1),
        highWaterMark: 256 * 1024,
      });
      return { size, range: resolved, body };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    const dir = this.layout.objectDir(ref);
    const target = this.layout.objectPath(ref);
    const temp = path.join(dir, `${tempPrefix}${randomBytes(8).toString('hex')}`);
    const handle = await this.openTemp(ref, dir, temp);
    let handleOpen = true;
    try {
      const { digest, size } = await writeHashed(handle, body, options.signal);
      if (options.contentLength !== undefined && size !== options.contentLength) {
        throw new RatchetError(
          'INCOMPLETE_BODY',
          `body has ${size} bytes, Content-Length said ${options.contentLength}`,
        );
      }
      if (options.expectedSha256 !== undefined && digest !== options.expectedSha256) {
        throw new RatchetError('HASH_MISMATCH', 'content does not match its SHA-256 name');
      }
      await handle.sync();
      handleOpen = false;
      await handle.close();
      const created = await this.publish(temp, target, digest, options.expectedSha256 !== undefined);
      if (created && ref.type !== 'config')
        this.index.noteAdded(dir, ref.name, { size, mtimeMs: Date.now() });
      return { created, size };
    } catch (err) {
      throw translateFsError(err);
    } finally {
      if (handleOpen) await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  }

  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await unlink(this.layout.objectPath(ref));
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
      for (const [name, entry] of await this.index.entries(dir)) yield { name, size: entry.size };
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
    if (!(await this.repoExists(repo))) throw new RatchetError('NOT_FOUND', 'no such repository');
    const config = await statOrUndefined(path.join(this.layout.repoDir(repo), 'config'));
    let bytes = config?.isFile() ? config.size : 0;
    const objects = { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 };
    let newestSnapshotMs: number | undefined;
    for (const type of objectTypes) {
      for (const dir of await this.objectFolders(repo, type)) {
        for (const entry of (await this.index.entries(dir)).values()) {
          bytes += entry.size;
          objects[type]++;
          if (type === 'snapshots' && (newestSnapshotMs === undefined || entry.mtimeMs > newestSnapshotMs)) {
            newestSnapshotMs = entry.mtimeMs;
          }
        }
      }
    }
    return { bytes, objects, newestSnapshotMs };
  }

  async close(): Promise<void> {
    try {
      await saveIndex(this.layout.stateDir(), this.layout.root, this.index, this.dirMode);
    } catch (err) {
      this.logger?.warn({ err }, 'saving the object index failed; it will be rebuilt from the folders');
    }
  }

  /** The folders holding objects of a type: the type folder, or data's fan-out folders. */
  private async objectFolders(repo: RepoPath, type: ObjectType): Promise<string[]> {
    const typeDir = this.layout.typeDir(repo, type);
    if (type !== 'data') return [typeDir];
    return (await readdirOrEmpty(typeDir))
      .filter((sub) => sub.isDirectory() && /^[0-9a-f]{2}$/.test(sub.name))
      .map((sub) => path.join(typeDir, sub.name));
  }

  private async openTemp(ref: ObjectRef, dir: string, temp: string): Promise<FileHandle> {
    try {
      return await open(temp, 'wx', this.fileMode);
    } catch (err) {
      if (!isMissing(err)) throw translateFsError(err);
    }
    // The folder is missing: fine for a data fan-out folder of an existing repo, not otherwise.
    if (!(await this.repoExists(ref.repo))) throw new RatchetError('NOT_FOUND', 'no such repository');
    try {
      await mkdir(dir, { recursive: true, mode: this.dirMode });
      return await open(temp, 'wx', this.fileMode);
    } catch (err) {
      throw translateFsError(err);
    }
  }

  /** Moves the finished temp file into place without replacing anything; false when identical content was there. */
  private async publish(temp: string, target: string, digest: string, verified: boolean): Promise<boolean> {
    try {
      await link(temp, target);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return this.resolveExisting(temp, target, digest, verified);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: check, then rename (not atomic against a racing writer).
      if ((await statOrUndefined(target)) !== undefined)
        return this.resolveExisting(temp, target, digest, verified);
      await rename(temp, target);
    }
    await fsyncDir(path.dirname(target));
    return true;
  }

  private async resolveExisting(
    temp: string,
    target: string,
    digest: string,
    verified: boolean,
  ): Promise<boolean> {
    const existing = await sha256OfFile(target);
    if (existing === digest) return false;
    if (!verified)
      throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
    // The new content matches the name and the stored one does not: the stored copy is damaged.
    this.logger?.warn({ file: target }, 'replacing a stored object whose content did not match its name');
    await rename(temp, target);
    await fsyncDir(path.dirname(target));
    return true;
  }

  private async mkdirIfMissing(dir: string): Promise<void> {
    try {
      await mkdir(dir, { mode: this.dirMode });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
  }

  private async sweepTemporaryFiles(dir: string, olderThan: number): Promise<void> {
    for (const entry of await readdirOrEmpty(dir)) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await this.sweepTemporaryFiles(full, olderThan);
      } else if (entry.name.startsWith(tempPrefix)) {
        const info = await statOrUndefined(full);
        if (info && info.mtimeMs < olderThan) {
          await unlink(full).catch(() => undefined);
          this.logger?.info({ file: full }, 'removed a temporary file left by an interrupted upload');
        }
      }
    }
  }
}

/** Streams the body into the file in batches, hashing as it goes. */
async function writeHashed(
  handle: FileHandle,
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    hash.update(chunk);
    size += chunk.length;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= writeBatchBytes) {
      await writeAll(handle, pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
  }
  signal?.throwIfAborted();
  if (pending.length > 0) await writeAll(handle, pending, pendingBytes);
  return { digest: hash.digest('hex'), size };
}

/** writev until every byte is written: the kernel may accept a batch only in part. */
async function writeAll(handle: FileHandle, buffers: Uint8Array[], total: number): Promise<void> {
  let remaining = buffers;
  let left = total;
  for (;;) {
    const { bytesWritten } = await handle.writev(remaining);
    left -= bytesWritten;
    if (left <= 0) return;
    let skip = bytesWritten;
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

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}
