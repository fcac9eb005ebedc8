/** Reads process facts from /proc: a process tree, its resident memory and CPU time. */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * The fields of /proc/PID/stat after the command name (the first is the state, field 3 in
 * proc(5)); undefined when the process is gone.
 */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The parent pid of a process; undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields === undefined ? undefined : Number(fields[1]);
}

/** User plus system CPU seconds of one process (clock ticks of 1/100 s), or 0 when it is gone. */
function cpuSecondsOf(pid: number): number {
  const fields = statFields(pid);
  return fields === undefined ? 0 : (Number(fields[11]) + Number(fields[12])) / 100;
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

/** A /proc/PID/status field (VmHWM, VmRSS) in MiB, added up over a process and its descendants. */
export function treeStatusMiB(root: number, field: string): number {
  let kib = 0;
  for (const pid of processTree(root)) kib += statusKiB(pid, field);
  return kib / 1024;
}

/** User plus system CPU seconds of a process and its descendants (all their threads). */
export function treeCpuSeconds(root: number): number {
  let seconds = 0;
  for (const pid of processTree(root)) seconds += cpuSecondsOf(pid);
  return seconds;
}

/**
 * Peak resident memory of a server in MiB: the kernel's high-water mark (VmHWM) of each of its
 * processes, added up. Exact for a single process; for nginx, the sum of each process's peak.
 */
export function peakRssMiB(root: number): number {
  return treeStatusMiB(root, 'VmHWM');
}

/** The largest peak resident memory (VmHWM) of one process of a server, in MiB. */
export function largestPeakRssMiB(root: number): number {
  return Math.max(0, ...processTree(root).map((pid) => statusKiB(pid, 'VmHWM'))) / 1024;
}
