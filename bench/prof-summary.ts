/** Summarises a .cpuprofile: top functions by self time, and by inclusive time (approx). */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
const file = process.argv[2]!;
const top = Number(process.argv[3] ?? 40);
const prof = JSON.parse(readFileSync(file, 'utf8')) as {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const total = prof.nodes.reduce((s, n) => s + n.hitCount, 0);
const key = (n: Node): string => {
  const url = n.callFrame.url.replace(/^.*\/(node_modules|dist|src)\//, '$1/').replace(/^node:/, '');
  return `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
};
const self = new Map<string, number>();
const incl = new Map<string, number>();
for (const n of prof.nodes) {
  self.set(key(n), (self.get(key(n)) ?? 0) + n.hitCount);
  const seen = new Set<string>();
  for (let cur: number | undefined = n.id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!);
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + n.hitCount);
  }
}
const pct = (x: number): string => `${((100 * x) / total).toFixed(1)}%`.padStart(6);
console.log(`${file}: ${total} samples, ${((prof.endTime - prof.startTime) / 1e6).toFixed(1)} s`);
console.log('-- self');
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)} ${k}`);
console.log('-- inclusive');
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)} ${k}`);
