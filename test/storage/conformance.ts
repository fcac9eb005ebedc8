/** The behaviour every Storage backend must have; each backend's test file runs it. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { RatchetError } from '../../src/errors.ts';
import { RangeNotSatisfiable } from '../../src/domain/byte-range.ts';
import type { Storage, ReadResult } from '../../src/storage/storage.ts';
import type { ObjectRef } from '../../src/domain/object-ref.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import type { UploadCheck } from '../../src/storage/storage.ts';
import { measureRepo } from '../../src/usage/measure.ts';

export interface BackendHarness {
  /** A fresh, empty backend. */
  create(): Promise<Storage>;
  /** Called after each test with the backend it created. */
  destroy(storage: Storage): Promise<void>;
  /** Temporary upload files the backend still holds (a backend without any leaves this out). */
  leftovers?(storage: Storage): Promise<string[]>;
}

export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function* chunksOf(data: Buffer, size = 7919): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await Promise.resolve();
    yield data.subarray(i, i + size);
  }
}

/** The bytes of a read, whether the backend returned them in memory or as a stream. */
async function readAll(read: ReadResult): Promise<Buffer> {
  if (read.data !== undefined) return Buffer.from(read.data);
  const parts: Uint8Array[] = [];
  for await (const part of read.body) parts.push(part);
  return Buffer.concat(parts);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

function code(expected: string): (err: unknown) => boolean {
  return (err) => err instanceof RatchetError && err.code === expected;
}

/** Registers the conformance tests for one backend. */
export function storageConformance(name: string, harness: BackendHarness): void {
  describe(`storage conformance: ${name}`, () => {
    const withStorage = (fn: (storage: Storage) => Promise<void>) => async () => {
      const storage = await harness.create();
      try {
        await fn(storage);
      } finally {
        await harness.destroy(storage);
      }
    };
    const repo = ['alice', 'laptop'];
    const put = async (storage: Storage, data: Buffer, type: 'data' | 'keys' | 'snapshots' = 'data') => {
      const ref: ObjectRef = { repo, type, name: sha256(data) };
      const result = await writeChecked(storage, ref, chunksOf(data), {
        sha256: ref.name,
        length: data.length,
      });
      return { ref, result };
    };

    it(
      'creates repositories idempotently and tells whether they exist',
      withStorage(async (storage) => {
        assert.equal(await storage.repoExists(repo), false);
        await storage.createRepo(repo);
        await storage.createRepo(repo);
        assert.equal(await storage.repoExists(repo), true);
        assert.equal(await storage.repoExists(['alice']), false);
        assert.equal(await storage.repoExists(['bob']), false);
      }),
    );

    it(
      'writes, stats, reads and deletes an object',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(100_000);
        const { ref, result } = await put(storage, data);
        assert.deepEqual(result, { created: true, size: data.length });
        assert.equal(await storage.stat(ref), data.length);
        const read = await storage.read(ref, undefined);
        assert.equal(read.size, data.length);
        assert.equal(read.range, undefined);
        assert.ok((await readAll(read)).equals(data));
        assert.deepEqual(await storage.delete(ref), { existed: true, bytes: data.length });
        assert.deepEqual(await storage.delete(ref), { existed: false, bytes: 0 });
        assert.equal(await storage.stat(ref), undefined);
        await assert.rejects(storage.read(ref, undefined), code('NOT_FOUND'));
      }),
    );

    it(
      'reads ranges, cuts them at the end, and refuses ranges past the end',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(1000);
        const { ref } = await put(storage, data);
        const middle = await storage.read(ref, { kind: 'from', start: 10, end: 19 });
        assert.deepEqual(middle.range, { start: 10, end: 19 });
        assert.ok((await readAll(middle)).equals(data.subarray(10, 20)));
        const open = await storage.read(ref, { kind: 'from', start: 990 });
        assert.ok((await readAll(open)).equals(data.subarray(990)));
        const cut = await storage.read(ref, { kind: 'from', start: 900, end: 5000 });
        assert.deepEqual(cut.range, { start: 900, end: 999 });
        assert.ok((await readAll(cut)).equals(data.subarray(900)));
        const suffix = await storage.read(ref, { kind: 'suffix', length: 5 });
        assert.ok((await readAll(suffix)).equals(data.subarray(995)));
        await assert.rejects(storage.read(ref, { kind: 'suffix', length: 0 }), code('RANGE_NOT_SATISFIABLE'));
        await assert.rejects(storage.read(ref, { kind: 'from', start: 1000 }), (err) => {
          assert.ok(err instanceof RangeNotSatisfiable);
          assert.equal(err.code, 'RANGE_NOT_SATISFIABLE');
          assert.equal(err.size, 1000);
          return true;
        });
      }),
    );

    it(
      'reads large objects and large ranges exactly, however the backend delivers them',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const { ref } = await put(storage, data);
        const whole = await storage.read(ref, undefined);
        assert.equal(whole.size, data.length);
        assert.ok((await readAll(whole)).equals(data));
        const big = await storage.read(ref, { kind: 'from', start: 5, end: 2 * 1024 * 1024 + 5 });
        assert.ok((await readAll(big)).equals(data.subarray(5, 2 * 1024 * 1024 + 6)));
        const small = await storage.read(ref, { kind: 'suffix', length: 64 * 1024 });
        assert.ok((await readAll(small)).equals(data.subarray(data.length - 64 * 1024)));
      }),
    );
    it(
      'stores nothing when the content does not match its name',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(5000);
        const ref: ObjectRef = { repo, type: 'data', name: sha256(Buffer.from('other')) };
        await assert.rejects(
          writeChecked(storage, ref, chunksOf(data), { sha256: ref.name, length: data.length }),
          code('HASH_MISMATCH'),
        );
        assert.equal(await storage.stat(ref), undefined);
        assert.deepEqual(await collect(storage.list(repo, 'data')), []);
      }),
    );

    it(
      'stores nothing when the body ends short of its declared length',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(5000);
        const ref: ObjectRef = { repo, type: 'data', name: sha256(data) };
        await assert.rejects(
          writeChecked(storage, ref, chunksOf(data.subarray(0, 4000)), {
            sha256: ref.name,
            length: 5000,
          }),
          code('INCOMPLETE_BODY'),
        );
        assert.equal(await storage.stat(ref), undefined);
      }),
    );

    it(
      'stores nothing when the body fails midway',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(50_000);
        const ref: ObjectRef = { repo, type: 'data', name: sha256(data) };
        async function* failing(): AsyncIterable<Uint8Array> {
          yield data.subarray(0, 20_000);
          await Promise.resolve();
          throw new RatchetError('INCOMPLETE_BODY', 'client went away');
        }
        await assert.rejects(
          writeChecked(storage, ref, failing(), { sha256: ref.name, length: data.length }),
          code('INCOMPLETE_BODY'),
        );
        assert.equal(await storage.stat(ref), undefined);
        assert.deepEqual(await collect(storage.list(repo, 'data')), []);
      }),
    );

    it(
      'accepts an identical re-upload without writing, refuses different config content',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(3000);
        const first = await put(storage, data);
        const second = await put(storage, data);
        assert.equal(first.result.created, true);
        assert.equal(second.result.created, false);

        const config: ObjectRef = { repo, type: 'config' };
        const one = Buffer.from('config one');
        await writeChecked(storage, config, chunksOf(one), { sha256: undefined, length: one.length });
        const again = await writeChecked(storage, config, chunksOf(one), {
          sha256: undefined,
          length: one.length,
        });
        assert.equal(again.created, false);
        const two = Buffer.from('config two');
        await assert.rejects(
          writeChecked(storage, config, chunksOf(two), { sha256: undefined, length: two.length }),
          code('CONFLICT'),
        );
        assert.ok((await readAll(await storage.read(config, undefined))).equals(one));
      }),
    );

    it(
      'refuses an unverified upload with other content under an existing name',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(3000);
        const { ref } = await put(storage, data);
        const other = randomBytes(3000);
        await assert.rejects(
          writeChecked(storage, ref, chunksOf(other), { sha256: undefined, length: other.length }),
          code('CONFLICT'),
        );
        assert.ok((await readAll(await storage.read(ref, undefined))).equals(data));
      }),
    );

    it(
      'lets exactly one of many concurrent identical uploads create the object',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(64 * 1024);
        const results = await Promise.all(Array.from({ length: 16 }, () => put(storage, data)));
        assert.equal(results.filter((r) => r.result.created).length, 1);
        assert.deepEqual(await collect(storage.list(repo, 'data')), [
          { name: sha256(data), size: data.length },
        ]);
      }),
    );

    it(
      'lists objects of a type with exact sizes, and nothing for an empty type',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const blobs = [randomBytes(10), randomBytes(2000), randomBytes(0)];
        for (const blob of blobs) await put(storage, blob);
        await put(storage, randomBytes(33), 'keys');
        const listed = (await collect(storage.list(repo, 'data'))).sort((a, b) =>
          a.name.localeCompare(b.name),
        );
        const expected = blobs
          .map((b) => ({ name: sha256(b), size: b.length }))
          .sort((a, b) => a.name.localeCompare(b.name));
        assert.deepEqual(listed, expected);
        assert.equal((await collect(storage.list(repo, 'keys'))).length, 1);
        assert.deepEqual(await collect(storage.list(repo, 'snapshots')), []);
      }),
    );

    it(
      'refuses to list or write into a repository that does not exist',
      withStorage(async (storage) => {
        await assert.rejects(collect(storage.list(['nobody'], 'data')), code('NOT_FOUND'));
        const data = randomBytes(10);
        await assert.rejects(
          writeChecked(storage, { repo: ['nobody'], type: 'data', name: sha256(data) }, chunksOf(data), {
            sha256: sha256(data),
            length: 10,
          }),
          code('NOT_FOUND'),
        );
        assert.equal(await storage.repoExists(['nobody']), false);
      }),
    );

    it(
      'serves an empty object whole even when a range is asked for',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const { ref } = await put(storage, Buffer.alloc(0));
        const read = await storage.read(ref, { kind: 'from', start: 0 });
        assert.equal(read.size, 0);
        assert.equal(read.range, undefined);
        assert.equal((await readAll(read)).length, 0);
      }),
    );

    it(
      'publishes nothing when the upload check vetoes the object after the last byte',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(3000);
        const ref: ObjectRef = { repo, type: 'data', name: sha256(data) };
        let consumed = 0;
        async function* counted(): AsyncIterable<Uint8Array> {
          for await (const chunk of chunksOf(data)) {
            consumed += chunk.length;
            yield chunk;
          }
        }
        const veto: UploadCheck = {
          approve() {
            assert.equal(consumed, data.length, 'the check is asked only after the whole body');
            throw new RatchetError('QUOTA_EXCEEDED', 'vetoed');
          },
        };
        await assert.rejects(storage.write(ref, counted(), { check: veto }), code('QUOTA_EXCEEDED'));
        assert.equal(await storage.stat(ref), undefined);
        assert.deepEqual(await collect(storage.list(repo, 'data')), []);
        assert.deepEqual(await harness.leftovers?.(storage), harness.leftovers ? [] : undefined);
        // A veto never touches an object already stored under the name.
        await put(storage, data);
        await assert.rejects(storage.write(ref, chunksOf(data), { check: veto }), code('QUOTA_EXCEEDED'));
        assert.equal(await storage.stat(ref), data.length);
      }),
    );

    it(
      'deletes idempotently and reports the bytes it removed',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const { ref } = await put(storage, randomBytes(1234));
        assert.deepEqual(await storage.delete(ref), { existed: true, bytes: 1234 });
        assert.deepEqual(await storage.delete(ref), { existed: false, bytes: 0 });
        const config = Buffer.from('cfg');
        await writeChecked(storage, { repo, type: 'config' }, chunksOf(config), {
          sha256: undefined,
          length: 3,
        });
        assert.deepEqual(await storage.delete({ repo, type: 'config' }), { existed: true, bytes: 3 });
        assert.deepEqual(await storage.delete({ repo: ['nobody'], type: 'config' }), {
          existed: false,
          bytes: 0,
        });
      }),
    );

    it(
      'stops every verb whose signal is already aborted, changing nothing',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const { ref } = await put(storage, randomBytes(100));
        const signal = AbortSignal.abort(new Error('client left'));
        const aborted = (err: unknown) => err instanceof Error && err.message === 'client left';
        const other = ['elsewhere'];
        await assert.rejects(storage.createRepo(other, signal), aborted);
        assert.equal(await storage.repoExists(other), false);
        await assert.rejects(storage.repoExists(repo, signal), aborted);
        await assert.rejects(storage.stat(ref, signal), aborted);
        await assert.rejects(storage.read(ref, undefined, signal), aborted);
        await assert.rejects(storage.delete(ref, signal), aborted);
        assert.equal(await storage.stat(ref), 100);
        const data = randomBytes(100);
        const fresh: ObjectRef = { repo, type: 'data', name: sha256(data) };
        await assert.rejects(
          writeChecked(storage, fresh, chunksOf(data), { sha256: fresh.name, length: 100 }, signal),
          aborted,
        );
        assert.equal(await storage.stat(fresh), undefined);
        await assert.rejects(collect(storage.list(repo, 'data', signal)), aborted);
        await assert.rejects(collect(storage.listRepos(signal)), aborted);
        await assert.rejects(storage.probe(signal), aborted);
      }),
    );

    it(
      'stores nothing when the signal aborts while the body streams',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const data = randomBytes(200_000);
        const ref: ObjectRef = { repo, type: 'data', name: sha256(data) };
        const controller = new AbortController();
        async function* abortMidway(): AsyncIterable<Uint8Array> {
          let sent = 0;
          for await (const chunk of chunksOf(data)) {
            if (sent > data.length / 2) controller.abort(new Error('client left'));
            sent += chunk.length;
            yield chunk;
          }
        }
        await assert.rejects(
          writeChecked(
            storage,
            ref,
            abortMidway(),
            { sha256: ref.name, length: data.length },
            controller.signal,
          ),
          (err: unknown) => err instanceof Error && err.message === 'client left',
        );
        assert.equal(await storage.stat(ref), undefined);
        assert.deepEqual(await harness.leftovers?.(storage), harness.leftovers ? [] : undefined);
      }),
    );

    it(
      'lists snapshots with the time they were stored',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const before = Date.now() - 2000;
        const { ref } = await put(storage, randomBytes(40), 'snapshots');
        const [entry] = await collect(storage.list(repo, 'snapshots'));
        assert.equal(entry?.name, 'name' in ref ? ref.name : undefined);
        const storedAt = entry?.modifiedMs ?? 0;
        assert.ok(storedAt >= before && storedAt <= Date.now() + 2000, `stored at ${storedAt}`);
      }),
    );

    it(
      'summarizes bytes, object counts and the newest snapshot time',
      withStorage(async (storage) => {
        await storage.createRepo(repo);
        const empty = await measureRepo(storage, repo);
        assert.deepEqual(empty, {
          bytes: 0,
          objects: { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 },
          newestSnapshotMs: undefined,
          trashBytes: 0,
          trashObjects: 0,
        });
        const before = Date.now() - 2000;
        await put(storage, randomBytes(1000));
        const { ref } = await put(storage, randomBytes(300));
        await put(storage, randomBytes(50), 'keys');
        const config = Buffer.from('config!');
        await writeChecked(storage, { repo, type: 'config' }, chunksOf(config), {
          sha256: undefined,
          length: config.length,
        });
        const snapshot = randomBytes(20);
        await writeChecked(storage, { repo, type: 'snapshots', name: sha256(snapshot) }, chunksOf(snapshot), {
          sha256: sha256(snapshot),
          length: snapshot.length,
        });
        let summary = await measureRepo(storage, repo);
        assert.equal(summary.bytes, 1000 + 300 + 50 + config.length + 20);
        assert.deepEqual(summary.objects, { data: 2, keys: 1, locks: 0, snapshots: 1, index: 0 });
        assert.ok(summary.newestSnapshotMs !== undefined && summary.newestSnapshotMs >= before);
        await storage.delete(ref);
        summary = await measureRepo(storage, repo);
        assert.equal(summary.bytes, 1000 + 50 + config.length + 20);
        assert.equal(summary.objects.data, 1);
        // The trash is measured apart from the live objects.
        const trashed = await put(storage, randomBytes(70));
        await storage.moveToTrash(trashed.ref, Date.now());
        summary = await measureRepo(storage, repo);
        assert.equal(summary.bytes, 1000 + 50 + config.length + 20);
        assert.equal(summary.objects.data, 1);
        assert.equal(summary.trashBytes, 70);
        assert.equal(summary.trashObjects, 1);
        await assert.rejects(measureRepo(storage, ['nobody']), code('NOT_FOUND'));
      }),
    );
  });
}
