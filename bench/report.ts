/** The bench's results: collected samples, the printed table with ratios, and the JSON file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { summarize } from './stats.ts';
import type { Summary } from './stats.ts';
import type { MachineInfo } from './system.ts';
import type { Figure } from './workloads.ts';

/** One server's samples of one figure. */
export interface Cell {
  readonly samples: number[];
  readonly errors: string[];
  summary?: Summary | undefined;
}

/** One row of the table. */
export interface FigureResult extends Figure {
  readonly byServer: Record<string, Cell>;
}

/** A server that took part. */
export interface ServerInfo {
  readonly name: string;
  readonly version: string;
  readonly behaviour: string;
}

/** Everything a run produced, as written to bench/results/*.json. */
export interface Results {
  readonly createdAt: string;
  readonly mode: 'quick' | 'full';
  readonly rounds: number;
  roundsCompleted: number;
  wallSeconds: number;
  readonly machine: MachineInfo;
  readonly servers: ServerInfo[];
  readonly figures: FigureResult[];
  readonly notes: string[];
  /** The load generator's CPU use during each step, per server (1 = one core busy). */
  readonly clientCpu: Record<string, Record<string, number[]>>;
  /**
   * The server's peak RSS in MiB (VmHWM, all its processes) right after each step, per server,
   * one value per round: shows which step drives the peak.
   */
  readonly peakRssAfter: Record<string, Record<string, number[]>>;
  /** The machine's 1, 5 and 15 minute load averages at the end of the run. */
  readonly loadAverage: number[];
}

/** An empty result set for these figures and servers. */
export function newResults(
  base: Omit<
    Results,
    'figures' | 'roundsCompleted' | 'wallSeconds' | 'notes' | 'clientCpu' | 'peakRssAfter' | 'loadAverage'
  >,
  figures: readonly Figure[],
): Results {
  return {
    ...base,
    roundsCompleted: 0,
    wallSeconds: 0,
    notes: [],
    clientCpu: {},
    peakRssAfter: {},
    loadAverage: [],
    figures: figures.map((f) => ({
      ...f,
      byServer: Object.fromEntries(base.servers.map((s) => [s.name, { samples: [], errors: [] }])),
    })),
  };
}

/** Records measurements (numbers, or an Error that explains why there are none). */
export function record(
  results: Results,
  figureId: string,
  server: string,
  value: number | readonly number[] | Error,
): void {
  const cell = results.figures.find((f) => f.id === figureId)?.byServer[server];
  if (cell === undefined) throw new Error(`unknown figure ${figureId} or server ${server}`);
  if (value instanceof Error) cell.errors.push(value.message.split('\n')[0] ?? value.message);
  else if (typeof value === 'number') cell.samples.push(value);
  else cell.samples.push(...value);
  cell.summary = summarize(cell.samples);
}

/** A number with a sensible count of digits for a table. */
export function formatNumber(x: number): string {
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toString();
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/**
 * A server's median at or above this share of the ceiling's (the do-nothing server) on a row is
 * set by the load generator and loopback, not by the server: marked ‡, it does not count as met.
 */
export const clientBoundShare = 0.8;

/** True when the row's figure for the server is limited by the client (see clientBoundShare). */
export function clientBound(figure: FigureResult, server: string): boolean {
  if (figure.better !== 'higher' || server === 'ceiling') return false;
  const mine = figure.byServer[server]?.summary?.median;
  const ceiling = figure.byServer.ceiling?.summary?.median;
  return mine !== undefined && ceiling !== undefined && mine >= clientBoundShare * ceiling;
}

function formatCell(cell: Cell | undefined, bound = false): string {
  const s = cell?.summary;
  if (s === undefined) return cell && cell.errors.length > 0 ? 'error' : '-';
  const value = `${formatNumber(s.median)}${bound ? ' ‡' : ''}`;
  const spread = s.n > 1 && s.min !== s.max ? ` (${formatNumber(s.min)}–${formatNumber(s.max)})` : '';
  const failed = cell && cell.errors.length > 0 ? ` [${cell.errors.length} failed]` : '';
  return `${value}${spread}${failed}`;
}

/** One server's median over another's, or undefined when either is missing. */
function ratio(figure: FigureResult, [server, peer]: readonly [string, string]): number | undefined {
  const mine = figure.byServer[server]?.summary?.median;
  const theirs = figure.byServer[peer]?.summary?.median;
  if (mine === undefined || theirs === undefined || theirs === 0) return undefined;
  return mine / theirs;
}

/** The server with the best median for a figure. */
function best(figure: FigureResult): string | undefined {
  let winner: string | undefined;
  let value = 0;
  for (const [name, cell] of Object.entries(figure.byServer)) {
    const m = cell.summary?.median;
    if (m === undefined) continue;
    if (winner === undefined || (figure.better === 'higher' ? m > value : m < value)) {
      winner = name;
      value = m;
    }
  }
  return winner;
}

/** The results as a Markdown table, columns padded so it also reads well in a terminal. */
export function formatTable(results: Results): string {
  const names = results.servers.map((s) => s.name);
  // Ratchet against each peer on a local folder; on S3, Ratchet against rclone on the same store.
  const onS3 = (n: string): boolean => n.endsWith('-s3');
  const pairs: (readonly [string, string])[] = [
    ...(names.includes('ratchet')
      ? names.filter((n) => n !== 'ratchet' && !onS3(n)).map((p) => ['ratchet', p] as const)
      : []),
    ...(names.includes('ratchet-s3') && names.includes('rclone-s3')
      ? [['ratchet-s3', 'rclone-s3'] as const]
      : []),
  ];
  const header = ['figure', 'unit', 'better', ...names, ...pairs.map(([a, b]) => `${a}/${b}`), 'best'];
  const rows = results.figures.map((f) => [
    f.label,
    f.unit,
    f.better,
    ...names.map((n) => formatCell(f.byServer[n], clientBound(f, n))),
    ...pairs.map((pair) => {
      const r = ratio(f, pair);
      return r === undefined ? '-' : `${r.toFixed(2)}x`;
    }),
    best(f) ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The errors recorded during the run, one line each (empty when everything worked). */
export function formatErrors(results: Results): string[] {
  const lines: string[] = [];
  for (const f of results.figures) {
    for (const [server, cell] of Object.entries(f.byServer)) {
      for (const e of new Set(cell.errors)) lines.push(`${f.label} / ${server}: ${e}`);
    }
  }
  return lines;
}

/** Writes the JSON, the Markdown table and the SVG chart; returns their paths. */
export function writeResults(
  outDir: string,
  results: Results,
  svg: string,
): { json: string; markdown: string; svg: string } {
  mkdirSync(outDir, { recursive: true });
  const stamp = `${results.createdAt.replace(/[:.]/g, '-')}-${results.mode}`;
  const json = path.join(outDir, `bench-${stamp}.json`);
  const markdown = path.join(outDir, `bench-${stamp}.md`);
  const chart = path.join(outDir, `bench-${stamp}.svg`);
  const text = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(json, text);
  writeFileSync(markdown, `${formatTable(results)}\n`);
  writeFileSync(chart, svg);
  writeFileSync(path.join(outDir, 'latest.svg'), svg);
  writeFileSync(path.join(outDir, 'latest.json'), text);
  return { json, markdown, svg: chart };
}

/**
 * The load generator's CPU per step and server (median over the rounds; 1.00 is one core busy
 * in the client), with what ‡ in the figures table means.
 */
export function formatClientTable(results: Results): string {
  const names = results.servers.map((s) => s.name);
  const header = ['client CPU (cores)', ...names];
  const rows = Object.entries(results.clientCpu).map(([step, byServer]) => [
    step,
    ...names.map((n) => {
      const samples = byServer[n];
      return summarize(samples ?? [])?.median.toFixed(2) ?? '-';
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const legend =
    `‡: at least ${clientBoundShare * 100}% of the ceiling's figure (a server that stores nothing) on that ` +
    'row: the load generator and loopback set it, not the server.';
  return [line(header), rule, ...rows.map(line), '', legend].join('\n');
}
