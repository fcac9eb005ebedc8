/**
 * Issue 19, case 2: an object written in place under its final name by another program (1 MiB,
 * a pause, then 3 MiB in all, as cp, scp or rsync --inplace do) is listed with its real size:
 * within the size check's bound while the server runs, and at once after a SIGTERM restart.
 */
import assert from 'node:assert/strict';
import { mkdir, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { raw, v2 } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import { startRatchet, withTempDir } from '../helpers/ratchet-process.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

const MiB = 1 << 20;
const name = 'ab'.repeat(32);

/** The sizes the server lists for the repository's data objects, by name. */
async function listedSizes(base: string): Promise<Map<string, number>> {
  const res = await raw(base, 'GET', '/r/data/', { headers: { Accept: v2 } });
  assert.equal(res.status, 200);
  const entries = JSON.parse(res.body.toString()) as { name: string; size: number }[];
  return new Map(entries.map((entry) => [entry.name, entry.size]));
}

async function headSize(base: string): Promise<number> {
  const res = await raw(base, 'HEAD', `/r/data/${name}`);
  assert.equal(res.status, 200);
  return Number(res.headers['content-length']);
}

/**
 * Writes the object in place in two steps while the server lists it: 1 MiB, then a pause longer
 * than the racy window during which listings see 1 MiB, then the rest up to 3 MiB.
 */
async function writeInTwoSteps(base: string, dataDir: string): Promise<void> {
  const file = path.join(dataDir, 'r', 'data', name.slice(0, 2), name);
  await mkdir(path.dirname(file), { recursive: true });
  let handle: FileHandle | undefined = await open(file, 'wx');
  try {
    await handle.write(Buffer.alloc(MiB, 1), 0, MiB, 0);
    for (let i = 0; i < 6; i++) {
      assert.equal((await listedSizes(base)).get(name), MiB);
      await sleep(500);
    }
    assert.equal((await listedSizes(base)).get(name), MiB);
    await handle.write(Buffer.alloc(2 * MiB, 2), 0, 2 * MiB, MiB);
    await handle.close();
    handle = undefined;
  } finally {
    await handle?.close();
  }
}

describe('objects written in place by another program', () => {
  it('are listed with their final size within the size check bound', async () => {
    await withTempDir(async (dataDir) => {
      // The bound made small for the test: a pass every 200 ms at most.
      const storage = new FsStorage({
        root: dataDir,
        sizeCheck: { passIntervalMs: 200, entriesPerSecond: 100_000 },
      });
      await storage.init();
      const server = await startTestServer(dataDir, {}, storage);
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        await writeInTwoSteps(server.url, dataDir);
        assert.equal(await headSize(server.url), 3 * MiB);
        // Huge margin over the bound (a pass every 200 ms), far under "forever".
        await waitFor(async () => (await listedSizes(server.url)).get(name) === 3 * MiB, 'the size check');
      } finally {
        await server.close();
      }
    });
  });

  it('are listed with their final size after a SIGTERM restart, even before any size check', async () => {
    await withTempDir(async (dataDir) => {
      const first = await startRatchet(dataDir, ['--no-auth']);
      try {
        assert.equal((await raw(first.url, 'POST', '/r/?create=true')).status, 200);
        await writeInTwoSteps(first.url, dataDir);
        // The listing may still say 1 MiB here (the next size check pass is up to a minute away).
      } finally {
        assert.equal(await first.stop(), 0);
      }
      const second = await startRatchet(dataDir, ['--no-auth']);
      try {
        assert.equal((await listedSizes(second.url)).get(name), 3 * MiB);
        assert.equal(await headSize(second.url), 3 * MiB);
      } finally {
        assert.equal(await second.stop(), 0);
      }
    });
  });
});
