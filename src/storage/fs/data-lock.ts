/**
 * One server process per data folder, until quotas and the index live in a store that several
 * processes share. The lock is a symbolic link `<path>/.ratchet/lock.<n>` whose target names its
 * owner (pid, start time, boot, host: process-identity.ts): creating a symlink is exclusive and atomic,
 * and it needs an inode but no data block, so a full disk does not stop a restore.
 *
 * The owner is the process that created the highest-numbered lock while no higher one existed.
 * A lock whose owner is gone (killed, crashed, rebooted) is taken over by creating the next
 * number: of several processes racing for it, exactly one creates it, and a process that finds
 * a higher number after creating its own backs off. Superseded numbers are then removed.
 */
import { readdir, readlink, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, RatchetError } from '../../errors.ts';
import { formatIdentity, isLocal, isRunning, parseIdentity } from './process-identity.ts';
import type { ProcessIdentity } from './process-identity.ts';

const lockName = /^lock\.(\d{1,15})$/;

/** A held lock; release() removes it. */
export interface DataLock {
  release(): Promise<void>;
}

async function lockNumbers(stateDir: string): Promise<number[]> {
  const numbers: number[] = [];
  for (const name of await readdir(stateDir)) {
    const match = lockName.exec(name);
    if (match !== null) numbers.push(Number(match[1]));
  }
  return numbers.sort((a, b) => a - b);
}

/** The owner a lock names; undefined when it is unreadable (treated as abandoned). */
async function ownerOf(file: string): Promise<ProcessIdentity | undefined> {
  try {
    return parseIdentity(await readlink(file));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Takes the data folder's lock for this process, taking over one left by a process that is
 * gone; throws UNAVAILABLE naming the live owner otherwise. `stateDir` must exist.
 */
export async function acquireDataLock(
  stateDir: string,
  dataDir: string,
  self: ProcessIdentity,
): Promise<DataLock> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const numbers = await lockNumbers(stateDir);
    const top = numbers.at(-1) ?? 0;
    if (top > 0) {
      const owner = await ownerOf(path.join(stateDir, `lock.${top}`));
      if (owner !== undefined && isRunning(owner)) {
        const where = isLocal(owner)
          ? `pid ${owner.pid}`
          : `pid ${owner.pid} on another host; if that server is gone for good, remove ${path.join(stateDir, `lock.${top}`)}`;
        throw new RatchetError(
          'UNAVAILABLE',
          `the data folder ${dataDir} is in use by another ratchet process (${where}); ` +
            'only one server may serve a data folder at a time',
        );
      }
    }
    const mine = top + 1;
    const file = path.join(stateDir, `lock.${mine}`);
    try {
      await symlink(formatIdentity(self), file);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') continue; // another process took this number first
      throw err;
    }
    if ((await lockNumbers(stateDir)).some((n) => n > mine)) {
      await unlink(file).catch(() => undefined);
      continue;
    }
    for (const old of numbers) await unlink(path.join(stateDir, `lock.${old}`)).catch(() => undefined);
    return { release: () => unlink(file).catch(() => undefined) };
  }
  throw new RatchetError('UNAVAILABLE', `could not take the lock of the data folder ${dataDir}`);
}
