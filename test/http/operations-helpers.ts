/**
 * Helpers shared by the HTTP tests: a server started for a whole suite, small filesystems
 * mounted by the test, raw HTTP/1.1 over a socket, and users in an htpasswd file.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import type { HtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { basic, raw, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import type { TestServer } from '../helpers/in-process.ts';
import { makeTempDir } from '../helpers/ratchet-process.ts';

// Re-exported for test/http/operations.test.ts, which imports them from here.
export { basic } from '../helpers/http.ts';
export { filesUnder } from '../helpers/files.ts';
export { parseMetrics, sampleValue } from '../helpers/metrics.ts';
export type { Sample } from '../helpers/metrics.ts';

const run = promisify(execFile);

/** Writes an htpasswd file (bcrypt cost 4, quick) with the users and their passwords. */
export async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const lines = await Promise.all(
    Object.entries(users).map(async ([user, password]) => `${user}:${await hashPassword(password, 4)}`),
  );
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

/** The real htpasswd authenticator over a fresh file with the users. */
async function htpasswdAuth(file: string, users: Record<string, string>): Promise<HtpasswdAuth> {
  await writeHtpasswd(file, users);
  return startHtpasswdAuth({ file, logger: silentLogger(), watch: false, pollIntervalMs: 0 });
}

// ---------------------------------------------------------------------------------------------
// A server for a whole suite.

/** The server of a describe(); its fields can be read once the suite's before hooks ran. */
export interface SuiteServer {
  /** The first listener's base URL. */
  readonly url: string;
  /** Every listener's base URL, in the order of the config's listeners. */
  readonly urls: readonly string[];
  /** The folder the server stores repositories in. */
  readonly dataDir: string;
  /** A request as one of the suite's users, with restic's v2 Accept (and Content-Length for a body). */
  as(
    user: string,
    method: string,
    urlPath: string,
    body?: Buffer,
    headers?: Record<string, string | number>,
  ): Promise<RawResponse>;
}

/**
 * Registers the current suite's hooks: before, an in-process server over `<tmp>/data`; after,
 * its shutdown and the folder's removal. With users, authentication is on and their passwords
 * are checked by the real htpasswd authenticator.
 */
export function serverForSuite(
  options: { users?: Record<string, string>; config?: Partial<ServerConfig>; storage?: Storage } = {},
): SuiteServer {
  const { users, config = {}, storage } = options;
  let temp: { dir: string; cleanup: () => Promise<void> } | undefined;
  let auth: HtpasswdAuth | undefined;
  let server: TestServer | undefined;
  before(async () => {
    temp = await makeTempDir();
    if (users) auth = await htpasswdAuth(path.join(temp.dir, 'htpasswd'), users);
    const overrides = users ? { noAuth: false, ...config } : config;
    server = await startTestServer(path.join(temp.dir, 'data'), overrides, storage, auth);
  });
  after(async () => {
    await server?.close();
    await auth?.close();
    await temp?.cleanup();
  });
  const running = (): TestServer => {
    assert.ok(server, 'the suite server is running');
    return server;
  };
  return {
    get url() {
      return running().url;
    },
    get urls() {
      return running().urls;
    },
    get dataDir() {
      assert.ok(temp, 'the suite server is running');
      return path.join(temp.dir, 'data');
    },
    as: (user, method, urlPath, body, headers = {}) =>
      raw(running().url, method, urlPath, {
        headers: {
          Authorization: basic(user, users?.[user] ?? ''),
          Accept: v2,
          ...(body === undefined ? {} : { 'Content-Length': body.length }),
          ...headers,
        },
        body,
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Mounting small filesystems (needs root, which CI has).

/** Fails with a clear message when the test cannot mount filesystems. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'this test mounts a filesystem (tmpfs, bindfs) and must run as root (CI does); run the suite as root, it is not skipped',
    );
  }
}

async function sh(command: string, args: string[]): Promise<void> {
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

/** Lazily unmounts whatever a test left mounted when the process exits. */
function unmountAtExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const left of mounted) spawnSync('umount', ['-l', left]);
  });
}

/** Mounts a tmpfs of the given size (e.g. "3m") on dir, with at most `inodes` files and folders. */
async function mountTmpfs(dir: string, size: string, inodes?: number): Promise<void> {
  requireRoot();
  unmountAtExit();
  const limit = inodes === undefined ? '' : `,nr_inodes=${inodes}`;
  await sh('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700${limit}`, 'tmpfs', dir]);
  mounted.add(dir);
}

/** Mounts `source` on `dir` through bindfs: a FUSE filesystem (Debian package bindfs). */
export async function mountBindfs(source: string, dir: string): Promise<void> {
  requireRoot();
  unmountAtExit();
  await sh('bindfs', [source, dir]);
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

/** Runs the test on a fresh tmpfs of the given size (e.g. "3m") and at most `inodes` inodes, unmounted and removed afterwards. */
export async function withTmpfs(
  size: string,
  test: (dir: string) => Promise<void>,
  inodes?: number,
): Promise<void> {
  requireRoot();
  const { dir, cleanup } = await makeTempDir();
  try {
    await mountTmpfs(dir, size, inodes);
    try {
      await test(dir);
    } finally {
      await unmount(dir);
    }
  } finally {
    await cleanup();
  }
}

/**
 * Runs the test against an in-process server whose data folder is a fresh tmpfs of the given
 * size (e.g. "3m"); the server, the mount and the folder go afterwards, whatever happened.
 */
export async function withServerOnTmpfs(
  size: string,
  test: (server: TestServer, dir: string) => Promise<void>,
  inodes?: number,
): Promise<void> {
  await withTmpfs(
    size,
    async (dir) => {
      const server = await startTestServer(dir);
      try {
        await test(server, dir);
      } finally {
        await server.close();
      }
    },
    inodes,
  );
}

/** An upload (POST with Content-Length) that fails instead of waiting forever for an answer. */
export function uploadWithin(
  base: string,
  urlPath: string,
  body: Buffer,
  timeoutMs = 20_000,
): Promise<RawResponse> {
  return raw(base, 'POST', urlPath, {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
    body,
    timeoutMs,
  });
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
