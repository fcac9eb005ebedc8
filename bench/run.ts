/**
 * `npm run bench`: Ratchet against its peers (rclone serve restic, nginx with Lua, and
 * rest-server when REST_SERVER_BIN is set) on loopback, the same workload interleaved and
 * repeated, a table of medians with Ratchet/peer ratios, JSON and an SVG chart in bench/results/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderChart } from './chart.ts';
import { parseOptions, sizesFor } from './config.ts';
import type { Sizes } from './config.ts';
import { linkListingRepo, listingRepo, writeDataset, writeListingRepo } from './fixtures.ts';
import {
  ceilingPeer,
  nginxPeer,
  ratchetPeer,
  ratchetWorkersPeer,
  rclonePeer,
  restServerPeer,
} from './peers.ts';
import type { PeerSpec, ServerHandle } from './peers.ts';
import { largestPeakRssMiB, peakRssMiB } from './proc.ts';
import { ratchetS3Peer, ratchetS3TwoPeer, rcloneS3Peer } from './s3-peers.ts';
import {
  formatClientTable,
  formatErrors,
  formatNumber,
  formatTable,
  newResults,
  record,
  writeResults,
} from './report.ts';
import type { Results } from './report.ts';
import { resticEndToEnd } from './restic.ts';
import { buildRatchet, ensureDebianPackages, machineInfo, run, toolVersion } from './system.ts';
import { cleanupRound, figures, httpSteps } from './workloads.ts';
import type { Measured, RoundState, Step } from './workloads.ts';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

function log(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  console.log(`[${t}] ${message}`);
}

/** Ratchet's version: package.json plus the git commit it was built from. */
function ratchetVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  const rev = run('git', ['rev-parse', '--short', 'HEAD'], { cwd: projectRoot }).stdout.trim();
  const dirty = run('git', ['status', '--porcelain', '--', 'src'], { cwd: projectRoot }).stdout.trim() !== '';
  return `${pkg.version}${rev ? ` (${rev}${dirty ? ', src modified' : ''})` : ''}`;
}

function versionOf(name: string): string {
  switch (name) {
    case 'ratchet':
    case 'ratchet-s3':
    case 'ratchet-w2':
    case 'ratchet-w4':
      return ratchetVersion();
    case 'rclone':
    case 'rclone-s3':
      return toolVersion('rclone', ['version']);
    case 'nginx':
    case 'ceiling':
      return toolVersion('nginx', ['-v']).replace(/^nginx version: /, '');
    case 'rest-server':
      return toolVersion(process.env.REST_SERVER_BIN ?? 'rest-server', ['--version']);
    case 'ratchet-base':
      return process.env.RATCHET_BASE_ENTRY ?? 'unknown';
    default:
      return 'unknown';
  }
}

/** One line per measurement, for following a run as it goes. */
function describe(step: Step, server: string, measured: Measured, results: Results): string {
  const parts = step.figures.map((id) => {
    const v = measured[id];
    const unit = results.figures.find((f) => f.id === id)?.unit ?? '';
    if (v instanceof Error) return `${id} error: ${v.message.split('\n')[0]}`;
    const values = typeof v === 'number' ? [v] : (v ?? []);
    return `${values.map(formatNumber).join(' / ')} ${unit}`;
  });
  return `${server.padEnd(11)} ${parts.join(', ')}`;
}

/** Records the server's peak RSS (MiB, 0 once it has exited) after a step; returns it. */
function recordPeakRss(results: Results, step: string, server: ServerHandle): number {
  const peak = server.alive() ? Math.round(peakRssMiB(server.pid)) : 0;
  ((results.peakRssAfter[step] ??= {})[server.name] ??= []).push(peak);
  return peak;
}

/** Measures one step on one server, recording figures and the client's CPU use. */
async function measure(
  step: Step,
  server: ServerHandle,
  state: RoundState,
  sizes: Sizes,
  results: Results,
): Promise<void> {
  let measured: Measured;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  if (!server.alive()) {
    measured = Object.fromEntries(step.figures.map((id) => [id, new Error(`${server.name} is not running`)]));
  } else {
    try {
      measured = await step.run(server, state, sizes);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      measured = Object.fromEntries(step.figures.map((id) => [id, error]));
    }
  }
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const load = (used.user + used.system) / 1e6 / Math.max(wall, 1e-9);
  const byServer = (results.clientCpu[step.name] ??= {});
  (byServer[server.name] ??= []).push(Math.round(load * 100) / 100);
  for (const id of step.figures) record(results, id, server.name, measured[id] ?? new Error('not measured'));
  const peak = recordPeakRss(results, step.name, server);
  log(
    `  ${describe(step, server.name, measured, results)}  (client CPU ${Math.round(load * 100)}%, server peak RSS ${peak} MiB)`,
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const sizes = sizesFor(options);
  const startedAt = Date.now();
  const createdAt = new Date().toISOString();

  const entry = buildRatchet(projectRoot, options.build);
  const restServerBin = process.env.REST_SERVER_BIN;
  let specs: PeerSpec[] = [
    ratchetPeer(entry),
    ...options.workers.map((n) => ratchetWorkersPeer(entry, n)),
    rclonePeer(),
    nginxPeer(),
    ceilingPeer(),
  ];
  if (restServerBin) specs.push(restServerPeer(path.resolve(restServerBin)));
  if (options.s3) specs.push(ratchetS3Peer(entry), ratchetS3TwoPeer(entry), rcloneS3Peer());
  // An earlier build measured in the same run, e.g. /tmp/base/dist/cli/main.js: "slower than
  // before" is then judged against the same run-to-run noise.
  const baseEntry = process.env.RATCHET_BASE_ENTRY;
  if (baseEntry) specs.splice(1, 0, ratchetPeer(path.resolve(baseEntry), 'ratchet-base'));
  if (options.only !== undefined) {
    const only = options.only;
    const unknown = only.filter((n) => !specs.some((s) => s.name === n));
    if (unknown.length > 0) throw new Error(`unknown server(s): ${unknown.join(', ')}`);
    specs = specs.filter((s) => only.includes(s.name));
  }

  const packages = [
    ...new Set([...specs.flatMap((s) => s.debianPackages), ...(options.restic ? ['restic'] : [])]),
  ];
  const stillMissing = ensureDebianPackages(packages, options.install);
  const useRestic = options.restic && !stillMissing.includes('restic');
  specs = specs.filter((s) => {
    const why = s.unavailable();
    if (why !== undefined) log(`skipping ${s.name}: ${why}`);
    return why === undefined;
  });
  if (specs.length === 0) throw new Error('no server to benchmark');

  const versions: Record<string, string> = {};
  for (const s of specs) versions[s.name] = versionOf(s.name);
  if (useRestic) versions.restic = toolVersion('restic', ['version']);
  const results = newResults(
    {
      createdAt,
      mode: options.quick ? 'quick' : 'full',
      rounds: sizes.rounds,
      machine: machineInfo(versions),
      servers: specs.map((s) => ({
        name: s.name,
        version: versions[s.name] ?? 'unknown',
        behaviour: s.behaviour,
      })),
    },
    useRestic ? figures : figures.filter((f) => !f.id.startsWith('restic_')),
  );
  results.notes.push(
    'Load generator: a minimal HTTP/1.1 keep-alive client on node:net in the bench process, one connection ' +
      'per concurrent request; it shares the cores with the server under test, so request rates near its own ' +
      'ceiling are client-bound (clientCpu in the JSON: 1.0 means one core busy in the client).',
  );
  if (!useRestic) results.notes.push('restic end-to-end steps skipped.');

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ratchet-bench-'));
  const servers: ServerHandle[] = [];
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await Promise.all(servers.map((s) => s.stop()));
    if (!options.keep) rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    log('interrupted: stopping servers');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    log(`bench (${results.mode}, ${sizes.rounds} rounds) in ${tmp}`);
    const busy = os.loadavg()[0] ?? 0;
    if (busy > 0.5) {
      results.notes.push(
        `the machine was busy when the run started (load average ${busy.toFixed(2)} on ${os.availableParallelism()} cores): ` +
          'other processes share the cores, figures are noisier than on an idle machine',
      );
      log(`warning: ${results.notes.at(-1) ?? ''}`);
    }
    const dataset = path.join(tmp, 'dataset');
    if (useRestic) {
      const bytes = writeDataset(dataset, sizes.dataset);
      log(
        `restic data set: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${sizes.dataset.largeFiles + sizes.dataset.smallFiles} files`,
      );
    }
    // The listing repository is written once, then hard-linked into each server's data folder.
    const listStarted = Date.now();
    const template = path.join(tmp, 'listing-template');
    writeListingRepo(template, listingRepo, sizes.listObjects);
    for (const spec of specs) {
      const dataDir = path.join(tmp, spec.name, 'data');
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      linkListingRepo(template, dataDir);
    }
    log(`wrote ${sizes.listObjects} listing objects in ${((Date.now() - listStarted) / 1000).toFixed(1)} s`);
    for (const spec of specs) {
      const server = await spec.start(path.join(tmp, spec.name));
      servers.push(server);
      log(`${spec.name} ${versions[spec.name] ?? ''} listening on ${server.baseUrl} (pid ${server.pid})`);
    }

    let lastRoundSeconds = 0;
    for (let round = 0; round < sizes.rounds; round++) {
      const elapsed = (Date.now() - startedAt) / 1000;
      if (round > 0 && elapsed + lastRoundSeconds > sizes.budgetSeconds) {
        results.notes.push(
          `stopped after ${round} of ${sizes.rounds} rounds: another round (${Math.round(lastRoundSeconds)} s) ` +
            `would pass the time budget of ${sizes.budgetSeconds} s`,
        );
        log(results.notes.at(-1) ?? '');
        break;
      }
      const roundStarted = Date.now();
      // Interleave: every step runs on every server before the next step; the order rotates.
      const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
      const states = new Map<string, RoundState>(
        servers.map((s) => [s.name, { repo: `bench-r${round}`, big: [], small: [] }]),
      );
      log(`round ${round + 1}/${sizes.rounds}: ${order.map((s) => s.name).join(' → ')}`);
      for (const step of httpSteps) {
        log(` ${step.name}`);
        for (const server of order) {
          // The ceiling stores nothing: it has no listing to measure.
          if (server.name === 'ceiling' && step.figures.includes('list_v2')) continue;
          await measure(step, server, states.get(server.name)!, sizes, results);
        }
      }
      if (useRestic) {
        log(' restic end to end');
        for (const server of order) {
          if (server.name === 'ceiling') continue;
          const measured = await resticEndToEnd(
            server,
            `e2e-r${round}`,
            dataset,
            sizes.dataset,
            path.join(tmp, server.name, 'e2e'),
            sizes.resticStepSeconds,
          );
          for (const [id, value] of Object.entries(measured)) record(results, id, server.name, value);
          const line = Object.entries(measured)
            .map(
              ([id, v]) =>
                `${id.replace('restic_', '')} ${v instanceof Error ? 'error' : typeof v === 'number' ? v.toFixed(2) : v.join('/')}`,
            )
            .join(', ');
          const peak = recordPeakRss(results, 'restic end to end', server);
          log(`  ${server.name.padEnd(11)} ${line}  (server peak RSS ${peak} MiB)`);
          for (const v of Object.values(measured))
            if (v instanceof Error) log(`    ${v.message.split('\n')[0]}`);
        }
      }
      for (const server of order) {
        if (server.alive()) await cleanupRound(server, states.get(server.name)!);
      }
      results.roundsCompleted = round + 1;
      lastRoundSeconds = (Date.now() - roundStarted) / 1000;
    }
    for (const server of servers) {
      record(
        results,
        'peak_rss',
        server.name,
        server.alive() ? peakRssMiB(server.pid) : new Error('server exited'),
      );
      record(
        results,
        'peak_rss_proc',
        server.name,
        server.alive() ? largestPeakRssMiB(server.pid) : new Error('server exited'),
      );
    }
  } finally {
    await cleanup();
  }

  results.wallSeconds = Math.round((Date.now() - startedAt) / 1000);
  results.loadAverage.push(...os.loadavg().map((x) => Math.round(x * 100) / 100));
  const files = writeResults(
    options.outDir ?? path.join(projectRoot, 'bench', 'results'),
    results,
    renderChart(results),
  );
  console.log('');
  console.log(formatTable(results));
  console.log('');
  console.log(formatClientTable(results));
  console.log('');
  const errors = formatErrors(results);
  if (errors.length > 0) {
    console.log('Errors:');
    for (const e of errors) console.log(`  ${e}`);
    console.log('');
  }
  for (const note of results.notes) console.log(`Note: ${note}`);
  console.log(`\nWall time ${results.wallSeconds} s. Results: ${files.json}\nChart: ${files.svg}`);
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
