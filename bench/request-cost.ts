/**
 * Server CPU per request, for per-request overhead work: each build gets a fresh server and
 * data folder, a warm-up, then N HEADs of one object and N/5 uploads of 4 KiB objects over four
 * keep-alive connections; the server's CPU time (all threads, user and kernel, from /proc) is
 * divided by the requests. Builds alternate, rounds repeat; medians and ranges at the end. Less
 * noisy than throughput on a shared 2-core machine, since the client's own CPU is not counted.
 *
 *   node --import tsx bench/request-cost.ts [--rounds 3] [--requests 20000] \
 *        base=/tmp/base/dist/cli/main.js new=dist/cli/main.js
 *
 * A build is `name=ENTRY`; Node.js flags as in bin/ratchet (--max-semi-space-size=1) are added.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, launch, ratchetArgs } from './peers.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '3' }, requests: { type: 'string', default: '20000' } },
});
const builds = positionals.map((text) => {
  const [name = '', entry = ''] = text.split('=');
  return { name, entry: path.resolve(entry) };
});
if (builds.length === 0) throw new Error('name at least one build: name=ENTRY');
const requests = Number(values.requests);

/** User and kernel CPU seconds of the process (all its threads). */
function cpuOf(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, sys: Number(fields[12]) / 100 };
}

/** Sends `count` requests made by `make`, four at a time over keep-alive connections. */
async function drive(count: number, make: (agent: Agent) => Promise<void>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      await make(agent);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  agent.destroy();
}

function send(port: number, agent: Agent, method: string, target: string, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'Content-Length': body.length };
    const req = request({ host: '127.0.0.1', port, method, path: target, agent, headers }, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`${method} ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function upload(port: number, agent: Agent): Promise<void> {
  const data = randomBytes(4096);
  await send(port, agent, 'POST', `/r/data/${createHash('sha256').update(data).digest('hex')}`, data);
}

async function measure(entry: string): Promise<{ head: number; upload: number }> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'ratchet-request-cost-'));
  mkdirSync(path.join(work, 'data'));
  const port = await freePort();
  const args = ratchetArgs(entry, port, path.join(work, 'data'), ['--max-semi-space-size=1']);
  const server = await launch('ratchet', process.execPath, args, work, port, path.join(work, 'data'));
  try {
    const data = randomBytes(100);
    const name = createHash('sha256').update(data).digest('hex');
    const warm = new Agent({ keepAlive: true });
    await send(port, warm, 'POST', '/r/?create=true');
    await send(port, warm, 'POST', `/r/data/${name}`, data);
    warm.destroy();
    const perRequest = async (count: number, make: (agent: Agent) => Promise<void>): Promise<number> => {
      await drive(count / 2, make);
      const before = cpuOf(server.pid);
      await drive(count, make);
      const after = cpuOf(server.pid);
      return ((after.user - before.user + after.sys - before.sys) * 1e6) / count;
    };
    const head = await perRequest(requests, (agent) => send(port, agent, 'HEAD', `/r/data/${name}`));
    const uploads = await perRequest(requests / 5, (agent) => upload(port, agent));
    return { head, upload: uploads };
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

const results = new Map(
  builds.map((build) => [build.name, { head: [] as number[], upload: [] as number[] }]),
);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const build of builds) {
    const { head, upload: uploads } = await measure(build.entry);
    results.get(build.name)?.head.push(head);
    results.get(build.name)?.upload.push(uploads);
    console.log(
      `r${round} ${build.name.padEnd(8)} HEAD ${head.toFixed(0)} µs, 4 KiB upload ${uploads.toFixed(0)} µs`,
    );
  }
}
const summary = (xs: number[]): string => {
  const sorted = [...xs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  return `${median.toFixed(0)} (${(sorted[0] ?? 0).toFixed(0)}-${(sorted.at(-1) ?? 0).toFixed(0)})`;
};
console.log('\nserver CPU per request, median (min-max):');
for (const [name, { head, upload: uploads }] of results)
  console.log(`  ${name.padEnd(8)} HEAD ${summary(head)} µs   4 KiB upload ${summary(uploads)} µs`);
