/**
 * Who a process is, in a form that outlives it: its pid, its start time (so a later process that
 * reuses the pid is told apart), the boot it ran in and its host (a data folder on a network
 * filesystem may be shared). Lock files and temporary upload names carry it, so that only files
 * of processes that are gone are ever taken over or removed. Whether a process of another host
 * runs cannot be told from here: it is taken to be running.
 *
 * On Linux the start time is field 22 of /proc/<pid>/stat (clock ticks since boot) and the boot
 * is /proc/sys/kernel/random/boot_id. Elsewhere both are empty and only the pid is checked.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { errnoCode } from '../../errors.ts';

export interface ProcessIdentity {
  readonly pid: number;
  /** Start time in clock ticks since boot (base 36); '' when unknown. */
  readonly start: string;
  /** The first 8 hex digits of the boot id; '' when unknown. */
  readonly boot: string;
  /** The first 8 hex digits of the SHA-256 of the host name. */
  readonly host: string;
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The start time of a running process (base 36), '' when it cannot be read. */
function startTimeOf(pid: number): string {
  const stat = readOrEmpty(`/proc/${pid}/stat`);
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = fields[19];
  return ticks !== undefined && /^\d+$/.test(ticks) ? BigInt(ticks).toString(36) : '';
}

const bootId = readOrEmpty('/proc/sys/kernel/random/boot_id').replace(/-/g, '').slice(0, 8);
const hostId = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** A running process (this one by default). */
export function currentProcess(pid = process.pid): ProcessIdentity {
  return { pid, start: startTimeOf(pid), boot: bootId, host: hostId };
}

/** The identity as one token of [0-9a-z.]: pid.start.boot.host. */
export function formatIdentity(identity: ProcessIdentity): string {
  return `${identity.pid}.${identity.start}.${identity.boot}.${identity.host}`;
}

/** Reads a token written by formatIdentity; undefined when it is not one. */
export function parseIdentity(token: string): ProcessIdentity | undefined {
  const match = /^(\d{1,10})\.([0-9a-z]{0,16})\.([0-9a-f]{0,8})\.([0-9a-f]{8})$/.exec(token);
  if (match === null) return undefined;
  return { pid: Number(match[1]), start: match[2] ?? '', boot: match[3] ?? '', host: match[4] ?? '' };
}

/** True when the identity is of a process of this host. */
export function isLocal(identity: ProcessIdentity): boolean {
  return identity.host === hostId;
}

/**
 * True unless the process is provably gone: of this host, and another boot, no such pid, or a
 * pid reused since.
 */
export function isRunning(identity: ProcessIdentity): boolean {
  if (!isLocal(identity)) return true;
  if (identity.boot !== '' && bootId !== '' && identity.boot !== bootId) return false;
  try {
    process.kill(identity.pid, 0);
  } catch (err) {
    // EPERM: the pid exists but belongs to another user.
    if (errnoCode(err) === 'ESRCH') return false;
  }
  if (identity.start === '') return true;
  const start = startTimeOf(identity.pid);
  return start === '' || start === identity.start;
}
