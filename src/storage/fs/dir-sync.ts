/**
 * Folder fsyncs after publishing objects, with two savings:
 *
 * - Group commit: uploads that finish in the same folder while an fsync of it is running share
 *   the next fsync, which starts after the running one ends (so after each of their link(2)
 *   calls). Nobody is answered before an fsync that began after its own name was created.
 * - Open folder descriptors are kept (up to `maxOpenFolders`, least recently used closed first), saving
 *   an open and a close per upload. Before each use the path is checked to still be the same
 *   folder (device and inode), so a folder removed and created again is opened afresh.
 */
import { closeSync, fstatSync } from 'node:fs';
import { closeFd, fsyncFd, openFd } from './fast-fs.ts';
import type { SyncGuard } from './fast-fs.ts';

const maxOpenFolders = 256;

interface OpenFolder {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  /** fsyncs running on this descriptor; it is closed only when none is. */
  busy: number;
  evicted: boolean;
}

interface FolderState {
  running: Promise<void> | undefined;
  queued: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;
}

export class DirSyncer {
  private readonly open = new Map<string, OpenFolder>();
  private readonly states = new Map<string, FolderState>();
  private readonly guard: SyncGuard;
  private readonly fsync: (fd: number) => Promise<void>;
  private closed = false;

  /** `fsync` flushes one descriptor (tests wrap the real one to count and order the calls). */
  constructor(guard: SyncGuard, fsync: (fd: number) => Promise<void> = fsyncFd) {
    this.guard = guard;
    this.fsync = fsync;
  }

  /** Resolves once an fsync of the folder that started after this call has succeeded. */
  sync(dir: string): Promise<void> {
    let state = this.states.get(dir);
    if (state === undefined) {
      state = { running: undefined, queued: undefined };
      this.states.set(dir, state);
    }
    if (state.running === undefined) return this.start(dir, state);
    if (state.queued === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      state.queued = { promise, resolve, reject };
    }
    return state.queued.promise;
  }

  /** Closes every kept descriptor (those in use are closed when their fsync ends). */
  close(): void {
    this.closed = true;
    for (const [dir, folder] of this.open) this.release(dir, folder);
  }

  private start(dir: string, state: FolderState): Promise<void> {
    const round = this.fsyncOnce(dir).finally(() => {
      state.running = undefined;
      const queued = state.queued;
      state.queued = undefined;
      if (queued !== undefined) this.start(dir, state).then(queued.resolve, queued.reject);
      else this.states.delete(dir);
    });
    state.running = round;
    return round;
  }

  private async fsyncOnce(dir: string): Promise<void> {
    const folder = await this.acquire(dir);
    try {
      await this.fsync(folder.fd);
    } finally {
      folder.busy--;
      if (folder.evicted && folder.busy === 0) closeQuietly(folder.fd);
    }
  }

  /**
   * A descriptor of the folder now at `dir` (the kept one if it is still that folder), already
   * counted as busy so that no eviction closes it before the caller's fsync ends.
   */
  private async acquire(dir: string): Promise<OpenFolder> {
    const kept = this.open.get(dir);
    if (kept !== undefined) {
      // A stat of a folder whose inode is cached is a few µs; it does not wait on the folder's lock.
      const now = await this.guard.stat(dir).catch(() => undefined);
      const same = now !== undefined && now.ino === kept.ino && now.dev === kept.dev;
      if (this.open.get(dir) !== kept) return this.acquire(dir); // replaced while we waited
      this.open.delete(dir);
      if (same) {
        this.open.set(dir, kept); // most recently used last
        kept.busy++;
        return kept;
      }
      this.release(dir, kept);
    }
    const fd = await openFd(dir, 'r');
    let info;
    try {
      info = fstatSync(fd);
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
    const folder: OpenFolder = { fd, dev: info.dev, ino: info.ino, busy: 1, evicted: false };
    if (this.closed) {
      folder.evicted = true; // used once, then closed
      return folder;
    }
    const other = this.open.get(dir);
    if (other !== undefined) this.release(dir, other);
    this.open.set(dir, folder);
    if (this.open.size > maxOpenFolders) {
      for (const [oldDir, old] of this.open) {
        if (this.open.size <= maxOpenFolders) break;
        if (old !== folder) this.release(oldDir, old);
      }
    }
    return folder;
  }

  private release(dir: string, folder: OpenFolder): void {
    if (this.open.get(dir) === folder) this.open.delete(dir);
    folder.evicted = true;
    if (folder.busy === 0) closeQuietly(folder.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing a folder descriptor cannot lose data; nothing to report.
  }
}
