/** Quota decisions against real filesystem storage: reservations, limits, deletes, restarts. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RatchetError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { QuotaManager } from '../../src/quota/quota-manager.ts';
import type { QuotaLimits } from '../../src/quota/quota-manager.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import { summarizeRepo } from '../../src/usage/repo-summary.ts';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function* chunks(data: Buffer, size = 1000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

const exceeded = (err: unknown): boolean => err instanceof RatchetError && err.code === 'QUOTA_EXCEEDED';

async function withStore(
  limits: QuotaLimits,
  fn: (store: FsStorage, quota: QuotaManager, dir: string) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const store = new FsStorage({ root: dir });
    await store.init();
    await fn(store, new QuotaManager(store, limits, silentLogger()), dir);
  });
}

/** Uploads through the quota like the request handler does. */
async function upload(
  store: FsStorage,
  quota: QuotaManager,
  repo: string[],
  data: Buffer,
  user?: string,
  declare = true,
): Promise<void> {
  const reservation = await quota.reserve(repo, user, declare ? data.length : undefined);
  try {
    const result = await writeChecked(
      store,
      { repo, type: 'data', name: sha(data) },
      reservation.limit(chunks(data)),
      {
        sha256: sha(data),
        length: declare ? data.length : undefined,
      },
    );
    reservation.commit(result.created ? result.size : 0);
  } catch (err) {
    reservation.release();
    throw err;
  }
}

describe('quotas', () => {
  it('refuses an upload whose declared size would exceed the repository limit, before writing', async () => {
    await withStore(
      { maxTotalBytes: undefined, repoRules: [{ repos: ['/**'], maxBytes: 10_000 }], userRules: [] },
      async (store, quota) => {
        await store.createRepo(['r']);
        await upload(store, quota, ['r'], randomBytes(6000));
        const big = randomBytes(5000);
        await assert.rejects(upload(store, quota, ['r'], big), exceeded);
        assert.equal(await store.stat({ repo: ['r'], type: 'data', name: sha(big) }), undefined);
        await upload(store, quota, ['r'], randomBytes(4000));
        assert.equal((await summarizeRepo(store, ['r'])).bytes, 10_000);
      },
    );
  });

  it('cuts off a body without declared length when it overflows mid-stream, leaving nothing', async () => {
    await withStore({ maxTotalBytes: 8000, repoRules: [], userRules: [] }, async (store, quota, dir) => {
      await store.createRepo(['r']);
      const big = randomBytes(9000);
      await assert.rejects(upload(store, quota, ['r'], big, undefined, false), exceeded);
      assert.equal(await store.stat({ repo: ['r'], type: 'data', name: sha(big) }), undefined);
      const { readdir } = await import('node:fs/promises');
      const files = (await readdir(path.join(dir, 'r'), { recursive: true, withFileTypes: true })).filter(
        (e) => e.isFile(),
      );
      assert.deepEqual(files, []);
      await upload(store, quota, ['r'], randomBytes(7000), undefined, false);
    });
  });

  it('does not let concurrent uploads together overshoot', async () => {
    await withStore({ maxTotalBytes: 10_000, repoRules: [], userRules: [] }, async (store, quota) => {
      await store.createRepo(['r']);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => upload(store, quota, ['r'], randomBytes(3000))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
      assert.equal((await summarizeRepo(store, ['r'])).bytes, 9000);
    });
  });

  it('frees the bytes of a delete and counts nothing for a failed upload', async () => {
    await withStore({ maxTotalBytes: 10_000, repoRules: [], userRules: [] }, async (store, quota) => {
      await store.createRepo(['r']);
      const first = randomBytes(8000);
      await upload(store, quota, ['r'], first);
      await assert.rejects(upload(store, quota, ['r'], randomBytes(3000)), exceeded);
      // A failed upload (hash mismatch) releases its reservation.
      const reservation = await quota.reserve(['r'], undefined, 1000);
      await assert.rejects(
        writeChecked(
          store,
          { repo: ['r'], type: 'data', name: sha(Buffer.from('x')) },
          reservation.limit(chunks(randomBytes(1000))),
          {
            sha256: sha(Buffer.from('x')),
            length: 1000,
          },
        ),
      );
      reservation.release();
      await upload(store, quota, ['r'], randomBytes(2000));
      await store.delete({ repo: ['r'], type: 'data', name: sha(first) });
      quota.noteDeleted(['r']);
      await upload(store, quota, ['r'], randomBytes(7000));
    });
  });

  it('limits the total across repositories and each user below /<user>/', async () => {
    const limits: QuotaLimits = {
      maxTotalBytes: 20_000,
      repoRules: [],
      userRules: [{ users: ['*'], maxBytes: 6000 }],
    };
    await withStore(limits, async (store, quota) => {
      for (const repo of [['alice'], ['alice', 'laptop'], ['bob']]) await store.createRepo(repo);
      await upload(store, quota, ['alice'], randomBytes(3000), 'alice');
      await upload(store, quota, ['alice', 'laptop'], randomBytes(3000), 'alice');
      await assert.rejects(upload(store, quota, ['alice', 'laptop'], randomBytes(10), 'alice'), exceeded);
      await upload(store, quota, ['bob'], randomBytes(6000), 'bob');
      await assert.rejects(upload(store, quota, ['bob'], randomBytes(1), 'bob'), exceeded);
    });
  });

  it('counts what was already on disk, also after a restart', async () => {
    await withStore({ maxTotalBytes: 10_000, repoRules: [], userRules: [] }, async (store, _quota, dir) => {
      await store.createRepo(['old']);
      const existing = randomBytes(7000);
      await mkdir(path.join(dir, 'old', 'data', sha(existing).slice(0, 2)));
      await writeFile(path.join(dir, 'old', 'data', sha(existing).slice(0, 2), sha(existing)), existing);
      await store.close();
      const restarted = new FsStorage({ root: dir });
      await restarted.init();
      const quota = new QuotaManager(
        restarted,
        { maxTotalBytes: 10_000, repoRules: [], userRules: [] },
        silentLogger(),
      );
      await restarted.createRepo(['new']);
      await assert.rejects(upload(restarted, quota, ['new'], randomBytes(4000)), exceeded);
      await upload(restarted, quota, ['new'], randomBytes(3000));
    });
  });
});
