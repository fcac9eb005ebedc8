/**
 * A real redis-server (Debian's package) on a loopback port, without persistence: the shared
 * state of the --state tests and of the bench's two-instance row. It can be stopped and started
 * again on the same port, to test outages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { freePort } from './peers.ts';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Forgets every key (between tests). */
  flush(): Promise<void>;
}

/** Sends one inline command; true when the answer starts with `expected`. */
function answers(port: number, command: string, expected: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (data) => {
      resolve(data.toString().startsWith(expected));
      socket.destroy();
    });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      resolve(false);
      socket.destroy();
    });
  });
}

/** Starts redis-server and resolves once it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const running = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: 'ignore' },
    );
    child = running;
    // A missing binary is an 'error' event: without a listener it would end the process.
    let failure: Error | undefined;
    running.once('error', (err) => (failure = err));
    const deadline = Date.now() + 10_000;
    while (!(await answers(port, 'PING', '+PONG'))) {
      if (failure !== undefined || running.exitCode !== null || Date.now() > deadline) {
        running.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not start${failure ? `: ${failure.message}` : ''}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };
  const flush = async (): Promise<void> => {
    if (!(await answers(port, 'FLUSHALL', '+OK'))) throw new Error('FLUSHALL failed');
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, flush };
}
