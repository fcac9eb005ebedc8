/**
 * The cost of listing one repository's data objects with the file backend's index: cold (no
 * saved index), warm (the index in memory), after a restart with a saved index that proves
 * itself, and after a restart whose saved index is discarded (damaged). The page cache is warm
 * in every case: "cold" is about the index, not the disk.
 *
 * Usage: node --import tsx bench/index-listing.ts [objects=100000] [folder=<tmp>]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FsStorage } from '../src/storage/fs/fs-storage.ts';
import { indexFileName } from '../src/storage/fs/index-file.ts';

const count = Number(process.argv[2] ?? 100_000);
const root = mkdtempSync(path.join(process.argv[3] ?? tmpdir(), 'ratchet-index-bench-'));
const indexFile = path.join(root, '.ratchet', indexFileName);

async function timed(label: string, work: () => Promise<string | void>): Promise<void> {
  const started = performance.now();
  const result = await work();
  const ms = performance.now() - started;
  console.log(
    `${label.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms${result === undefined ? '' : `  (${result})`}`,
  );
}

async function listData(storage: FsStorage): Promise<string> {
  let objects = 0;
  for await (const entry of storage.list(['r'], 'data')) objects += entry.size > 0 ? 1 : 0;
  const { folderReads, entryStats } = storage.index.counts;
  return `${objects} objects; ${folderReads} folder reads, ${entryStats} stats so far`;
}

async function started(): Promise<FsStorage> {
  const storage = new FsStorage({ root });
  await storage.init();
  return storage;
}

try {
  const setup = await started();
  await setup.createRepo(['r']);
  await setup.close();
  rmSync(indexFile, { force: true });
  for (let i = 0; i < count; i++) {
    const name = createHash('sha256').update(String(i)).digest('hex');
    // Fan-out folders are made on first upload: made here as a writer would.
    const dir = path.join(root, 'r', 'data', name.slice(0, 2));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, name), name);
  }
  // Let every file and folder leave the racy window.
  await new Promise((resolve) => setTimeout(resolve, 2100));
  console.log(`${count} objects in one repository's data folders, ${root}`);

  let storage = await started();
  await timed('cold index (no saved file): list', () => listData(storage));
  await timed('warm index: list again', () => listData(storage));
  await timed('shutdown: save the index (stats every entry)', () => storage.close());

  await timed('restart with a saved index: start', async () => {
    storage = await started();
  });
  await timed('saved index: list', () => listData(storage));
  await storage.close();

  const saved = readFileSync(indexFile);
  const middle = Math.floor(saved.length / 2);
  saved[middle] = (saved[middle] ?? 0) ^ 1;
  writeFileSync(indexFile, saved);
  await timed('restart with a damaged index: start', async () => {
    storage = await started();
  });
  await timed('discarded index: list', () => listData(storage));
  await storage.close();
} finally {
  rmSync(root, { recursive: true, force: true });
}
