/** Starts the real `ratchet` command as a child process on a loopback port, for black-box tests. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The `ratchet` command's entry point, run through tsx. */
export const cliEntry = path.join(projectRoot, 'src', 'cli', 'main.ts');

export interface RatchetProcess {
  /** Base URL such as http://127.0.0.1:41234 (https:// with --tls; no trailing slash). */
  readonly url: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** A fresh temporary folder, removed by the returned cleanup function. */
export async function makeTempDir(
  prefix = 'ratchet-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs the test in a fresh temporary folder, which is removed afterwards whether the test passed or not. */
export async function withTempDir<T>(test: (dir: string) => Promise<T>, prefix?: string): Promise<T> {
  const { dir, cleanup } = await makeTempDir(prefix);
  try {
    return await test(dir);
  } finally {
    await cleanup();
  }
}

/**
 * Runs the ratchet command with the given arguments and `input` on stdin, no server expected, to
 * its end (exit and closed output): exit code and output.
 */
export async function runRatchet(
  args: string[],
  input = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], { cwd: projectRoot });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * Starts `ratchet --listen 127.0.0.1:0 --path <dataDir> ...args` and resolves once it serves.
 * The caller passes --no-auth (or credentials setup) in args.
 */
export async function startRatchet(dataDir: string, args: string[] = []): Promise<RatchetProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', cliEntry, '--listen', '127.0.0.1:0', '--path', dataDir, ...args],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ratchet did not start in time: ${stderr}`)), 20_000);
    child.stdout.on('data', () => {
      const match = /on (https?:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ratchet exited with ${code}: ${stderr}`));
    });
  });
  return {
    url,
    dataDir,
    child,
    stderr: () => stderr,
    stdout: () => stdout,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit') as Promise<[number | null]>;
      child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

/**
 * Runs the test against `ratchet` started as startRatchet does, stops it whatever happened, and
 * then insists on a clean exit: a server that fails its SIGTERM shutdown fails the test too.
 */
export async function withRatchet(
  dataDir: string,
  args: string[],
  test: (server: RatchetProcess) => Promise<void>,
): Promise<void> {
  const server = await startRatchet(dataDir, args);
  let exit: number | null;
  try {
    await test(server);
  } finally {
    exit = await server.stop();
  }
  assert.equal(exit, 0, 'a clean exit on SIGTERM');
}
