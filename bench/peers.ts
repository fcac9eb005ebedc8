/** Starting and stopping the servers under test on loopback: Ratchet and its peers. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launcherNodeFlags } from './launcher.ts';

const host = '127.0.0.1';
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const startSeconds = 20;
const stopSeconds = 10;

/** A running server: where it listens, its process and data folder. */
export interface ServerHandle {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly baseUrl: string;
  readonly pid: number;
  readonly dataDir: string;
  /** True until the process exits. */
  alive(): boolean;
  /** The end of the server's log files, for error messages. */
  logTail(): string;
  /** SIGTERM, then SIGKILL if it has not exited in time. */
  stop(): Promise<void>;
  /** Data objects in its listing repository, where not the run's listObjects (S3 peers). */
  readonly listObjects?: number;
}

/** A server the bench knows how to run. */
export interface PeerSpec {
  readonly name: string;
  /** Debian packages it needs (installed by the bench when missing and running as root). */
  readonly debianPackages: readonly string[];
  /** What it does and skips on upload, for an honest comparison. */
  readonly behaviour: string;
  /** Why it cannot run here, or undefined when it can. */
  unavailable(): string | undefined;
  /** Starts it with data in `workDir/data` (already prepared) and logs in `workDir`. */
  start(workDir: string): Promise<ServerHandle>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tail(file: string, bytes = 2000): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '';
  }
}

/** One HTTP request to see whether the server answers at all. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ host, port, method: 'GET', path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(true));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Spawns a server, waits until it answers HTTP on `port`, and wraps it in a handle. `env`, when
 * given, is added to this process's environment for the server.
 */
export async function launch(
  name: string,
  command: string,
  args: readonly string[],
  workDir: string,
  port: number,
  dataDir: string,
  env?: Readonly<Record<string, string>>,
): Promise<ServerHandle> {
  const outLog = path.join(workDir, `${name}.out.log`);
  const errLog = path.join(workDir, `${name}.err.log`);
  const out = openSync(outLog, 'a');
  const err = openSync(errLog, 'a');
  const child = spawn(command, args, {
    cwd: workDir,
    stdio: ['ignore', out, err],
    env: env === undefined ? process.env : { ...process.env, ...env },
  });
  closeSync(out);
  closeSync(err);
  running.add(child);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      running.delete(child);
      resolve();
    });
    child.once('error', () => {
      exited = true;
      running.delete(child);
      resolve();
    });
  });
  const logTail = (): string => `${tail(outLog)}${tail(errLog)}`;
  const deadline = Date.now() + startSeconds * 1000;
  for (;;) {
    if (exited) throw new Error(`${name} exited during start-up:\n${logTail()}`);
    if (await probe(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer on port ${port} within ${startSeconds} s:\n${logTail()}`);
    }
    await sleep(100);
  }
  if (child.pid === undefined) throw new Error(`${name} has no pid`);
  const pid = child.pid;
  return {
    name,
    host,
    port,
    baseUrl: `http://${host}:${port}`,
    pid,
    dataDir,
    alive: () => !exited,
    logTail,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = sleep(stopSeconds * 1000).then(() => {
        if (!exited) child.kill('SIGKILL');
      });
      await Promise.race([exit, timer]);
      await exit;
    },
  };
}

/** The command line of a Ratchet server: `NODEFLAGS ENTRY ENTRYARGS --no-auth --listen ... --path DATADIR`. */
export function ratchetArgs(
  entry: string,
  port: number,
  dataDir: string,
  nodeFlags: readonly string[],
  entryArgs: readonly string[] = [],
): string[] {
  return [...nodeFlags, entry, ...entryArgs, '--no-auth', '--listen', `${host}:${port}`, '--path', dataDir];
}

/**
 * Ratchet itself, built to dist/, started as `node FLAGS dist/cli/main.js --no-auth ...` (FLAGS as
 * in bin/ratchet); another build (an earlier commit's dist/) runs under another name beside it.
 */
export function ratchetPeer(entry: string, name = 'ratchet', entryArgs: readonly string[] = []): PeerSpec {
  return {
    name,
    debianPackages: [],
    behaviour:
      'verifies the SHA-256 of every upload against its name (400 on mismatch); writes a temp file, ' +
      'fsyncs it, moves it into place, fsyncs the folder',
    unavailable: () => (existsSync(entry) ? undefined : `${entry} not built`),
    start: (workDir) => startRatchetProcess(entry, name, workDir, entryArgs),
  };
}

/** Ratchet with `--workers n`, named ratchet-w<n>. */
export function ratchetWorkersPeer(entry: string, workers: number): PeerSpec {
  return ratchetPeer(entry, `ratchet-w${workers}`, ['--workers', String(workers)]);
}

/**
 * Starts `node FLAGS <entry> ...entryArgs --no-auth --listen ... --path <workDir>/data`: the flags
 * of the `ratchet` launcher, as users run it, then RATCHET_NODE_FLAGS, extra Node.js flags to
 * compare settings without changing the code (the last of a flag wins).
 */
export async function startRatchetProcess(
  entry: string,
  name: string,
  workDir: string,
  entryArgs: readonly string[] = [],
  env?: Readonly<Record<string, string>>,
): Promise<ServerHandle> {
  const port = await freePort();
  const dataDir = path.join(workDir, 'data');
  const flags = `${launcherNodeFlags()} ${process.env.RATCHET_NODE_FLAGS ?? ''}`;
  const nodeFlags = flags.split(/\s+/).filter((f) => f !== '');
  const args = ratchetArgs(entry, port, dataDir, nodeFlags, entryArgs);
  return launch(name, process.execPath, args, workDir, port, dataDir, env);
}

/** `rclone serve restic` on a local folder (Debian's rclone). */
export function rclonePeer(): PeerSpec {
  return {
    name: 'rclone',
    debianPackages: ['rclone'],
    behaviour:
      'no SHA-256 verification (stores a body that does not match its name), no fsync; rclone 1.60 ' +
      'writes straight into the final file (O_TRUNC), so a reader or a crash can see a partial object',
    unavailable: () => (existsSync('/usr/bin/rclone') ? undefined : 'rclone is not installed'),
    async start(workDir) {
      const port = await freePort();
      const dataDir = path.join(workDir, 'data');
      const config = path.join(workDir, 'rclone.conf');
      writeFileSync(config, '');
      const args = ['serve', 'restic', '--config', config, '--addr', `${host}:${port}`, dataDir];
      return launch('rclone', '/usr/bin/rclone', args, workDir, port, dataDir);
    },
  };
}

/** Fills the nginx configuration template (bench/nginx/) for one instance. */
function renderNginxConfig(
  values: {
    prefix: string;
    dataDir: string;
    port: number;
    asRoot: boolean;
  },
  file = 'restic-rest.conf.template',
): string {
  for (const p of [values.prefix, values.dataDir]) {
    if (!/^[\w./-]+$/.test(p)) throw new Error(`path not usable in an nginx config: ${p}`);
  }
  const template = readFileSync(path.join(benchDir, 'nginx', file), 'utf8');
  const fill: Record<string, string> = {
    USER_LINE: values.asRoot ? 'user root root;' : '',
    WORKERS: 'auto',
    PREFIX: values.prefix,
    DATA: values.dataDir,
    MODULES: '/usr/lib/nginx/modules',
    LUA_DIR: path.join(benchDir, 'nginx'),
    PORT: String(values.port),
  };
  return template.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => {
    const value = fill[key];
    if (value === undefined) throw new Error(`unknown placeholder ${whole} in the nginx template`);
    return value;
  });
}

/** nginx with the Lua module, configured from bench/nginx/ as a restic REST backend. */
export function nginxPeer(): PeerSpec {
  return {
    name: 'nginx',
    debianPackages: ['nginx', 'libnginx-mod-http-lua'],
    behaviour:
      'no SHA-256 verification, no fsync; WebDAV PUT writes the body to a temp file, then renames it into place',
    unavailable: () => {
      if (!existsSync('/usr/sbin/nginx')) return 'nginx is not installed';
      if (!existsSync('/usr/lib/nginx/modules/ngx_http_lua_module.so'))
        return 'the nginx Lua module is missing';
      return undefined;
    },
    async start(workDir) {
      const port = await freePort();
      const dataDir = path.join(workDir, 'data');
      const prefix = path.join(workDir, 'nginx');
      mkdirSync(prefix, { recursive: true });
      const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
      const conf = path.join(prefix, 'nginx.conf');
      writeFileSync(conf, renderNginxConfig({ prefix, dataDir, port, asRoot }));
      const args = ['-p', prefix, '-c', conf, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'];
      return launch('nginx', '/usr/sbin/nginx', args, workDir, port, dataDir);
    },
  };
}

/**
 * The load generator's ceiling: nginx that stores nothing and answers every request at once
 * (bench/nginx/ceiling.conf.template). A server whose figure comes close to this one's is
 * limited by the client and loopback on that row, not by its own work.
 */
export function ceilingPeer(): PeerSpec {
  return {
    name: 'ceiling',
    debianPackages: ['nginx', 'libnginx-mod-http-lua'],
    behaviour: 'stores nothing: uploads are read and dropped, reads come from a 16 MiB or 4 KiB file',
    unavailable: () =>
      existsSync('/usr/lib/nginx/modules/ngx_http_lua_module.so') ? undefined : 'nginx with Lua is missing',
    async start(workDir) {
      const port = await freePort();
      const dataDir = path.join(workDir, 'data');
      const prefix = path.join(workDir, 'nginx');
      mkdirSync(prefix, { recursive: true });
      writeFileSync(path.join(prefix, 'big'), Buffer.alloc(16 * 2 ** 20, 7));
      writeFileSync(path.join(prefix, 'small'), Buffer.alloc(4096, 7));
      const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
      const conf = path.join(prefix, 'nginx.conf');
      writeFileSync(conf, renderNginxConfig({ prefix, dataDir, port, asRoot }, 'ceiling.conf.template'));
      const args = ['-p', prefix, '-c', conf, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'];
      return launch('ceiling', '/usr/sbin/nginx', args, workDir, port, dataDir);
    },
  };
}

/** restic's Go rest-server, when REST_SERVER_BIN names its binary. */
export function restServerPeer(bin: string): PeerSpec {
  return {
    name: 'rest-server',
    debianPackages: [],
    behaviour:
      'verifies the SHA-256 of every upload (400 on mismatch) unless --no-verify-upload; writes a temp file, ' +
      'fsyncs it, renames it, fsyncs the folder; 403 for an object that exists',
    unavailable: () => (existsSync(bin) ? undefined : `REST_SERVER_BIN=${bin} does not exist`),
    async start(workDir) {
      const port = await freePort();
      const dataDir = path.join(workDir, 'data');
      const args = ['--path', dataDir, '--listen', `${host}:${port}`, '--no-auth'];
      return launch('rest-server', bin, args, workDir, port, dataDir);
    },
  };
}
