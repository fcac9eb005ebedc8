/**
 * Quota decisions against real filesystem storage and the usage ledger: reservations, limits,
 * deletes, restarts, and repository creation.
 */
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
import type { Storage } from '../../src/storage/storage.ts';
import { measureRepo } from '../../src/usage/measure.ts';
import { UsageLedger } from '../../src/usage/usage-ledger.ts';
import { MemoryUsageStore } from '../../src/usage/usage-store.ts';
import { countingStorage } from '../helpers/counting-storage.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function* chunks(data: Buffer, size = 1000): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

const noLimits: QuotaLimits = { maxTotalBytes: undefined, repoRules: [], userRules: [] };

const exceeded = (err: unknown): boolean => err instanceof RatchetError && err.code === 'QUOTA_EXCEEDED';

/** A quota manager over a started ledger of the storage; the ledger stops when fn ends. */
async function quotaOver<T>(
  store: Storage,
  limits: QuotaLimits,
  fn: (quota: QuotaManager) => Promise<T>,
): Promise<T> {
  const ledger = new UsageLedger(store, new MemoryUsageStore(), silentLogger());
  ledger.start();
  try {
    return await fn(new QuotaManager(ledger, limits));
  } finally {
    await ledger.stop();
  }
}

async function withStore(
  limits: QuotaLimits,
  fn: (store: FsStorage, quota: QuotaManager, dir: string) => Promise<void>,
): Promise<void> {
  return withTempDir(async (dir) => {
    const store = new FsStorage({ root: dir });
    await store.init();
    await quotaOver(store, limits, (quota) => fn(store, quota, dir));
  });
}

const bytesOf = async (store: FsStorage, repo: string[]): Promise<number> =>
  (await measureRepo(store, repo)).bytes;

/** Uploads through the quota like the request handler does. */
async function upload(
  store: FsStorage,
  quota: QuotaManager,
  repo: string[],
  data: Buffer,
  user?: string,
  declare = true,
): Promise<void> {
  const ref = { repo, type: 'data', name: sha(data) } as const;
  const reservation = await quota.reserve(ref, user, declare ? data.length : undefined);
  try {
    const result = await writeChecked(store, ref, reservation.limit(chunks(data)), {
      sha256: sha(data),
      length: declare ? data.length : undefined,
    });
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
        assert.equal(await bytesOf(store, ['r']), 10_000);
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
      assert.equal(await bytesOf(store, ['r']), 9000);
    });
  });

  it('frees the bytes of a delete and counts nothing for a failed upload', async () => {
    await withStore({ maxTotalBytes: 10_000, repoRules: [], userRules: [] }, async (store, quota) => {
      await store.createRepo(['r']);
      const first = randomBytes(8000);
      await upload(store, quota, ['r'], first);
      await assert.rejects(upload(store, quota, ['r'], randomBytes(3000)), exceeded);
      // A failed upload (hash mismatch) releases its reservation.
      const wrong = { repo: ['r'], type: 'data', name: sha(Buffer.from('x')) } as const;
      const reservation = await quota.reserve(wrong, undefined, 1000);
      await assert.rejects(
        writeChecked(store, wrong, reservation.limit(chunks(randomBytes(1000))), {
          sha256: sha(Buffer.from('x')),
          length: 1000,
        }),
      );
      reservation.release();
      await upload(store, quota, ['r'], randomBytes(2000));
      const { bytes } = await store.delete({ repo: ['r'], type: 'data', name: sha(first) });
      quota.deleted({ repo: ['r'], type: 'data', name: sha(first) }, bytes);
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
      await mkdir(path.join(dir, 'old', 'data', sha(existing).slice(0, 2)), { recursive: true });
      await writeFile(path.join(dir, 'old', 'data', sha(existing).slice(0, 2), sha(existing)), existing);
      await store.close();
      const restarted = new FsStorage({ root: dir });
      await restarted.init();
      await quotaOver(restarted, { maxTotalBytes: 10_000, repoRules: [], userRules: [] }, async (quota) => {
        await restarted.createRepo(['new']);
        await assert.rejects(upload(restarted, quota, ['new'], randomBytes(4000)), exceeded);
        await upload(restarted, quota, ['new'], randomBytes(3000));
      });
    });
  });
});

describe('repository creation', () => {
  const create = async (
    store: FsStorage,
    quota: QuotaManager,
    repo: string[],
    user?: string,
  ): Promise<void> => {
    const admission = await quota.admitRepo(repo, user, () => store.repoExists(repo));
    await store.createRepo(repo);
    admission.commit();
  };

  it('admits at most maxReposPerUser repositories below /<user>/, also when asked at once', async () => {
    const limits: QuotaLimits = { ...noLimits, maxReposPerUser: 3 };
    await withStore(limits, async (store, quota) => {
      await store.createRepo(['alice', 'old']);
      await quotaOver(store, limits, async (restarted) => {
        const results = await Promise.allSettled(
          ['a', 'b', 'c', 'd'].map((name) => create(store, restarted, ['alice', name], 'alice')),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2, 'the one on disk counts');
        assert.ok(results.every((r) => r.status === 'fulfilled' || exceeded(r.reason)));
        // Creating an existing repository again is no new repository; other owners have their own.
        await create(store, restarted, ['alice', 'old'], 'alice');
        await create(store, restarted, ['bob', 'x'], 'alice');
        await assert.rejects(
          restarted.admitRepo(['alice', 'e'], 'alice', () => store.repoExists(['alice', 'e'])),
          (err: unknown) =>
            exceeded(err) && /3 repositories.*--max-repos-per-user/.test((err as Error).message),
        );
      });
      // A failed creation gives its place back.
      const admission = await quota.admitRepo(['carol', 'a'], 'carol', () => Promise.resolve(false));
      admission.release();
      for (const name of ['a', 'b', 'c']) await create(store, quota, ['carol', name], 'carol');
    });
  });

  it('refuses a new repository when a byte quota that applies is full', async () => {
    const limits: QuotaLimits = { ...noLimits, userRules: [{ users: ['*'], maxBytes: 5000 }] };
    await withStore(limits, async (store, quota) => {
      await create(store, quota, ['alice', 'a'], 'alice');
      await upload(store, quota, ['alice', 'a'], randomBytes(4999), 'alice');
      await create(store, quota, ['alice', 'b'], 'alice');
      await upload(store, quota, ['alice', 'b'], randomBytes(1), 'alice');
      await assert.rejects(create(store, quota, ['alice', 'c'], 'alice'), exceeded);
      assert.equal(await store.repoExists(['alice', 'c']), false);
      await create(store, quota, ['alice', 'b'], 'alice');
      await create(store, quota, ['bob', 'a'], 'bob');
    });
  });
});

describe('decisions during the start-up count', () => {
  it('wait for the count, then decide with every repository counted', async () => {
    await withTempDir(async (dir) => {
      const fs = new FsStorage({ root: dir });
      await fs.init();
      await fs.createRepo(['old']);
      const existing = randomBytes(7000);
      await mkdir(path.join(dir, 'old', 'data', sha(existing).slice(0, 2)), { recursive: true });
      await writeFile(path.join(dir, 'old', 'data', sha(existing).slice(0, 2), sha(existing)), existing);
      const storage = countingStorage(fs);
      let finish = (): void => undefined;
      storage.holdListing('old', new Promise<void>((resolve) => (finish = resolve)));
      await quotaOver(storage, { ...noLimits, maxTotalBytes: 10_000 }, async (quota) => {
        let settled = false;
        const ref = { repo: ['old'], type: 'data', name: sha(Buffer.from('x')) } as const;
        const decision = quota.reserve(ref, undefined, 4000).finally(() => (settled = true));
        while (storage.walks.list === 0) await new Promise((resolve) => setImmediate(resolve));
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
        finish();
        assert.equal(settled, false, 'no decision while the count ran');
        await assert.rejects(decision, exceeded);
      });
    });
  });
});
