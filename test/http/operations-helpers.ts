/**
 * Helpers shared by the operations tests (health, metrics, quotas, limits, systemd): small
 * filesystems mounted by the test, walking a data folder, Prometheus text parsing, raw HTTP/1.1
 * over a socket, and users in an htpasswd file.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import type { HtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { tempPrefix } from '../../src/storage/fs/layout.ts';
import type { RawResponse } from '../helpers/http.ts';

const run = promisify(execFile);

export const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Polls the check until it holds; fails after the timeout. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes an htpasswd file (bcrypt cost 4, quick) with the users and their passwords. */
export async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const lines = await Promise.all(
    Object.entries(users).map(async ([user, password]) => `${user}:${await hashPassword(password, 4)}`),
  );
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

/** The real htpasswd authenticator over a fresh file with the users. */
export async function htpasswdAuth(file: string, users: Record<string, string>): Promise<HtpasswdAuth> {
  await writeHtpasswd(file, users);
  return startHtpasswdAuth({ file, logger: silentLogger(), watch: false, pollIntervalMs: 0 });
}

/** Every regular file below dir, with its size and mtime. */
export async function filesUnder(dir: string): Promise<{ file: string; size: number; mtimeMs: number }[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
  return Promise.all(
    files.map(async (file) => {
      const info = await stat(file);
      return { file, size: info.size, mtimeMs: info.mtimeMs };
    }),
  );
}

/** Leftover in-progress uploads anywhere below dir. */
export async function tempFilesUnder(dir: string): Promise<string[]> {
  return (await filesUnder(dir))
    .map((f) => f.file)
    .filter((file) => path.basename(file).startsWith(tempPrefix));
}

// ---------------------------------------------------------------------------------------------
// Mounting small filesystems (needs root, which CI has).

/** Fails with a clear message when the test cannot mount filesystems. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'this test mounts a tmpfs and must run as root (CI does); run the suite as root, it is not skipped',
    );
  }
}

export async function sh(command: string, args: string[]): Promise<void> {
  try {
    await run(command, args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`${command} ${args.join(' ')} failed: ${stderr}`, { cause: err });
  }
}

// Mounts still in place; a test that fails without reaching its finally (a request that never
// ends, the runner giving up) must not leave them behind on the machine.
const mounted = new Set<string>();
let exitHookInstalled = false;

/** Mounts a tmpfs of the given size (e.g. "3m") on dir. */
export async function mountTmpfs(dir: string, size: string): Promise<void> {
  requireRoot();
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const left of mounted) spawnSync('umount', ['-l', left]);
    });
  }
  await sh('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  mounted.add(dir);
}

/** Switches a mounted tmpfs between read-only and read-write. */
export async function remount(dir: string, mode: 'ro' | 'rw'): Promise<void> {
  await sh('mount', ['-o', `remount,${mode}`, dir]);
}

/** Unmounts dir; lazily if it is still busy, so a failed test never leaves a mount behind. */
export async function unmount(dir: string): Promise<void> {
  try {
    await sh('umount', [dir]);
  } catch {
    await sh('umount', ['-l', dir]);
  }
  mounted.delete(dir);
}

/** An upload (POST with Content-Length) that fails instead of waiting forever for an answer. */
export function uploadWithin(
  base: string,
  urlPath: string,
  body: Buffer,
  timeoutMs = 20_000,
): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: urlPath,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to POST ${urlPath} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the sample lines of the Prometheus text exposition format. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ''] = (pair[2] ?? '').replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const text = match[3] ?? '';
    const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
    samples.push({ name: match[1] ?? '', labels, value });
  }
  return samples;
}

/** The value of the sample with exactly these labels, or undefined when there is none. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.find(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === wanted.length &&
      wanted.every(([key, value]) => s.labels[key] === value),
  );
  return found?.value;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 exchanges over a socket, for bodies node:http would not send as needed.

export interface RawExchange {
  /** The response status, 0 when none arrived. */
  readonly status: number;
  /** Everything received. */
  readonly text: string;
  /** How many body parts were written before the response arrived (or all of them). */
  readonly partsSent: number;
}

/**
 * Writes the request head, then the body parts one by one (yielding between them), stopping as
 * soon as a response starts to arrive. Resolves once the response head is complete and, when
 * `waitForClose`, the connection has closed. Bounded by timeoutMs.
 */
export function rawExchange(
  port: number,
  head: string,
  parts: readonly Buffer[],
  options: { waitForClose?: boolean; timeoutMs?: number } = {},
): Promise<RawExchange> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let text = '';
    let partsSent = 0;
    let finished = false;
    const socket = connect(port, '127.0.0.1');
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, text, partsSent });
    };
    const timer = setTimeout(() => {
      if (text.includes('\r\n\r\n')) finish();
      else {
        finished = true;
        socket.destroy();
        reject(new Error(`no response within ${timeoutMs} ms; received: ${JSON.stringify(text)}`));
      }
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!options.waitForClose && text.includes('\r\n\r\n')) finish();
    });
    socket.on('close', finish);
    // A server that answered and closed may reset the connection under our remaining writes.
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      void (async () => {
        const write = (data: Buffer | string): Promise<void> =>
          new Promise((done) => socket.write(data, () => done()));
        await write(head);
        for (const part of parts) {
          if (text !== '' || socket.destroyed) return;
          await write(part);
          partsSent++;
          await new Promise((done) => setTimeout(done, 5));
        }
      })();
    });
  });
}

/** One chunk of a chunked request body. */
export function chunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
}

/** The last chunk of a chunked request body. */
export const lastChunk = Buffer.from('0\r\n\r\n');
