/**
 * Who a process is, in a form that outlives it: its pid, its start time (so a later process that
 * reuses the pid is told apart) and the boot it ran in. Lock files and temporary upload names
 * carry it, so that only files of processes that are gone are ever taken over or removed.
 *
 * On Linux the start time is field 22 of /proc/<pid>/stat (clock ticks since boot) and the boot
 * is /proc/sys/kernel/random/boot_id. Elsewhere both are empty and only the pid is checked.
 */
import { readFileSync } from 'node:fs';
import { errnoCode } from '../../errors.ts';

export interface ProcessIdentity {
  readonly pid: number;
  /** Start time in clock ticks since boot (base 36); '' when unknown. */
  readonly start: string;
  /** The first 8 hex digits of the boot id; '' when unknown. */
  readonly boot: string;
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

/** A running process (this one by default). */
export function currentProcess(pid = process.pid): ProcessIdentity {
  return { pid, start: startTimeOf(pid), boot: bootId };
}

/** The identity as one token of [0-9a-z.]: pid.start.boot. */
export function formatIdentity(identity: ProcessIdentity): string {
  return `${identity.pid}.${identity.start}.${identity.boot}`;
}

/** Reads a token written by formatIdentity; undefined when it is not one. */
export function parseIdentity(token: string): ProcessIdentity | undefined {
  const match = /^(\d{1,10})\.([0-9a-z]{0,16})\.([0-9a-f]{0,8})$/.exec(token);
  if (match === null) return undefined;
  return { pid: Number(match[1]), start: match[2] ?? '', boot: match[3] ?? '' };
}

/** True unless the process is provably gone: another boot, no such pid, or a pid reused since. */
export function isRunning(identity: ProcessIdentity): boolean {
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
