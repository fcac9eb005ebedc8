/**
 * The one launcher of the real `ratchet` command for black-box and end-to-end tests: what users
 * run, `bin/ratchet` over the built `dist/` (scripts/run-tests.mjs builds it first). One-shot
 * commands run to their end (runRatchet); servers resolve once they have announced their
 * listeners (startRatchetServer, or startRatchet for the usual loopback port and data folder).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.ts';

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The `ratchet` command as installed: a shell launcher that runs dist/cli/main.js. */
const ratchetBin = path.join(projectRoot, 'bin', 'ratchet');

/** The command to spawn; fails clearly when the build is missing. */
export function ratchetCommand(): string {
  const built = path.join(projectRoot, 'dist', 'cli', 'main.js');
  if (!existsSync(built))
    throw new Error(
      `${built} is missing: run the tests through scripts/run-tests.mjs, or \`npm run build\` first`,
    );
  return ratchetBin;
}

/** A running `ratchet` child process and what it wrote so far. */
export interface RatchetChild {
  readonly child: ChildProcessWithoutNullStreams;
  /** Everything the process wrote to stdout so far. */
  readonly stdout: () => string;
  /** Everything the process wrote to stderr so far. */
  readonly stderr: () => string;
}

/** Spawns `ratchet ...args` from the project folder, collecting its output. */
export function spawnRatchet(args: readonly string[], env: NodeJS.ProcessEnv = process.env): RatchetChild {
  const child = spawn(ratchetCommand(), args, { cwd: projectRoot, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  return { child, stdout: () => output.stdout, stderr: () => output.stderr };
}

/**
 * Runs the ratchet command with the given arguments and `input` on stdin, no server expected, to
 * its end (exit and closed output): exit code and output.
 */
export async function runRatchet(
  args: string[],
  input = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, stdout, stderr } = spawnRatchet(args);
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: stdout(), stderr: stderr() };
}

export interface Listener {
  /** Base URL such as http://127.0.0.1:41234 (https:// with TLS, unix:<path>; no trailing slash). */
  readonly url: string;
  /** The role ceiling the server announced for the listener. */
  readonly maxRole: string;
}

export interface RatchetProcess extends RatchetChild {
  /** The first listener's base URL. */
  readonly url: string;
  /** Every listener, in the order the server announced them. */
  readonly listeners: readonly Listener[];
  /** The folder the server serves. */
  readonly dataDir: string;
  /** Sends SIGTERM (if still running) and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** What the server announces for each listener, one stdout line each. */
const announcement = /^ratchet \S+: serving (.+) on (\S+) \(at most (\S+)\)$/;

/** Starts `ratchet ...args` and resolves once it has announced `count` listeners. */
export async function startRatchetServer(
  args: readonly string[],
  count = 1,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RatchetProcess> {
  const started = spawnRatchet(args, options.env);
  const { child, stdout, stderr } = started;
  child.stdin.end();
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const announced = (): RegExpExecArray[] =>
    stdout()
      .split('\n')
      .map((line) => announcement.exec(line))
      .filter((match) => match !== null);
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(
            `ratchet exited (${child.exitCode ?? child.signalCode}) before serving:\n${stderr()}`,
          );
        return announced().length >= count;
      },
      `ratchet to announce ${count} listener(s)`,
      options.timeoutMs ?? 30_000,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stdout()}\n${stderr()}`, { cause: err });
  }
  const matches = announced();
  const listeners = matches.map((match) => ({ url: match[2] ?? '', maxRole: match[3] ?? '' }));
  return {
    ...started,
    url: listeners[0]?.url ?? '',
    listeners,
    dataDir: matches[0]?.[1] ?? '',
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

/**
 * Starts `ratchet --listen 127.0.0.1:0 --path <dataDir> ...args` and resolves once it serves.
 * The caller passes --no-auth (or credentials setup) in args.
 */
export async function startRatchet(dataDir: string, args: readonly string[] = []): Promise<RatchetProcess> {
  const server = await startRatchetServer(['--listen', '127.0.0.1:0', '--path', dataDir, ...args]);
  return { ...server, dataDir };
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
