/**
 * A/B probe for optimisation work: runs the bench's HTTP steps against one or more builds of
 * Ratchet (or the same build with other Node flags or environment), interleaved and repeated in
 * the same session, and prints each figure per variant plus the server's memory after every step.
 *
 * `--repeat N` runs the steps N times on the same server (memory creep). `--settle S` waits S
 * seconds after each start, so that start-up work (the usage count) is not measured in the steps;
 * `--warm-list` lists the 100k-object repository once first, so every build holds it in memory.
 * `--threads` adds each step's server CPU per thread name (main, libuv pool, V8 helpers), user+sys.
 * `--keep-logs DIR` copies each server's log files there before its data folder is removed.
 *
 *   node --import tsx bench/probe.ts --variant base=/tmp/ab/base/dist/cli/main.js \
 *        --variant new=dist/cli/main.js --steps up16,range,head --rounds 3 [--quick]
 *
 * A variant is `name=ENTRY[;NODEFLAG...][;ENV=VALUE...]` (items containing `=` before any `-` are
 * environment variables), e.g. `semi=dist/cli/main.js;--max-semi-space-size=2` or
 * `tp8=dist/cli/main.js;UV_THREADPOOL_SIZE=8`; items starting with `+` are arguments placed right
 * after the entry (`cl2=launcher.mjs;+dist/cli/main.js` runs `node launcher.mjs dist/cli/main.js ...`). `--prof DIR` adds `--cpu-prof` to every server
 * (profiles written on shutdown). Each variant gets a fresh server and data folder per round.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sizesFor } from './config.ts';
import { linkListingRepo, listingRepo, writeListingRepo } from './fixtures.ts';
import { freePort, launch, ratchetArgs } from './peers.ts';
import { treeCpuSeconds, treeStatusMiB } from './proc.ts';
import type { ServerHandle } from './peers.ts';
import { httpSteps } from './workloads.ts';
import type { RoundState } from './workloads.ts';

interface Variant {
  readonly name: string;
  readonly entry: string;
  /** Arguments right after the entry (a launcher's target, e.g. a cluster wrapper's entry). */
  readonly entryArgs: string[];
  readonly nodeFlags: string[];
  readonly env: Record<string, string>;
}

const stepKeys: Record<string, string> = {
  up16: 'upload 16 MiB objects',
  range: 'ranged GETs',
  get16: 'whole 16 MiB GETs',
  up4k: 'upload 4 KiB objects',
  head: 'HEAD requests',
  list: 'list 100k objects',
};

function opsOf(step: string, sizes: ReturnType<typeof sizesFor>): number {
  switch (step) {
    case 'upload 16 MiB objects':
      return sizes.bigUploads[1] + sizes.bigUploads[2] + sizes.bigUploads[8];
    case 'ranged GETs':
      return sizes.rangeGets[1] + sizes.rangeGets[8];
    case 'whole 16 MiB GETs':
      return sizes.fullGets;
    case 'upload 4 KiB objects':
      return sizes.smallUploads;
    case 'HEAD requests':
      return sizes.heads;
    case 'list 100k objects':
      return sizes.listRepeats;
    default:
      return 0;
  }
}

function parseVariant(text: string): Variant {
  const eq = text.indexOf('=');
  if (eq < 0) throw new Error(`--variant needs name=ENTRY: ${text}`);
  const [entry, ...rest] = text.slice(eq + 1).split(';');
  const nodeFlags: string[] = [];
  const entryArgs: string[] = [];
  const env: Record<string, string> = {};
  for (const item of rest) {
    if (item.startsWith('+')) entryArgs.push(path.resolve(item.slice(1)));
    else if (item.startsWith('-')) nodeFlags.push(item);
    else if (item.includes('=')) env[item.slice(0, item.indexOf('='))] = item.slice(item.indexOf('=') + 1);
  }
  return { name: text.slice(0, eq), entry: path.resolve(entry ?? ''), entryArgs, nodeFlags, env };
}

/** Resident MiB by kind of mapping: brk heap, anonymous (V8 spaces, mmapped malloc), files. */
function smapsSummary(pid: number): string {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return '';
  }
  const sums = new Map<string, number>();
  let kind = '';
  let anonSizes: number[] = [];
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      kind = name === '' ? 'anon' : name.startsWith('[') ? name : name.includes('node') ? 'node' : 'libs';
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m) {
      sums.set(kind, (sums.get(kind) ?? 0) + Number(m[1]));
      if (kind === 'anon' && Number(m[1]) > 1024) anonSizes.push(Math.round(Number(m[1]) / 1024));
    }
  }
  anonSizes = anonSizes.sort((a, b) => b - a).slice(0, 8);
  return (
    [...sums].map(([k, v]) => `${k} ${(v / 1024).toFixed(0)}`).join(', ') + ` anon>1M: ${anonSizes.join(' ')}`
  );
}

async function start(v: Variant, workDir: string, prof: string | undefined): Promise<ServerHandle> {
  const port = await freePort();
  const dataDir = path.join(workDir, 'data');
  const flags = [...v.nodeFlags];
  if (prof !== undefined)
    flags.push('--cpu-prof', `--cpu-prof-dir=${prof}`, `--cpu-prof-name=${v.name}-${Date.now()}.cpuprofile`);
  const args = ratchetArgs(v.entry, port, dataDir, flags, v.entryArgs);
  return launch(v.name, process.execPath, args, workDir, port, dataDir, v.env);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      variant: { type: 'string', multiple: true },
      steps: { type: 'string', default: 'up16,range,get16,up4k,head,list' },
      rounds: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      prof: { type: 'string' },
      'list-objects': { type: 'string' },
      repeat: { type: 'string', default: '1' },
      smaps: { type: 'boolean', default: false },
      // Seconds to wait after a server starts before the steps (start-up work done, steady state).
      settle: { type: 'string', default: '0' },
      // List the listing repository once before the steps: every build then has it in memory.
      'warm-list': { type: 'boolean', default: false },
      'keep-logs': { type: 'string' },
      threads: { type: 'boolean', default: false },
    },
  });
  const variants = (values.variant ?? ['cur=dist/cli/main.js']).map(parseVariant);
  const wanted = values.steps.split(',').map((s) => s.trim());
  for (const w of wanted) if (!(w in stepKeys)) throw new Error(`unknown step ${w}`);
  // Steps read what earlier ones wrote: range/get16 need up16, head needs up4k.
  const needed = new Set(wanted);
  if (needed.has('range') || needed.has('get16')) needed.add('up16');
  if (needed.has('head')) needed.add('up4k');
  const steps = httpSteps.filter((s) => [...needed].some((k) => stepKeys[k] === s.name));
  const rounds = Number(values.rounds);
  const base = sizesFor({
    quick: values.quick,
    rounds,
    only: undefined,
    workers: [],
    build: false,
    install: false,
    keep: false,
    restic: false,
    s3: false,
    outDir: undefined,
  });
  const sizes = {
    ...base,
    listObjects: values['list-objects'] ? Number(values['list-objects']) : base.listObjects,
  };
  const prof = values.prof ? path.resolve(values.prof) : undefined;
  if (prof) mkdirSync(prof, { recursive: true });

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ratchet-probe-'));
  const template = path.join(tmp, 'listing-template');
  if (needed.has('list')) writeListingRepo(template, listingRepo, sizes.listObjects);
  // results[variant][figure] = values
  const results = new Map<string, Map<string, number[]>>();
  const add = (v: string, k: string, x: number): void => {
    const m = results.get(v) ?? new Map<string, number[]>();
    results.set(v, m);
    const a = m.get(k) ?? [];
    a.push(x);
    m.set(k, a);
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
      for (const v of order) {
        const workDir = path.join(tmp, `${v.name}-${round}`);
        mkdirSync(path.join(workDir, 'data'), { recursive: true });
        if (needed.has('list')) linkListingRepo(template, path.join(workDir, 'data'));
        const server = await start(v, workDir, prof);
        await new Promise((resolve) => setTimeout(resolve, Number(values.settle) * 1000));
        if (values['warm-list'] && needed.has('list')) {
          const warm = await fetch(`${server.baseUrl}/${listingRepo}/data/`, {
            headers: { Accept: 'application/vnd.x.restic.rest.v2' },
          });
          await warm.arrayBuffer();
        }
        const state: RoundState = { repo: `probe-r${round}`, big: [], small: [] };
        const line: string[] = [];
        try {
          if (!needed.has('up16')) {
            await fetch(`${server.baseUrl}/${state.repo}/?create=true`, { method: 'POST' });
          }
          const repeat = Number(values.repeat);
          for (const step of Array.from({ length: repeat }, () => steps).flat()) {
            const threads0 = threadCpu(server.pid);
            const cpu0 = treeCpuSeconds(server.pid);
            const t0 = Date.now();
            const measured = await step.run(server, state, sizes);
            const wall = (Date.now() - t0) / 1000;
            const cpu = (treeCpuSeconds(server.pid) - cpu0) / wall;
            const hwm = treeStatusMiB(server.pid, 'VmHWM');
            const rss = treeStatusMiB(server.pid, 'VmRSS');
            for (const [id, value] of Object.entries(measured)) {
              if (value instanceof Error) {
                line.push(`${id}=ERR(${value.message.slice(0, 80)})`);
                continue;
              }
              const xs = typeof value === 'number' ? [value] : [...value];
              for (const x of xs) add(v.name, id, x);
              line.push(`${id}=${xs.map((x) => x.toFixed(0)).join('/')}`);
            }
            add(v.name, `hwm after ${step.name}`, hwm);
            // Server CPU (all its threads, user + kernel) per operation: less sensitive to other
            // load on the machine than the rates are. Assumes every operation of the step ran.
            const ops = opsOf(step.name, sizes);
            if (ops > 0) add(v.name, `srv cpu us/op ${step.name}`, (cpu * wall * 1e6) / ops);
            line.push(
              `[hwm ${hwm.toFixed(0)} rss ${rss.toFixed(0)} MiB, srv cpu ${(cpu * 100).toFixed(0)}%]`,
            );
            if (values.smaps) line.push(`{${smapsSummary(server.pid)}}`);
            if (values.threads) line.push(`{${threadDelta(threads0, threadCpu(server.pid), wall)}}`);
          }
        } finally {
          await server.stop();
        }
        console.log(`r${round} ${v.name.padEnd(8)} ${line.join(' ')}`);
        const keep = values['keep-logs'];
        if (keep !== undefined) {
          for (const log of readdirSync(workDir).filter((name) => name.endsWith('.log')))
            cpSync(path.join(workDir, log), path.join(keep, `${v.name}-r${round}-${log}`));
        }
        rmSync(workDir, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log('\nmedians (min-max):');
  const keys = [...new Set([...results.values()].flatMap((m) => [...m.keys()]))];
  for (const k of keys) {
    const cells = variants.map((v) => {
      const xs = [...(results.get(v.name)?.get(k) ?? [])].sort((a, b) => a - b);
      if (xs.length === 0) return `${v.name}: -`;
      const med = xs[Math.floor(xs.length / 2)]!;
      return `${v.name}: ${med.toFixed(0)} (${xs[0]!.toFixed(0)}-${xs.at(-1)!.toFixed(0)})`;
    });
    console.log(`  ${k.padEnd(34)} ${cells.join('   ')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/** CPU seconds (user, sys) per thread name of one process, summed over threads of the same name. */
function threadCpu(pid: number): Map<string, [number, number]> {
  const byName = new Map<string, [number, number]>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat
        .slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
        .replace(/\d+$/, '')
        .trim();
      // Node's helper threads share the process's name: tell the main thread apart by its id.
      const name = tid === String(pid) ? 'main' : `${comm} helpers`;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const sum = byName.get(name) ?? [0, 0];
      sum[0] += Number(fields[11]) / 100;
      sum[1] += Number(fields[12]) / 100;
      byName.set(name, sum);
    } catch {
      // the thread ended meanwhile
    }
  }
  return byName;
}

/** `name u+s%` per thread name, as shares of one core over the step's wall time. */
function threadDelta(
  before: Map<string, [number, number]>,
  after: Map<string, [number, number]>,
  wall: number,
): string {
  const parts: string[] = [];
  for (const [name, [user, sys]] of after) {
    const [user0, sys0] = before.get(name) ?? [0, 0];
    const u = ((user - user0) / wall) * 100;
    const k = ((sys - sys0) / wall) * 100;
    if (u + k >= 1) parts.push(`${name} ${u.toFixed(0)}+${k.toFixed(0)}%`);
  }
  return parts.join(', ');
}
