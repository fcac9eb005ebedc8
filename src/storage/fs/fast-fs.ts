/**
 * The few filesystem calls the hot paths make, on plain file descriptors through node:fs's
 * callback API. Measured here (2 cores, Node 20): a `fs/promises` FileHandle open+close costs the
 * event loop about 25 µs, the callback API about 10 µs, and each call that goes through libuv's
 * thread pool costs 10–12 µs of the loop's time however little the kernel does; a synchronous
 * stat or open of a cached inode costs 2–3 µs. See docs/benchmarks.md.
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMissing } from './fs-errors.ts';

type Callback<T> = (err: NodeJS.ErrnoException | null, value: T) => void;

function call<T>(start: (done: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((err, value) => {
      if (err) reject(err);
      else resolve(value);
    });
  });
}

export const openFd = (file: string, flags: string | number, mode?: number): Promise<number> =>
  call<number>((done) => fs.open(file, flags, mode, done));

export const closeFd = (fd: number): Promise<void> =>
  call<void>((done) => fs.close(fd, (err) => done(err ?? null, undefined)));

export const fsyncFd = (fd: number): Promise<void> =>
  call<void>((done) => fs.fsync(fd, (err) => done(err ?? null, undefined)));

export const fdatasyncFd = (fd: number): Promise<void> =>
  call<void>((done) => fs.fdatasync(fd, (err) => done(err ?? null, undefined)));

export const fstatFd = (fd: number): Promise<fs.Stats> => call<fs.Stats>((done) => fs.fstat(fd, done));

export const statPath = (file: string): Promise<fs.Stats> => call<fs.Stats>((done) => fs.stat(file, done));

export const lstatPath = (file: string): Promise<fs.Stats> => call<fs.Stats>((done) => fs.lstat(file, done));

export const linkPath = (from: string, to: string): Promise<void> =>
  call<void>((done) => fs.link(from, to, (err) => done(err ?? null, undefined)));

export const unlinkPath = (file: string): Promise<void> =>
  call<void>((done) => fs.unlink(file, (err) => done(err ?? null, undefined)));

/** The promise's value, or undefined when it fails because the path or one of its folders is missing. */
export async function unlessMissing<T>(pending: Promise<T>): Promise<T | undefined> {
  try {
    return await pending;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** stat(2) through the thread pool; undefined when the path or one of its folders is missing. */
export const statOrUndefined = (file: string): Promise<fs.Stats | undefined> => unlessMissing(statPath(file));

/** lstat(2) through the thread pool (a link is reported, not followed); undefined when missing. */
export const lstatOrUndefined = (file: string): Promise<fs.Stats | undefined> =>
  unlessMissing(lstatPath(file));

/** pwritev of the buffers at the position; resolves with the bytes written (maybe fewer). */
export const writevFd = (
  fd: number,
  buffers: readonly NodeJS.ArrayBufferView[],
  position: number,
): Promise<number> =>
  call<number>((done) => fs.writev(fd, buffers, position, (err, written) => done(err, written)));

/** pread into the buffer at the position; resolves with the bytes read (0 at the end of the file). */
export const readFd = (
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> =>
  call<number>((done) => fs.read(fd, buffer, offset, length, position, (err, read) => done(err, read)));

/**
 * Decides whether metadata calls of the read paths (stat, open, fstat, close) run synchronously
 * on the event loop, which is 4–8 times cheaper for cached inodes, or through the thread pool.
 * The thread pool is used for `backoffMs` when synchronous calls turn slow:
 * - at once when one call, or one batch of calls, blocked the loop for 50 ms or more;
 * - when, within a second, at least 3 calls and 5 % of the calls were over 2 ms each
 *   (a cold disk, a network filesystem). The share matters: on a busy machine a few calls out
 *   of many thousands are slow only because the process was preempted during them.
 * Batches count with their size, so a slow batch of 256 stats weighs as 256 slow calls.
 * A call that never returns (a dead hard-mounted NFS server) cannot be rescued this way; turn
 * synchronous calls off (`--sync-fs-reads off`; automatic for network and FUSE filesystems).
 */
// A call is slow above this (plus 50 µs per call of a batch); one stall of stallMs is enough.
const slowMs = 2;
const stallMs = 50;

export class SyncGuard {
  private asyncUntil = 0;
  private windowStart = 0;
  private calls = 0;
  private slowCalls = 0;
  private readonly enabled: boolean;
  private readonly backoffMs: number;
  private readonly onSlow: ((ms: number) => void) | undefined;

  constructor(options: { enabled: boolean; backoffMs?: number; onSlow?: (ms: number) => void }) {
    this.enabled = options.enabled;
    this.backoffMs = options.backoffMs ?? 10_000;
    this.onSlow = options.onSlow;
  }

  /**
   * stat(2) of a path, synchronously while allowed, else through the thread pool; undefined
   * when the path or one of its folders does not exist.
   */
  stat(file: string): Promise<fs.Stats | undefined> {
    return this.statEither(file, false);
  }

  /** lstat(2) of a path (a symbolic link is reported as such, never followed), as stat does it. */
  lstat(file: string): Promise<fs.Stats | undefined> {
    return this.statEither(file, true);
  }

  /**
   * lstat(2) of each path in one synchronous batch while allowed (undefined for a missing one);
   * undefined when synchronous calls are not allowed now (the caller goes through the pool).
   * One batch costs no promise or event-loop turn: the read paths' check of an object's folders.
   */
  lstatBatchSync(files: readonly string[]): (fs.Stats | undefined)[] | undefined {
    const started = this.begin();
    if (started === undefined) return undefined;
    const infos: (fs.Stats | undefined)[] = [];
    try {
      for (const file of files) {
        try {
          infos.push(fs.lstatSync(file, { throwIfNoEntry: false }));
        } catch (err) {
          if (!isMissing(err)) throw err;
          infos.push(undefined);
        }
      }
    } finally {
      this.end(started, files.length);
    }
    return infos;
  }

  private async statEither(file: string, noFollow: boolean): Promise<fs.Stats | undefined> {
    const started = this.begin();
    if (started === undefined) return noFollow ? lstatOrUndefined(file) : statOrUndefined(file);
    let info: fs.Stats | undefined;
    try {
      info = noFollow
        ? fs.lstatSync(file, { throwIfNoEntry: false })
        : fs.statSync(file, { throwIfNoEntry: false });
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    this.end(started);
    return info;
  }

  /**
   * Runs one synchronous call while allowed, timed like the others (a throw too); undefined when
   * synchronous calls are not allowed now (the caller goes through the pool).
   */
  attempt<T>(call: () => T): { value: T } | undefined {
    const started = this.begin();
    if (started === undefined) return undefined;
    try {
      return { value: call() };
    } finally {
      this.end(started);
    }
  }

  /** The time now when synchronous calls are allowed, else undefined. */
  begin(): number | undefined {
    if (!this.enabled) return undefined;
    const now = performance.now();
    return now >= this.asyncUntil ? now : undefined;
  }

  /** Records how long `calls` synchronous calls started at `started` took. */
  end(started: number, calls = 1): void {
    const now = performance.now();
    const took = now - started;
    if (took >= stallMs) {
      this.backOff(now, took);
      return;
    }
    // The window is anchored at the start of the call, so a slow call is counted in it.
    if (started - this.windowStart > 1000) {
      this.windowStart = started;
      this.calls = 0;
      this.slowCalls = 0;
    }
    this.calls += calls;
    if (took <= slowMs + calls * 0.05) return;
    this.slowCalls += calls;
    if (this.slowCalls >= 3 && this.slowCalls * 20 >= this.calls) this.backOff(now, took);
  }

  private backOff(now: number, took: number): void {
    this.slowCalls = 0;
    this.calls = 0;
    this.asyncUntil = now + this.backoffMs;
    this.onSlow?.(took);
  }
}
