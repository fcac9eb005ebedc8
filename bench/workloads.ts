/** The HTTP workloads: each one measures one or more figures against one server. */
import type { Sizes } from './config.ts';
import { BigObjectFactory, MiB, listingRepo, makeSmallObjects } from './fixtures.ts';
import type { UploadObject } from './fixtures.ts';
import { Connection, expectStatus, runPool, sendOnce } from './load-client.ts';
import type { PoolResult } from './load-client.ts';
import type { ServerHandle } from './peers.ts';
import { seededRandom } from './stats.ts';

/** One number in the results table. */
export interface Figure {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
}

const V2 = 'application/vnd.x.restic.rest.v2';
const rangeSize = 64 * 1024;
const smallSize = 4 * 1024;

/** Every figure of the bench, in table order. */
export const figures: readonly Figure[] = [
  { id: 'up16_c1', label: 'upload 16 MiB, c=1', unit: 'MiB/s', better: 'higher' },
  { id: 'up16_c2', label: 'upload 16 MiB, c=2', unit: 'MiB/s', better: 'higher' },
  { id: 'up16_c8', label: 'upload 16 MiB, c=8', unit: 'MiB/s', better: 'higher' },
  { id: 'up4k_c32', label: 'upload 4 KiB, c=32', unit: 'req/s', better: 'higher' },
  { id: 'range_c1', label: 'GET 64 KiB range, c=1', unit: 'req/s', better: 'higher' },
  { id: 'range_c8', label: 'GET 64 KiB range, c=8', unit: 'req/s', better: 'higher' },
  { id: 'get16_c1', label: 'GET 16 MiB whole, c=1', unit: 'MiB/s', better: 'higher' },
  { id: 'head_c32', label: 'HEAD, c=32', unit: 'req/s', better: 'higher' },
  { id: 'list_v2', label: 'list data objects (v2; 100k, 10k on S3)', unit: 'ms', better: 'lower' },
  { id: 'restic_init', label: 'restic init', unit: 's', better: 'lower' },
  { id: 'restic_backup', label: 'restic backup', unit: 's', better: 'lower' },
  { id: 'restic_check', label: 'restic check --read-data', unit: 's', better: 'lower' },
  { id: 'restic_restore', label: 'restic restore', unit: 's', better: 'lower' },
  { id: 'restic_backup2', label: 'restic second backup', unit: 's', better: 'lower' },
  { id: 'restic_forget', label: 'restic forget --prune', unit: 's', better: 'lower' },
  { id: 'peak_rss', label: 'peak RSS of the server', unit: 'MiB', better: 'lower' },
  { id: 'peak_rss_proc', label: 'peak RSS of its largest process', unit: 'MiB', better: 'lower' },
];

/** What one server accumulates during a round: the objects later steps read back. */
export interface RoundState {
  readonly repo: string;
  readonly big: UploadObject[];
  readonly small: UploadObject[];
}

/** A measured value, or the reason there is none. */
export type Measured = Readonly<Record<string, number | readonly number[] | Error>>;

/** One step of a round: run against each server in turn, in the same round. */
export interface Step {
  readonly name: string;
  readonly figures: readonly string[];
  run(server: ServerHandle, state: RoundState, sizes: Sizes): Promise<Measured>;
}

/** Turns a pool result into a rate, or an Error when nothing (or not all) succeeded. */
function rate(result: PoolResult, per: 'bytes' | 'requests'): number | Error {
  if (result.failed > 0 || result.completed === 0 || result.seconds <= 0) {
    return new Error(
      `${result.completed} ok, ${result.failed} failed: ${result.firstError ?? 'nothing ran'}`,
    );
  }
  return per === 'bytes' ? result.bytes / MiB / result.seconds : result.completed / result.seconds;
}

/** POSTs the objects into {repo}/data/ and remembers those that were stored. */
async function upload(
  server: ServerHandle,
  repo: string,
  objects: readonly UploadObject[],
  concurrency: number,
  seconds: number,
  stored: UploadObject[],
): Promise<PoolResult> {
  return runPool(server, { concurrency, count: objects.length, seconds }, async (i, connection) => {
    const object = objects[i]!;
    const info = await connection.request({
      method: 'POST',
      path: `/${repo}/data/${object.name}`,
      headers: { 'Content-Type': 'application/octet-stream', Accept: V2 },
      body: object.chunks,
      timeoutMs: 120_000,
    });
    expectStatus(info, [200], 'upload');
    stored.push(object);
    return object.size;
  });
}

/** Creates a fresh repository for the round (POST {repo}/?create=true). */
async function createRepo(server: ServerHandle, repo: string): Promise<void> {
  const info = await sendOnce(server, { method: 'POST', path: `/${repo}/?create=true` });
  expectStatus(info, [200], `create /${repo}/`);
}

let bigFactory: BigObjectFactory | undefined;

/** The maker of 16 MiB objects, whose shared random tail is made once per run. */
function factory(): BigObjectFactory {
  bigFactory ??= new BigObjectFactory(16 * MiB);
  return bigFactory;
}

const uploadBig: Step = {
  name: 'upload 16 MiB objects',
  figures: ['up16_c1', 'up16_c2', 'up16_c8'],
  async run(server, state, sizes) {
    await createRepo(server, state.repo);
    const out: Record<string, number | Error> = {};
    for (const c of [1, 2, 8] as const) {
      const objects = factory().make(sizes.bigUploads[c]);
      const result = await upload(server, state.repo, objects, c, sizes.capSeconds, state.big);
      out[`up16_c${c}`] = rate(result, 'bytes');
    }
    return out;
  },
};

const rangedGets: Step = {
  name: 'ranged GETs',
  figures: ['range_c1', 'range_c8'],
  async run(server, state, sizes) {
    const out: Record<string, number | Error> = {};
    const objects = state.big;
    for (const c of [1, 8] as const) {
      if (objects.length === 0) {
        out[`range_c${c}`] = new Error('no uploaded 16 MiB object to read');
        continue;
      }
      const count = sizes.rangeGets[c];
      const random = seededRandom(1000 + c);
      const offsets = Array.from({ length: count }, () => Math.floor(random() * (16 * MiB - rangeSize)));
      const result = await runPool(
        server,
        { concurrency: c, count, seconds: sizes.capSeconds },
        async (i, connection) => {
          const object = objects[i % objects.length]!;
          const start = offsets[i]!;
          const info = await connection.request({
            method: 'GET',
            path: `/${state.repo}/data/${object.name}`,
            headers: { Range: `bytes=${start}-${start + rangeSize - 1}`, Accept: V2 },
          });
          expectStatus(info, [206], 'ranged GET');
          if (info.bytes !== rangeSize) throw new Error(`ranged GET returned ${info.bytes} bytes`);
          return info.bytes;
        },
      );
      out[`range_c${c}`] = rate(result, 'requests');
    }
    return out;
  },
};

const fullGets: Step = {
  name: 'whole 16 MiB GETs',
  figures: ['get16_c1'],
  async run(server, state, sizes) {
    const objects = state.big;
    if (objects.length === 0) return { get16_c1: new Error('no uploaded 16 MiB object to read') };
    // One stream: on this VM, concurrent bulk loopback transfers are limited by the kernel, not the server.
    const c = 1;
    const result = await runPool(
      server,
      { concurrency: c, count: sizes.fullGets, seconds: sizes.capSeconds },
      async (i, connection) => {
        const object = objects[(i * 7) % objects.length]!;
        const info = await connection.request({
          method: 'GET',
          path: `/${state.repo}/data/${object.name}`,
          headers: { Accept: V2 },
          timeoutMs: 120_000,
        });
        expectStatus(info, [200], 'GET');
        if (info.bytes !== object.size) throw new Error(`GET returned ${info.bytes} of ${object.size} bytes`);
        return info.bytes;
      },
    );
    return { get16_c1: rate(result, 'bytes') };
  },
};

const uploadSmall: Step = {
  name: 'upload 4 KiB objects',
  figures: ['up4k_c32'],
  async run(server, state, sizes) {
    const objects = makeSmallObjects(sizes.smallUploads, smallSize);
    const result = await upload(server, state.repo, objects, 32, sizes.capSeconds, state.small);
    return { up4k_c32: rate(result, 'requests') };
  },
};

const heads: Step = {
  name: 'HEAD requests',
  figures: ['head_c32'],
  async run(server, state, sizes) {
    const objects = state.small;
    if (objects.length === 0) return { head_c32: new Error('no uploaded 4 KiB object to stat') };
    const c = 32;
    const result = await runPool(
      server,
      { concurrency: c, count: sizes.heads, seconds: sizes.capSeconds },
      async (i, connection) => {
        const object = objects[i % objects.length]!;
        const info = await connection.request({
          method: 'HEAD',
          path: `/${state.repo}/data/${object.name}`,
          headers: { Accept: V2 },
        });
        expectStatus(info, [200], 'HEAD');
        const length = info.headers.get('content-length');
        if (Number(length) !== object.size) {
          throw new Error(`HEAD Content-Length ${length} for ${object.size} bytes`);
        }
        return 0;
      },
    );
    return { head_c32: rate(result, 'requests') };
  },
};

/** Checks a v2 listing body: JSON array of {name, size} with the expected count. */
function checkListing(body: Buffer, expected: number): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return 'listing is not JSON';
  }
  if (!Array.isArray(parsed)) return 'listing is not an array';
  if (parsed.length !== expected) return `listing has ${parsed.length} entries, expected ${expected}`;
  const first = parsed[0] as { name?: unknown; size?: unknown } | undefined;
  if (expected > 0 && (typeof first?.name !== 'string' || typeof first.size !== 'number')) {
    return 'listing entries are not {name, size}';
  }
  return undefined;
}

const listing: Step = {
  name: 'list 100k objects',
  figures: ['list_v2'],
  async run(server, _state, sizes) {
    const times: number[] = [];
    const connection = new Connection(server);
    const listAll = async (): Promise<Error | undefined> => {
      for (let i = 0; i < sizes.listRepeats; i++) {
        const started = process.hrtime.bigint();
        const info = await connection.request({
          method: 'GET',
          path: `/${listingRepo}/data/`,
          headers: { Accept: V2 },
          collect: true,
          timeoutMs: 120_000,
        });
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (info.status !== 200) return new Error(`list: HTTP ${info.status}`);
        const type = info.headers.get('content-type');
        if (type !== V2) {
          return new Error(`list: Content-Type ${type}, not exactly ${V2}`);
        }
        const problem = checkListing(info.body ?? Buffer.alloc(0), server.listObjects ?? sizes.listObjects);
        if (problem !== undefined) return new Error(problem);
        times.push(ms);
      }
      return undefined;
    };
    const error = await listAll().finally(() => connection.close());
    if (error !== undefined) return { list_v2: error };
    return { list_v2: times };
  },
};

/** The HTTP steps of a round, in order (later steps read what earlier ones uploaded). */
export const httpSteps: readonly Step[] = [uploadBig, rangedGets, fullGets, uploadSmall, heads, listing];

/** Deletes the round's 16 MiB objects (not timed) so the disk does not fill up over rounds. */
export async function cleanupRound(server: ServerHandle, state: RoundState): Promise<void> {
  const objects = state.big.splice(0);
  await runPool(server, { concurrency: 8, count: objects.length, seconds: 120 }, async (i, connection) => {
    const info = await connection.request({
      method: 'DELETE',
      path: `/${state.repo}/data/${objects[i]!.name}`,
      headers: { Accept: V2 },
    });
    expectStatus(info, [200, 204], 'DELETE');
    return 0;
  });
}
