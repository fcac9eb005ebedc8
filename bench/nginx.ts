/**
 * nginx in front of several Ratchet instances, configured by the block in docs/scale-out.md (read
 * from the document, its example ports replaced): used by the scale-out test and the bench's
 * two-instance row, so both run what the document tells users to run.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** The example ports of the document's block: the hosts' and admin's vhosts and the instances. */
export interface ScaleOutPorts {
  readonly hosts: number;
  readonly admin: number;
  readonly instances: readonly [number, number];
  readonly adminInstances: readonly [number, number];
}

/** The nginx block of docs/scale-out.md with its example ports (8000, 8100, 8001-2, 9001-2) replaced. */
export function documentedNginxBlock(ports: ScaleOutPorts): string {
  const doc = readFileSync(path.join(projectRoot, 'docs', 'scale-out.md'), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
  if (block === undefined) throw new Error('docs/scale-out.md has no nginx block');
  const replacements: [number, number][] = [
    [8000, ports.hosts],
    [8100, ports.admin],
    [8001, ports.instances[0]],
    [8002, ports.instances[1]],
    [9001, ports.adminInstances[0]],
    [9002, ports.adminInstances[1]],
  ];
  let config = block;
  for (const [example, port] of replacements) {
    if (!config.includes(`127.0.0.1:${example}`)) throw new Error(`the nginx block has no port ${example}`);
    config = config.replaceAll(`127.0.0.1:${example}`, `127.0.0.1:${port}`);
  }
  return config;
}

export interface Nginx {
  /** One line per request: method, path, status, upstream address and status. */
  readonly accessLog: string;
  alive(): boolean;
  stop(): Promise<void>;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Runs nginx in the foreground with the block inside a minimal http {} of its own, in `dir`. */
export async function startNginx(dir: string, block: string, port: number): Promise<Nginx> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'scale-out.conf'), block);
  const accessLog = path.join(dir, 'access.log');
  const conf = [
    'user root;',
    'worker_processes 1;',
    `error_log ${path.join(dir, 'error.log')} info;`,
    `pid ${path.join(dir, 'nginx.pid')};`,
    'events { worker_connections 1024; }',
    'http {',
    "  log_format upstream '$request_method $uri $status upstream=$upstream_addr upstream_status=$upstream_status';",
    `  access_log ${accessLog} upstream;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
      (kind) => `  ${kind}_temp_path ${path.join(dir, `${kind}-temp`)};`,
    ),
    `  include ${path.join(dir, 'scale-out.conf')};`,
    '}',
  ].join('\n');
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(
    'nginx',
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not listen on ${port}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    accessLog,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGQUIT');
      await exited;
    },
  };
}
