/** Binding a server to a TCP or unix-socket address, and what it ends up bound to. */
import { connect } from 'node:net';
import type { Server } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import type { ListenAddress } from '../config/listen-address.ts';

/** Starts listening; a stale unix socket file (nobody answering) is replaced unless told not to. */
export async function listenOn(
  server: Server,
  address: ListenAddress,
  options: { replaceStale?: boolean } = {},
): Promise<ListenAddress> {
  if (address.kind === 'unix' && options.replaceStale !== false) await removeStaleSocket(address.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'unix') server.listen(address.path, done);
    else if (address.kind === 'fd') server.listen({ fd: address.fd }, done);
    else server.listen(address.port, address.host, done);
  });
  const bound = server.address();
  if (bound !== null && typeof bound === 'object')
    return { kind: 'tcp', host: bound.address, port: bound.port };
  // An inherited unix socket: the path is known to systemd, not needed here (never removed).
  if (address.kind === 'fd' && typeof bound === 'string') return { kind: 'fd', fd: address.fd };
  return address;
}

/** Removes the unix socket file after the server closed. */
export async function removeSocketFile(address: ListenAddress): Promise<void> {
  if (address.kind === 'unix') await unlink(address.path).catch(() => undefined);
}

export async function removeStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (!info) return;
  if (!info.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another server is listening on ${path}`);
  await unlink(path);
}
