/**
 * Storage-only micro benchmark (no HTTP): FsStorage.write of small objects, then optionally stat
 * or a 1 KiB ranged read of each, at a given concurrency, to A/B changes in src/storage/fs
 * without the network's noise. Prints operations per second and CPU µs per operation (all
 * threads: the event loop, libuv's pool and the kernel work they do).
 *
 *   node --import tsx bench/storage-micro.ts dist/storage/fs/fs-storage.js [write|stat|read] \
 *        [count=3000] [concurrency=32] [size=4096]
 *
 * The first argument is a built fs-storage.js, so two builds can be compared in one session.
 * Files are left behind on purpose in $MICRO_ROOT (default the system temp folder): on this VM's
 * ext4 without a journal, creating files right after deleting many scans every recently deleted
 * inode (the kernel's recently_deleted()), which would make the next run's writes CPU-bound.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Storage } from '../src/storage/storage.ts';
import { makeSmallObjects } from './fixtures.ts';
import { writeChecked } from '../src/storage/upload-check.ts';

type FsStorageClass = new (options: {
  root: string;
  logger?: unknown;
}) => Storage & { init(): Promise<void> };

const [
  entry = 'dist/storage/fs/fs-storage.js',
  op = 'write',
  countText = '3000',
  concText = '32',
  sizeText = '4096',
] = process.argv.slice(2);
const { FsStorage } = (await import(pathToFileURL(path.resolve(entry)).href)) as {
  FsStorage: FsStorageClass;
};
const count = Number(countText);
const conc = Number(concText);
const size = Number(sizeText);
const root = mkdtempSync(path.join(process.env.MICRO_ROOT ?? os.tmpdir(), 'ratchet-micro-'));
const noop = (): undefined => undefined;
// The SyncGuard reports (at debug level) when it falls back to the thread pool.
const logger = {
  debug: (o: unknown, m: string) => console.log('guard:', JSON.stringify(o), m),
  info: noop,
  warn: noop,
  error: noop,
};
const storage = new FsStorage({ root, logger });
await storage.init();
const repo = ['r'];
await storage.createRepo(repo);
const objects = makeSmallObjects(count, size);

async function runPool(n: number, f: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (next < n) await f(next++);
    }),
  );
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function* bodyOf(chunks: readonly Buffer[]): AsyncIterable<Uint8Array> {
  await Promise.resolve();
  yield* chunks;
}

const writeAll = (): Promise<number> =>
  runPool(count, async (i) => {
    const o = objects[i]!;
    await writeChecked(storage, { repo, type: 'data', name: o.name }, bodyOf(o.chunks), {
      sha256: o.name,
      length: size,
    });
  });

function report(ops: number, seconds: number, cpu: NodeJS.CpuUsage): void {
  const micros = cpu.user + cpu.system;
  console.log(
    `${op}: ${(ops / seconds).toFixed(0)}/s, cpu ${((micros / 1e6 / seconds) * 100).toFixed(0)}%, ${(micros / ops).toFixed(1)} us/op`,
  );
}

let cpu0 = process.cpuUsage();
let ops = count;
let seconds = await writeAll();
if (op !== 'write') {
  cpu0 = process.cpuUsage();
  ops = count * 5;
  seconds = await runPool(ops, async (i) => {
    const ref = { repo, type: 'data' as const, name: objects[i % count]!.name };
    if (op === 'stat') {
      if ((await storage.stat(ref)) !== size) throw new Error('bad size');
      return;
    }
    const result = await storage.read(ref, { kind: 'from', start: 0, end: 1023 });
    let n = result.data?.length ?? 0;
    if (result.body !== undefined) for await (const chunk of result.body) n += chunk.length;
    if (n !== 1024) throw new Error(`bad read ${n}`);
  });
}
report(ops, seconds, process.cpuUsage(cpu0));
await storage.close();
