/** Reads process facts from /proc: a process tree and its peak resident memory. */
import { readdirSync, readFileSync } from 'node:fs';

/** The parent pid of a process, from /proc/PID/stat; undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[1]);
  } catch {
    return undefined;
  }
}

/** A process and all its descendants (nginx: master and workers). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const parent = parentOf(pid);
    if (parent === undefined) continue;
    const list = children.get(parent) ?? [];
    list.push(pid);
    children.set(parent, list);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0 && tree.length < 10_000) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** One field of /proc/PID/status in KiB (VmHWM, VmRSS), or 0 when unreadable. */
function statusKiB(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Peak resident memory of a server in MiB: the kernel's high-water mark (VmHWM) of each of its
 * processes, added up. Exact for a single process; for nginx, the sum of each process's peak.
 */
export function peakRssMiB(root: number): number {
  let kib = 0;
  for (const pid of processTree(root)) kib += statusKiB(pid, 'VmHWM');
  return kib / 1024;
}
