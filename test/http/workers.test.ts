/**
 * --workers 2 through the real command: several processes on one listener must behave as one
 * server. Each request below opens its own connection, which node:cluster hands to the workers
 * in turn, so consecutive requests reach different workers: a quota, throttle or metric kept per
 * worker would show (twice the uploads, twice the failures, half the counts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, blob, raw, upload } from '../helpers/http.ts';
import { sampleValue, scrapeMetrics } from '../helpers/metrics.ts';
import { makeTempDir, startRatchet, startRatchetServer } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const bounded = { timeout: 90_000 };

/** The worker processes of a primary (its children). */
function workerPids(server: RatchetProcess): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(server.child.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there is none
  }
}

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Bytes of every data object stored below the folder. */
async function storedDataBytes(dir: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for (const sub of await readdir(dir).catch(() => [])) {
    for (const name of await readdir(path.join(dir, sub)).catch(() => [])) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      count++;
      bytes += (await stat(path.join(dir, sub, name))).size;
    }
  }
  return { count, bytes };
}

/**
 * Starts an upload whose body is sent only when `finish` is called: the request is in the
 * worker (its room reserved) until then. Resolves to the status.
 */
function slowUpload(base: string, repo: string, data: Buffer, name: string) {
  const url = new URL(base);
  let answered: (status: number) => void = () => undefined;
  const status = new Promise<number>((resolve) => (answered = resolve));
  const req = request(
    {
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path: `${repo}data/${name}`,
      headers: { 'Content-Length': data.length, 'Content-Type': 'application/octet-stream' },
      agent: false,
    },
    (res) => {
      res.resume();
      answered(res.statusCode ?? 0);
    },
  );
  req.on('error', () => answered(-1));
  req.write(data.subarray(0, 1));
  return { status, finish: () => req.end(data.subarray(1)) };
}

describe('--workers 2: one quota for every worker', () => {
  let server: RatchetProcess;
  let cleanup: () => Promise<void>;
  // Room left after the race: a repository can still be created for the next test.
  const limit = 1024 * 1024 + 100 * 1024;
  before(async () => {
    const tmp = await makeTempDir();
    cleanup = tmp.cleanup;
    // A fixed port: when every worker died, the replacements bind it again (port 0 would be a new one).
    server = await startRatchetServer([
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--path',
      path.join(tmp.dir, 'data'),
      '--no-auth',
      '--workers',
      '2',
      '--max-size',
      String(limit),
      '--prometheus',
    ]);
    assert.equal(workerPids(server).length, 2, 'two workers');
  });
  after(async () => {
    const code = await server.stop();
    await cleanup();
    assert.equal(code, 0, `clean exit: ${server.stderr()}`);
  });

  it('stores exactly what fits when uploads race through both workers', bounded, async () => {
    assert.equal((await raw(server.url, 'POST', '/q/?create=true')).status, 200);
    const size = 64 * 1024;
    const blobs = Array.from({ length: 40 }, () => blob(size));
    const answers = await Promise.all(blobs.map(({ data }) => upload(server.url, '/q/', 'data', data)));
    const statuses = answers.map((answer) => answer.status);
    assert.deepEqual([...new Set(statuses)].sort(), [200, 507], statuses.join(' '));
    const fits = Math.floor(limit / size);
    assert.equal(statuses.filter((status) => status === 200).length, fits);
    const stored = await storedDataBytes(path.join(server.dataDir, 'q', 'data'));
    assert.deepEqual(stored, { count: fits, bytes: fits * size });
    // One view of the metrics: counters summed over the workers, shared gauges taken once
    // (each worker's copy of the usage catches up within a second).
    let samples = await scrapeMetrics(server.url);
    await waitFor(async () => {
      samples = await scrapeMetrics(server.url);
      return (
        sampleValue(samples, 'ratchet_repo_size_bytes', { repo: 'q' }) === fits * size &&
        sampleValue(samples, 'ratchet_quota_used_bytes', { scope: 'total' }) === fits * size
      );
    }, 'the usage gauges to show the stored bytes once');
    assert.equal(
      sampleValue(samples, 'rest_server_blob_write_total', { repo: 'q', type: 'data', user: '' }),
      fits,
    );
  });

  it('releases the room of a killed worker and replaces it', bounded, async () => {
    assert.equal((await raw(server.url, 'POST', '/k/?create=true')).status, 200);
    const used = (await storedDataBytes(path.join(server.dataDir, 'q', 'data'))).bytes;
    const room = limit - used;
    assert.ok(room > 1024, `room left: ${room}`);
    // An upload that holds all the room, in whichever worker took it.
    const big = blob(room);
    const held = slowUpload(server.url, '/k/', big.data, big.name);
    await waitFor(async () => {
      const samples = await scrapeMetrics(server.url);
      return sampleValue(samples, 'ratchet_uploads_in_flight') === 1;
    }, 'the upload to be in flight');
    const small = blob(1024);
    assert.equal((await upload(server.url, '/k/', 'data', small.data)).status, 507, 'the room is held');
    const before = workerPids(server);
    for (const pid of before) process.kill(pid, 'SIGKILL');
    assert.equal(await held.status, -1, 'the held upload was cut');
    await waitFor(
      () => {
        const now = workerPids(server);
        return now.length === 2 && now.every((pid) => !before.includes(pid) && isRunning(pid));
      },
      'two new workers',
      20_000,
    );
    await waitFor(
      async () =>
        (await raw(server.url, 'GET', '/.ratchet/health').catch(() => ({ status: 0 }))).status === 200,
      'the new workers to serve',
    );
    // The dead workers' holds are gone: the whole room is there again.
    const again = blob(room);
    const stored = await upload(server.url, '/k/', 'data', again.data);
    assert.equal(stored.status, 200, stored.body.toString());
    assert.match(server.stdout() + server.stderr(), /a worker stopped; starting another/);
  });
});

describe('--workers 2: one login throttle', () => {
  it('blocks a client after five failures in all, whichever worker saw them', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const server = await startRatchet(path.join(dir, 'data'), ['--workers', '2']);
    try {
      const password = /password:\s+(\S+)/.exec(server.stdout())?.[1];
      assert.ok(password, server.stdout());
      const good = { Authorization: basic('admin', password) };
      const bad = { Authorization: basic('admin', 'wrong') };
      const probe = (headers: Record<string, string>) => raw(server.url, 'HEAD', '/r/config', { headers });
      assert.equal((await probe(good)).status, 404);
      // Five failures of the pair (address, admin) in all: with a throttle per worker each
      // would have seen two or three, and none would block.
      for (let i = 0; i < 5; i++) assert.equal((await probe(bad)).status, 401, `failure ${i + 1}`);
      // Blocked on every worker, the right password included.
      for (let i = 0; i < 4; i++) {
        const answer = await probe(i % 2 === 0 ? bad : good);
        assert.equal(answer.status, 429, `request ${i + 1} after the block`);
        assert.ok(Number(answer.headers['retry-after']) > 0);
      }
    } finally {
      const code = await server.stop();
      await cleanup();
      assert.equal(code, 0, server.stderr());
    }
  });
});

describe('--workers 2: signals', () => {
  // kill $MAINPID signals the primary alone; systemd's stop (KillMode=control-group) and a
  // terminal's Ctrl-C signal every process at once, so each worker hears it twice, in either order.
  for (const whom of ['the primary', 'every process'] as const) {
    it(
      `finishes uploads in flight when ${whom} gets SIGTERM, then every process exits`,
      bounded,
      async () => {
        const { dir, cleanup } = await makeTempDir();
        const server = await startRatchet(path.join(dir, 'data'), ['--no-auth', '--workers', '2']);
        try {
          const pids = workerPids(server);
          assert.equal(pids.length, 2);
          assert.equal((await raw(server.url, 'POST', '/s/?create=true')).status, 200);
          const data = blob(256 * 1024);
          const held = slowUpload(server.url, '/s/', data.data, data.name);
          await sleep(200);
          const exited = once(server.child, 'exit');
          server.child.kill('SIGTERM');
          if (whom === 'every process') for (const pid of pids) process.kill(pid, 'SIGTERM');
          await waitFor(() => server.stderr().includes('shutting down the workers'), 'the shutdown to begin');
          await sleep(300);
          held.finish();
          assert.equal(await held.status, 200, `the upload in flight finished: ${server.stderr()}`);
          const [code] = (await exited) as [number | null];
          assert.equal(code, 0, server.stderr());
          for (const pid of pids) assert.equal(isRunning(pid), false, `worker ${pid} exited`);
          assert.doesNotMatch(server.stderr(), /second signal/);
          const stored = await stat(path.join(server.dataDir, 's', 'data', data.name.slice(0, 2), data.name));
          assert.equal(stored.size, data.data.length);
        } finally {
          await server.stop();
          await cleanup();
        }
      },
    );
  }

  it('passes SIGHUP to every worker', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const server = await startRatchet(path.join(dir, 'data'), ['--no-auth', '--workers', '2']);
    try {
      server.child.kill('SIGHUP');
      const reloads = (): Set<string> =>
        new Set(
          server
            .stderr()
            .split('\n')
            .filter((line) => line.includes('SIGHUP: reloading'))
            .map((line) => String((JSON.parse(line) as { worker?: number }).worker)),
        );
      await waitFor(() => reloads().size === 2, `both workers to reload: ${server.stderr()}`);
      assert.equal((await raw(server.url, 'GET', '/.ratchet/health')).status, 200);
    } finally {
      assert.equal(await server.stop(), 0, server.stderr());
      await cleanup();
    }
  });

  it('refuses a second server on the data folder while the workers run', bounded, async () => {
    const { dir, cleanup } = await makeTempDir();
    const data = path.join(dir, 'data');
    const server = await startRatchet(data, ['--no-auth', '--workers', '2']);
    try {
      const second = await startRatchet(data, ['--no-auth']).then(
        async (other) => {
          await other.stop();
          return 'started';
        },
        (err: unknown) => (err as Error).message,
      );
      assert.match(second, /in use by another ratchet process/);
    } finally {
      assert.equal(await server.stop(), 0, server.stderr());
      await cleanup();
    }
  });
});
