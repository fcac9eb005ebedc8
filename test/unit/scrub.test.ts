/**
 * The scrub over a real file backend: it finds exactly the object whose bytes were changed on
 * disk, keeps a fixed order so a pass resumes after its saved position, and the background scrub
 * saves that position when stopped and resumes from it on the next start.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { BackgroundScrub, FileScrubState } from '../../src/scrub/background-scrub.ts';
import { reposInOrder, scrub } from '../../src/scrub/scrub.ts';
import type { CheckedObject } from '../../src/scrub/scrub.ts';
import type { ObjectType } from '../../src/domain/object-types.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import { sha256 } from '../helpers/http.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';

/** Stores `count` objects of each type in each repository; returns them by name. */
async function fill(storage: FsStorage, repos: string[], count: number, size = 1000): Promise<string[]> {
  const names: string[] = [];
  for (const repo of repos) {
    await storage.createRepo([repo]);
    for (const type of ['keys', 'snapshots', 'index', 'data', 'locks'] as ObjectType[]) {
      for (let i = 0; i < count; i++) {
        const data = randomBytes(size);
        const name = sha256(data);
        await writeChecked(storage, { repo: [repo], type, name }, Readable.from([data]), {
          sha256: name,
          length: size,
        });
        if (type !== 'locks') names.push(`${repo} ${type} ${name}`);
      }
    }
  }
  return names;
}

async function flipByte(file: string, at: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0x01;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

describe('scrub', () => {
  it('finds exactly the object whose bytes changed, and checks every other one once', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      const names = await fill(storage, ['a', 'b'], 3);
      const victim = names.find((n) => n.startsWith('b data')) ?? '';
      const victimName = victim.split(' ')[2] ?? '';
      await flipByte(path.join(dir, 'b', 'data', victimName.slice(0, 2), victimName), 500);

      const checked: CheckedObject[] = [];
      await scrub(storage, await reposInOrder(storage), { onChecked: (o) => void checked.push(o) });
      assert.deepEqual(
        checked.map((o) => `${o.repo} ${o.type} ${o.name}`).sort(),
        [...names].sort(),
        'locks left out',
      );
      const corrupt = checked.filter((o) => o.actual !== o.name);
      assert.deepEqual(
        corrupt.map((o) => `${o.repo} ${o.type} ${o.name}`),
        [victim],
      );
      assert.equal(corrupt[0]?.size, 1000);

      // Resuming after a position checks exactly what comes after it, in the same order.
      const middle = checked[7];
      assert.ok(middle);
      const rest: CheckedObject[] = [];
      await scrub(storage, await reposInOrder(storage), {
        after: middle,
        onChecked: (o) => void rest.push(o),
      });
      assert.deepEqual(rest, checked.slice(8));
    });
  });

  it('waits out an interval longer than a timer can hold (24.8 days) instead of starting again', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await fill(storage, ['a'], 1);
      const store = new FileScrubState(path.join(dir, 'scrub-state.json'));
      const options = { intervalMs: 30 * 86_400_000, bytesPerSecond: 0, startDelayMs: 0 };
      const scrubber = new BackgroundScrub(storage, store, silentLogger(), options);
      scrubber.start();
      await waitFor(() => scrubber.stats.passes === 1, 'the first pass');
      // A delay beyond 2^31 - 1 ms fires at once in Node: a second pass would follow within ms.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await scrubber.stop();
      assert.equal(scrubber.stats.passes, 1);
      assert.equal(scrubber.stats.objects, 4);
    });
  });

  it('saves its position when stopped and resumes from it on the next start', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      const names = await fill(storage, ['a', 'b'], 5, 10_000);
      const store = new FileScrubState(path.join(dir, 'scrub-state.json'));
      // 400 KB at 100 KB/s: the pass takes about 4 s, long enough to stop it in the middle.
      const options = { intervalMs: 3_600_000, bytesPerSecond: 100_000, startDelayMs: 0, saveEveryMs: 0 };
      const first = new BackgroundScrub(storage, store, silentLogger(), options);
      first.start();
      await waitFor(() => first.stats.objects >= 10, 'ten objects checked');
      await first.stop();
      const saved = await store.load();
      assert.equal(saved.inProgress, true);
      assert.ok(saved.position, 'the position is saved');

      const second = new BackgroundScrub(storage, store, silentLogger(), { ...options, bytesPerSecond: 0 });
      second.start();
      await waitFor(() => second.stats.passes === 1, 'the pass to complete', 30_000);
      await second.stop();
      assert.equal(
        first.stats.objects + second.stats.objects,
        names.length,
        'no object checked twice or left out',
      );
      assert.deepEqual(
        [...second.stats.lastPassMs.keys()].sort(),
        ['a', 'b'].filter((r) => r >= (saved.position?.repo ?? '')),
      );
      const after = await store.load();
      assert.equal(after.inProgress, undefined, 'no pass in progress');
      assert.equal(after.passStartedMs, saved.passStartedMs, 'the resumed pass kept its start');
    });
  });
});
