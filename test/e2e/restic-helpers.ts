/**
 * Helpers for the end-to-end tests with the real `restic` binary: running restic with an isolated
 * environment and a transcript, generating a deterministic file tree, and comparing two trees
 * byte for byte.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import type { Cipher } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from '../helpers/wait.ts';

/** The restic client under test: Debian's (0.14) by default; run-tests.mjs also runs the suite with 0.18. */
export const resticBin = process.env.RESTIC_BIN ?? 'restic';

/** Default time one restic command may take before it is killed. */
export const defaultResticTimeoutMs = 120_000;

export interface ResticResult {
  /** The command as shown in the transcript (the cache folder abbreviated as $CACHE). */
  readonly command: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

export interface ResticRunOptions {
  /** Working folder of the restic process. */
  cwd?: string;
  /** Kill restic after this long (default 120 s). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Where the transcript goes: t.diagnostic inside a test, console.log elsewhere. */
export type TranscriptSink = (line: string) => void;

/**
 * Runs restic against one repository with its own cache folder and HOME, the password in
 * RESTIC_PASSWORD, and nothing inherited from the caller's RESTIC_* variables.
 */
export class Restic {
  readonly repo: string;
  readonly password: string;
  readonly cacheDir: string;
  readonly home: string;
  private readonly sink: TranscriptSink;

  constructor(options: {
    repo: string;
    password: string;
    cacheDir: string;
    home: string;
    sink?: TranscriptSink;
  }) {
    this.repo = options.repo;
    this.password = options.password;
    this.cacheDir = options.cacheDir;
    this.home = options.home;
    this.sink = options.sink ?? ((line) => console.log(line));
  }

  /** The same repository and cache, with the transcript going elsewhere (e.g. the current test). */
  withSink(sink: TranscriptSink): Restic {
    return new Restic({ ...this.settings(), sink });
  }

  private settings(): {
    repo: string;
    password: string;
    cacheDir: string;
    home: string;
    sink: TranscriptSink;
  } {
    const { repo, password, cacheDir, home, sink } = this;
    return { repo, password, cacheDir, home, sink };
  }

  /** Starts `restic -r <repo> --cache-dir <cache> ...args` and returns the process and its display form. */
  start(
    args: string[],
    options: ResticRunOptions = {},
  ): { child: ChildProcessWithoutNullStreams; command: string } {
    const fullArgs = ['-r', this.repo, '--cache-dir', this.cacheDir, ...args];
    const command = maskPasswords(
      ['restic', ...fullArgs.map((arg) => (arg === this.cacheDir ? '$CACHE' : arg))].join(' '),
    );
    this.note(`$ ${command}`);
    const child = spawn(resticBin, fullArgs, {
      cwd: options.cwd ?? this.home,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: this.home,
        TMPDIR: this.home,
        RESTIC_PASSWORD: this.password,
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? defaultResticTimeoutMs,
      killSignal: 'SIGKILL',
    });
    return { child, command };
  }

  /** Writes a line to the transcript, with passwords in URLs (`//user:password@`) masked. */
  note(line: string): void {
    this.sink(maskPasswords(line));
  }

  /** Runs `restic snapshots --json`, asserts the count when given, and notes the snapshots. */
  async snapshots(expected?: number, label = ''): Promise<SnapshotJson[]> {
    const snapshots = await this.json<SnapshotJson[]>(['snapshots']);
    if (expected !== undefined) assert.equal(snapshots.length, expected, JSON.stringify(snapshots));
    const ids = snapshots.map((snapshot) => snapshot.short_id).join(', ');
    const count = `${snapshots.length} snapshot${snapshots.length === 1 ? '' : 's'}`;
    this.note(`  snapshots --json: ${label}${count}${ids === '' ? '' : ` ${ids}`}`);
    return snapshots;
  }

  /** Runs `restic -r <repo> --cache-dir <cache> ...args` and resolves with its outcome (never rejects on exit code). */
  async run(args: string[], options: ResticRunOptions = {}): Promise<ResticResult> {
    const started = performance.now();
    const { child, command } = this.start(args, options);
    child.stdin.end();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
    });
    const durationMs = performance.now() - started;
    const result: ResticResult = { command, code, signal, stdout, stderr, durationMs };
    this.note(`  -> exit ${code ?? signal} in ${(durationMs / 1000).toFixed(1)}s`);
    return result;
  }

  /** Runs restic, asserts exit code 0, and logs the last lines of its output. */
  async ok(args: string[], options: ResticRunOptions & { show?: number } = {}): Promise<ResticResult> {
    const result = await this.run(args, options);
    assert.equal(result.code, 0, describeFailure(result));
    this.showTail(result.stdout, options.show ?? 4);
    return result;
  }

  /** Runs restic with --json, asserts exit code 0, and parses stdout. */
  async json<T>(args: string[], options: ResticRunOptions = {}): Promise<T> {
    const result = await this.run([...args, '--json'], options);
    assert.equal(result.code, 0, describeFailure(result));
    try {
      return JSON.parse(result.stdout) as T;
    } catch (err) {
      assert.fail(`${result.command} printed no valid JSON (${(err as Error).message}):\n${result.stdout}`);
    }
  }

  /** Runs restic, asserts a non-zero exit code, and logs the last lines of its stderr. */
  async fails(args: string[], options: ResticRunOptions & { show?: number } = {}): Promise<ResticResult> {
    const result = await this.run(args, options);
    assert.notEqual(result.code, 0, `${result.command} was expected to fail:\n${result.stdout}`);
    assert.equal(result.signal, null, describeFailure(result));
    this.showTail(result.stdout, options.show ?? 4);
    const retries = result.stderr.split('\n').filter((line) => /retrying after/.test(line)).length;
    const lines = uniqueLines(result.stderr.replace(/retrying after [\d.]+[mµn]?s/g, 'retrying after …'))
      .split('\n')
      .filter((line) => /error|fatal|forbidden|\b[45]\d\d\b/i.test(line));
    this.showTail(lines.slice(0, options.show ?? 4).join('\n'), options.show ?? 4, 'stderr: ');
    if (retries > 0) this.note(`  (restic retried ${retries} times)`);
    return result;
  }

  private showTail(text: string, count: number, prefix = ''): void {
    if (count <= 0) return;
    const lines = text
      .split('\n')
      .map((line) => line.trimEnd())
      .filter((line) => line.length > 0);
    for (const line of lines.slice(-count)) this.note(`  ${prefix}${line}`);
  }
}

/**
 * Leaves a lock behind as a crashed restic would: starts `restic backup --stdin`, which takes a
 * lock and then waits for its input, waits until a new lock file shows up in the repository's
 * locks folder on disk, and kills restic with SIGKILL. Returns the names of the new lock files.
 */
export async function leaveDeadLock(restic: Restic, locksDir: string, timeoutMs = 30_000): Promise<string[]> {
  const before = new Set(await listFiles(locksDir));
  const { child } = restic.start(['backup', '--stdin', '--stdin-filename', 'never-finished.txt']);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.resume();
  child.stdin.write('some input that never ends\n');
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let fresh: string[] = [];
  try {
    await waitFor(
      async () => {
        fresh = (await listFiles(locksDir)).filter(
          (name) => /^[0-9a-f]{64}$/.test(name) && !before.has(name),
        );
        if (fresh.length === 0 && child.exitCode !== null)
          assert.fail(`restic exited (${child.exitCode}) before it took a lock:\n${stderr}`);
        return fresh.length > 0;
      },
      `a lock file in ${locksDir}`,
      timeoutMs,
    );
    return fresh;
  } finally {
    child.kill('SIGKILL');
    await closed;
  }
}

/** A failure message with the exit status and the tail of both streams. */
export function describeFailure(result: ResticResult): string {
  const tail = (text: string): string => text.split('\n').slice(-40).join('\n');
  return (
    `${result.command}\nexit code ${result.code}, signal ${result.signal}, ` +
    `${(result.durationMs / 1000).toFixed(1)}s\n--- stderr ---\n${tail(result.stderr)}\n--- stdout ---\n${tail(result.stdout)}`
  );
}

/** Passwords in URLs (`//user:password@host`) replaced by `***`, for transcripts and messages. */
function maskPasswords(text: string): string {
  return text.replace(/\/\/([^:/@\s]+):[^@/\s]*@/g, '//$1:***@');
}

/** Repeated lines collapsed. */
function uniqueLines(text: string): string {
  return [...new Set(text.split('\n'))].join('\n');
}

/** The shape of `restic snapshots --json` entries this suite reads. */
export interface SnapshotJson {
  id: string;
  short_id: string;
  time: string;
  paths: string[];
  tree: string;
}

/** The shape of `restic key list --json` entries. */
export interface KeyJson {
  id: string;
  current: boolean;
  userName: string;
  hostName: string;
}

/**
 * A deterministic byte stream: the AES-256-CTR keystream under a key derived from the seed.
 * Incompressible, fast, and the same on every machine.
 */
export class SeededBytes {
  private readonly cipher: Cipher;

  constructor(seed: string) {
    const key = createHash('sha256').update(`ratchet-e2e:${seed}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  bytes(length: number): Buffer {
    return this.cipher.update(Buffer.alloc(length));
  }

  /** An integer in [0, bound). */
  int(bound: number): number {
    return this.bytes(4).readUInt32BE(0) % bound;
  }
}

export interface TreeSpec {
  /** Number and size of the large random files. */
  bigFiles: number;
  bigFileSize: number;
  /** Number of small files, spread over `dirs` × `subdirs` nested folders. */
  smallFiles: number;
  dirs: number;
  subdirs: number;
  /** Largest small file (sizes are uniform in [0, max]). */
  maxSmallSize: number;
}

export const fullTree: TreeSpec = {
  bigFiles: 3,
  bigFileSize: 8 * 1024 * 1024,
  smallFiles: 3000,
  dirs: 10,
  subdirs: 10,
  maxSmallSize: 8192,
};

/** A tree for the tests that are about something else than the amount of data. */
export const smallTree: TreeSpec = {
  bigFiles: 1,
  bigFileSize: 5 * 1024 * 1024,
  smallFiles: 300,
  dirs: 5,
  subdirs: 3,
  maxSmallSize: 4096,
};

export interface TreeStats {
  files: number;
  bytes: number;
}

/**
 * Writes a deterministic tree: large random files, a compressible file, thousands of small
 * files in nested folders, an empty file and folder, a duplicate, a non-ASCII name, an
 * executable, and a relative symlink.
 */
export async function generateTree(root: string, seed: string, spec: TreeSpec): Promise<TreeStats> {
  const random = new SeededBytes(seed);
  let files = 0;
  let bytes = 0;
  const put = async (relative: string, content: Buffer, mode = 0o644): Promise<void> => {
    const file = path.join(root, relative);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    await chmod(file, mode);
    files += 1;
    bytes += content.length;
  };

  for (let i = 0; i < spec.bigFiles; i++) {
    await put(`big/blob-${i}.bin`, random.bytes(spec.bigFileSize));
  }
  const line = 'the quick brown fox jumps over the lazy dog, restic over ratchet\n';
  await put('big/compressible.txt', Buffer.from(line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))));

  const smallContents: Buffer[] = [];
  for (let i = 0; i < spec.smallFiles; i++) {
    const dir = `d${String(i % spec.dirs).padStart(2, '0')}`;
    const subdir = `s${String(Math.floor(i / spec.dirs) % spec.subdirs).padStart(2, '0')}`;
    const content = random.bytes(random.int(spec.maxSmallSize + 1));
    smallContents.push(content);
    await put(`small/${dir}/${subdir}/file-${String(i).padStart(5, '0')}.dat`, content);
  }

  await put('misc/empty-file', Buffer.alloc(0));
  await mkdir(path.join(root, 'misc', 'empty-folder'), { recursive: true });
  await put('misc/duplicate-of-first-small.dat', smallContents[0] ?? Buffer.alloc(0));
  await put('misc/name with spaces, ümlaut & 文件.txt', Buffer.from('non-ascii name\n'));
  await put('misc/run.sh', Buffer.from('#!/bin/sh\necho ratchet\n'), 0o755);
  await symlink('../big/blob-0.bin', path.join(root, 'misc', 'link-to-blob'));
  return { files, bytes };
}

/**
 * Changes a generated tree for a second backup: rewrites a region of one large file, appends to
 * another, edits and removes small files, and adds a new folder. Returns what was touched.
 */
export async function modifyTree(root: string, seed: string, spec: TreeSpec): Promise<string[]> {
  const random = new SeededBytes(`${seed}:modify`);
  const touched: string[] = [];
  if (spec.bigFiles > 0) {
    const handle = await open(path.join(root, 'big/blob-0.bin'), 'r+');
    try {
      await handle.write(random.bytes(1024 * 1024), 0, 1024 * 1024, Math.floor(spec.bigFileSize / 3));
    } finally {
      await handle.close();
    }
    touched.push('big/blob-0.bin (1 MiB rewritten)');
  }
  if (spec.bigFiles > 1) {
    const handle = await open(path.join(root, 'big/blob-1.bin'), 'a');
    try {
      await handle.write(random.bytes(3 * 1024 * 1024 + 17));
    } finally {
      await handle.close();
    }
    touched.push('big/blob-1.bin (3 MiB appended)');
  }
  const smallDir = path.join(root, 'small', 'd00', 's00');
  const names = (await readdir(smallDir)).sort();
  const [edited, ...rest] = names;
  if (edited !== undefined) {
    await writeFile(path.join(smallDir, edited), random.bytes(777));
    touched.push(`small/d00/s00/${edited} (rewritten)`);
  }
  for (const name of rest.slice(0, 10)) await rm(path.join(smallDir, name));
  touched.push(`${Math.min(rest.length, 10)} small files removed`);
  for (let i = 0; i < 200; i++) {
    const file = path.join(root, 'added', `a${i % 4}`, `new-${i}.dat`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, random.bytes(random.int(16 * 1024)));
  }
  touched.push('200 files added under added/');
  return touched;
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

export interface Entry {
  kind: EntryKind;
  mode: number;
  size: bigint;
  mtimeNs: bigint;
}

/** Every entry under a folder, keyed by relative path ('/'-separated), the root itself excluded. */
export async function walkTree(root: string): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const visit = async (relative: string): Promise<void> => {
    const names = (await readdir(path.join(root, relative))).sort();
    for (const name of names) {
      const childRelative = relative === '' ? name : `${relative}/${name}`;
      const stats = await lstat(path.join(root, childRelative), { bigint: true });
      const kind: EntryKind = stats.isFile()
        ? 'file'
        : stats.isDirectory()
          ? 'dir'
          : stats.isSymbolicLink()
            ? 'symlink'
            : 'other';
      entries.set(childRelative, {
        kind,
        mode: Number(stats.mode & 0o7777n),
        size: stats.size,
        mtimeNs: stats.mtimeNs,
      });
      if (kind === 'dir') await visit(childRelative);
    }
  };
  await visit('');
  return entries;
}

/** True when two files have identical content, read in chunks so memory stays flat. */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const size = 1024 * 1024;
    const bufA = Buffer.alloc(size);
    const bufB = Buffer.alloc(size);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(bufA, 0, size, null), fb.read(bufB, 0, size, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!bufA.subarray(0, ra.bytesRead).equals(bufB.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Asserts that two trees are identical: the same paths and kinds, file content byte for byte,
 * permission bits, file modification times, and symlink targets. Returns the number of files
 * and bytes compared.
 */
export async function assertSameTree(expectedRoot: string, actualRoot: string): Promise<TreeStats> {
  const [expected, actual] = await Promise.all([walkTree(expectedRoot), walkTree(actualRoot)]);
  const listing = (tree: Map<string, Entry>): string[] =>
    [...tree].map(([name, entry]) => `${entry.kind} ${name}`);
  const missing = [...expected.keys()].filter((name) => !actual.has(name));
  const extra = [...actual.keys()].filter((name) => !expected.has(name));
  assert.deepEqual(
    { missing: missing.slice(0, 20), extra: extra.slice(0, 20) },
    { missing: [], extra: [] },
    `${actualRoot} differs from ${expectedRoot} in its entries`,
  );
  assert.deepEqual(listing(actual), listing(expected), 'entry kinds differ');

  let files = 0;
  let bytes = 0;
  for (const [name, want] of expected) {
    const got = actual.get(name);
    assert.ok(got);
    const where = `${name} (in ${actualRoot})`;
    if (want.kind === 'symlink') {
      assert.equal(
        await readlink(path.join(actualRoot, name)),
        await readlink(path.join(expectedRoot, name)),
        `symlink target of ${where}`,
      );
      continue;
    }
    assert.equal(got.mode.toString(8), want.mode.toString(8), `permission bits of ${where}`);
    if (want.kind !== 'file') continue;
    assert.equal(got.size, want.size, `size of ${where}`);
    assert.equal(got.mtimeNs, want.mtimeNs, `modification time of ${where}`);
    assert.ok(
      await sameContent(path.join(expectedRoot, name), path.join(actualRoot, name)),
      `content of ${where}`,
    );
    files += 1;
    bytes += Number(want.size);
  }
  return { files, bytes };
}

/** Files (not folders) under a folder, recursively, as relative paths. */
export async function listFiles(root: string): Promise<string[]> {
  try {
    const tree = await walkTree(root);
    return [...tree].filter(([, entry]) => entry.kind !== 'dir').map(([name]) => name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Mebibytes, for the transcript. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
