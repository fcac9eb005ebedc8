/**
 * A real redis-server (Debian's package) on a loopback port, for the shared-state tests: no
 * persistence, stopped and started again on the same port to test outages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { waitFor } from './wait.ts';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Forgets every key (between tests). */
  flush(): Promise<void>;
}

/** A loopback port free at the moment of asking. */
export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
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

export async function startRedis(): Promise<RedisServer> {
  const port = await freeLoopbackPort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(
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
    await waitFor(() => answers(port, 'PING', '+PONG'), `redis-server on port ${port}`, 10_000);
  };
  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  const flush = async (): Promise<void> => {
    if (!(await answers(port, 'FLUSHALL', '+OK'))) throw new Error('FLUSHALL failed');
  };
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, flush };
}
