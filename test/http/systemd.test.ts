/**
 * systemd integration with the real tools: socket activation through `systemd-socket-activate`
 * (which passes a listening socket as fd 3 with LISTEN_FDS/LISTEN_PID, as systemd does), and
 * readiness notification to a NOTIFY_SOCKET datagram socket (READY=1 once serving, STOPPING=1 on
 * SIGTERM), received here by a small python3 program.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { raw } from '../helpers/http.ts';
import { makeTempDir, projectRoot, ratchetCommand } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';

const bounded = { timeout: 60_000 };

/** A loopback port that was free a moment ago (bound to 0, then closed). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

interface Child {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM (if still running) and the exit code. */
  stop(): Promise<number | null>;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const child = spawn(command, args, { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1)));
    // A missing tool: say so in the output the assertions show, instead of crashing the run.
    child.once('error', (err) => {
      stderr += `could not run ${command}: ${err.message}\n`;
      resolve(-2);
    });
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Waits for the tool to listen, creates a repository through the socket (the tool starts the
 * server on the first connection and hands it the socket; the connection waits in the backlog
 * meanwhile), and checks the server announced the inherited socket. Answers the base URL.
 */
async function servedThrough(activator: Child, port: number): Promise<string> {
  await waitFor(
    () => activator.stderr().includes(`Listening on 127.0.0.1:${port}`),
    `systemd-socket-activate to listen: ${activator.stderr()}`,
  );
  const base = `http://127.0.0.1:${port}`;
  const created = await raw(base, 'POST', '/r/?create=true');
  assert.equal(created.status, 200, activator.stderr());
  await waitFor(() => /serving .* on /.test(activator.stdout()), 'the serving line');
  assert.match(activator.stdout(), new RegExp(`on http://127\\.0\\.0\\.1:${port} `));
  return base;
}

describe('systemd socket activation', () => {
  it('serves on the socket systemd-socket-activate passes, not on its own address', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const port = await freePort();
    const activator = start('systemd-socket-activate', [
      '-l',
      `127.0.0.1:${port}`,
      ratchetCommand(),
      '--no-auth',
      '--path',
      path.join(dir, 'data'),
    ]);
    try {
      const base = await servedThrough(activator, port);
      assert.equal((await raw(base, 'GET', '/r/keys/')).status, 200);
      // The inherited socket replaced the default --listen address.
      assert.doesNotMatch(activator.stdout(), /127\.0\.0\.1:8000/);
    } finally {
      const code = await activator.stop();
      await cleanup();
      assert.equal(code, 0, `clean exit on SIGTERM: ${activator.stderr()}`);
    }
  });
});

// Binds a unix datagram socket at the path, then prints every datagram as a JSON string line.
const receiver = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("BOUND"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

describe('systemd socket activation with --workers 2', () => {
  it('every worker serves the one socket systemd-socket-activate passes', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const port = await freePort();
    const activator = start('systemd-socket-activate', [
      '-l',
      `127.0.0.1:${port}`,
      ratchetCommand(),
      '--no-auth',
      '--workers',
      '2',
      '--path',
      path.join(dir, 'data'),
    ]);
    try {
      const base = await servedThrough(activator, port);
      // New connections go to each worker in turn: both answer on the inherited socket.
      for (let i = 0; i < 6; i++) assert.equal((await raw(base, 'GET', '/r/keys/')).status, 200);
      assert.match(activator.stderr(), /"workers":2,"msg":"workers started"/);
    } finally {
      const code = await activator.stop();
      await cleanup();
      assert.equal(code, 0, `clean exit on SIGTERM: ${activator.stderr()}`);
    }
  });
});

describe('systemd socket activation with a configuration file', () => {
  it(
    'replaces the only listener when it is an admin one, instead of binding its port too',
    bounded,
    async () => {
      const { dir, cleanup } = await makeTempDir();
      const port = await freePort();
      const config = path.join(dir, 'ratchet.yaml');
      await writeFile(
        config,
        `no-auth: true\npath: ${JSON.stringify(path.join(dir, 'data'))}\n` +
          `listeners:\n  - address: 127.0.0.1:${port}\n    max-role: admin\n`,
      );
      const activator = start('systemd-socket-activate', [
        '-l',
        `127.0.0.1:${port}`,
        ratchetCommand(),
        '--config',
        config,
      ]);
      try {
        await waitFor(() => activator.stderr().includes(`Listening on 127.0.0.1:${port}`), 'the socket');
        const base = `http://127.0.0.1:${port}`;
        assert.equal((await raw(base, 'POST', '/r/?create=true')).status, 200, activator.stderr());
        await waitFor(() => /serving .* on /.test(activator.stdout()), 'the serving line');
        assert.match(activator.stdout(), new RegExp(`on http://127\\.0\\.0\\.1:${port} \\(at most admin\\)`));
        assert.equal(activator.stdout().match(/serving /g)?.length, 1, 'one listener, the inherited socket');
      } finally {
        const code = await activator.stop();
        await cleanup();
        assert.equal(code, 0, `clean exit on SIGTERM: ${activator.stderr()}`);
      }
    },
  );
});

describe('systemd readiness notification', () => {
  it('sends READY=1 once serving and STOPPING=1 on SIGTERM to NOTIFY_SOCKET', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const socketPath = path.join(dir, 'notify.sock');
    const listener = start('python3', ['-u', '-c', receiver, socketPath]);
    let ratchet: Child | undefined;
    const datagrams = (): string[] =>
      listener
        .stdout()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as string);
    try {
      await waitFor(() => datagrams().includes('BOUND'), `the receiver to bind: ${listener.stderr()}`);
      ratchet = start(
        ratchetCommand(),
        ['--no-auth', '--listen', '127.0.0.1:0', '--path', path.join(dir, 'data')],
        { ...process.env, NOTIFY_SOCKET: socketPath },
      );
      const server = ratchet;
      await waitFor(
        () => datagrams().some((d) => d.split('\n').includes('READY=1')),
        `READY=1: ${server.stderr()}`,
        30_000,
      );
      const ready = datagrams().find((d) => d.split('\n').includes('READY=1')) ?? '';
      assert.ok(ready.split('\n').includes(`MAINPID=${server.child.pid}`), `MAINPID names ratchet: ${ready}`);
      assert.match(ready, /^STATUS=.+$/m);
      // Ready means serving.
      const url = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stdout())?.[1];
      assert.ok(url !== undefined, `the serving line precedes READY=1: ${server.stdout()}`);
      assert.equal((await raw(url, 'GET', '/.ratchet/health')).status, 200);
      assert.ok(!datagrams().some((d) => d.includes('STOPPING=1')));

      assert.equal(await server.stop(), 0);
      await waitFor(() => datagrams().some((d) => d.split('\n').includes('STOPPING=1')), 'STOPPING=1');
    } finally {
      await ratchet?.stop();
      await listener.stop();
      await cleanup();
    }
  });
});
