/**
 * The web view with many repositories: a data folder of N repositories (a key, a snapshot, an
 * index and a data object each; a tenth of them back-dated past --stale-after; a 30-day size
 * history for every one, so every row draws a sparkline) served by the built `ratchet` with
 * --no-auth. Measures the start-up count, the server's time to render /.ratchet/ui/ and
 * /.ratchet/api/repos, and, in Debian's Chromium, the time from navigation to the page's load
 * event and the time a sort and a filter take.
 *
 * Usage: node --import tsx bench/web-view.ts [repos=5000] [rounds=20]   (npm run build first)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launcherNodeFlags } from './launcher.ts';

const count = Number(process.argv[2] ?? 5000);
const rounds = Number(process.argv[3] ?? 20);
const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const entry = path.join(projectRoot, 'dist', 'cli', 'main.js');
const root = mkdtempSync(path.join(tmpdir(), 'ratchet-web-bench-'));

function put(repo: string, type: string, body: string, mtime?: Date): void {
  const name = createHash('sha256').update(body).digest('hex');
  const dir = type === 'data' ? path.join(root, repo, type, name.slice(0, 2)) : path.join(root, repo, type);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), body);
  if (mtime !== undefined) {
    utimesSync(path.join(dir, name), mtime, mtime);
    utimesSync(dir, mtime, mtime);
  }
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function timedGets(url: string): Promise<{ median: number; p95: number; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    const res = await fetch(url);
    bytes = (await res.arrayBuffer()).byteLength;
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    times.push(performance.now() - started);
  }
  return { median: quantile(times, 0.5), p95: quantile(times, 0.95), bytes };
}

const line = (label: string, text: string): void => console.log(`${label.padEnd(40)} ${text}`);

if (!existsSync(entry)) throw new Error(`${entry} is missing: npm run build`);
const history: Record<string, Record<string, number>> = {};
const stale = new Date(Date.now() - 3 * 86_400_000);
for (let i = 0; i < count; i++) {
  const repo = `host${String(i).padStart(5, '0')}`;
  writeFileSync(path.join(mkdirOf(root, repo), 'config'), `config ${i}`);
  put(repo, 'keys', `key ${i}`);
  put(repo, 'index', `index ${i}`);
  put(repo, 'data', `data ${i}`.repeat(1 + (i % 50)));
  put(repo, 'snapshots', `snapshot ${i}`, i % 10 === 0 ? stale : undefined);
  const days: Record<string, number> = {};
  for (let back = 0; back < 30; back++)
    days[new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10)] =
      1_000_000 + i * 10 - back * 1000;
  history[repo] = days;
}
mkdirSync(path.join(root, '.ratchet'), { recursive: true });
writeFileSync(path.join(root, '.ratchet', 'size-history.json'), JSON.stringify(history));
line('repositories', `${count} in ${root}`);

const flags = launcherNodeFlags()
  .split(' ')
  .filter((flag) => flag !== '');
const started = performance.now();
const server = spawn(
  process.execPath,
  [...flags, entry, '--listen', '127.0.0.1:0', '--path', root, '--no-auth'],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
try {
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = / on (http:\/\/\S+) /.exec(out);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    server.on('exit', (code) => reject(new Error(`ratchet exited (${code}) before serving:\n${out}`)));
  });
  for (;;) {
    const res = await fetch(`${url}/.ratchet/api/repos`);
    await res.arrayBuffer();
    if (res.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  line('start until the count is done', `${(performance.now() - started).toFixed(0)} ms`);
  for (const [label, target] of [
    ['GET /.ratchet/ui/ (server)', '/.ratchet/ui/'],
    ['GET /.ratchet/api/repos (server)', '/.ratchet/api/repos'],
  ] as const) {
    const { median, p95, bytes } = await timedGets(`${url}${target}`);
    line(label, `median ${median.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, ${(bytes / 1024).toFixed(0)} KiB`);
  }

  const executablePath = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((file) => existsSync(file));
  if (executablePath === undefined) {
    line('browser', 'skipped: no Debian chromium');
  } else {
    const browser = await chromium.launch({ executablePath, headless: true });
    try {
      const page = await browser.newPage();
      const loads: number[] = [];
      const sorts: number[] = [];
      const filters: number[] = [];
      for (let round = 0; round < Math.min(rounds, 10); round++) {
        const begun = performance.now();
        await page.goto(`${url}/.ratchet/ui/`, { waitUntil: 'load' });
        loads.push(performance.now() - begun);
        // Measured inside the page: the click's handler and the layout it forces.
        sorts.push(
          await page.evaluate<number>(
            `(() => { const t = performance.now(); document.querySelector('th:nth-child(3) button').click(); document.body.offsetHeight; return performance.now() - t; })()`,
          ),
        );
        filters.push(
          await page.evaluate<number>(
            `(() => { const f = document.getElementById('filter'); const t = performance.now(); f.value = 'stale'; f.dispatchEvent(new Event('input')); document.body.offsetHeight; return performance.now() - t; })()`,
          ),
        );
      }
      const rows = await page.locator('#repos tbody tr').count();
      line(
        'browser: navigation to load',
        `median ${quantile(loads, 0.5).toFixed(0)} ms, p95 ${quantile(loads, 0.95).toFixed(0)} ms (${rows} rows)`,
      );
      line('browser: sort by size', `median ${quantile(sorts, 0.5).toFixed(0)} ms`);
      line('browser: filter', `median ${quantile(filters, 0.5).toFixed(0)} ms`);
    } finally {
      await browser.close();
    }
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(root, { recursive: true, force: true });
}

function mkdirOf(base: string, repo: string): string {
  const dir = path.join(base, repo);
  mkdirSync(dir, { recursive: true });
  return dir;
}
