import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import { indexFileName } from '../../src/storage/fs/index-file.ts';
import { tempPrefix } from '../../src/storage/fs/layout.ts';
import { currentProcess } from '../../src/storage/fs/process-identity.ts';
import { tempStem } from '../../src/storage/fs/temp-files.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { makeTempDir, withTempDir } from '../helpers/ratchet-process.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { sha256, storageConformance } from './conformance.ts';
import { tempFilesUnder } from '../helpers/files.ts';
import { writeChecked } from '../../src/storage/upload-check.ts';
import { measureRepo } from '../../src/usage/measure.ts';

const cleanups = new Map<Storage, () => Promise<void>>();

// Twice: with synchronous metadata calls while they are fast (the default on a local disk), and
// with every call through the thread pool (network filesystems, or after slow calls).
for (const syncMetadata of [true, false]) {
  storageConformance(syncMetadata ? 'filesystem' : 'filesystem, thread pool only', {
    async create() {
      const { dir, cleanup } = await makeTempDir();
      const storage = new FsStorage({ root: dir, syncMetadata });
      await storage.init();
      cleanups.set(storage, cleanup);
      return storage;
    },
    async destroy(storage) {
      await storage.close();
      await cleanups.get(storage)?.();
      cleanups.delete(storage);
    },
    leftovers: (storage) => tempFilesUnder((storage as FsStorage).layout.root),
  });
}

async function* once(data: Buffer): AsyncIterable<Uint8Array> {
  await Promise.resolve();
  yield data;
}

describe('filesystem storage layout', () => {
  it('creates the folders restic init creates, with private modes', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const entries = (await readdir(path.join(dir, 'r'))).sort();
      assert.deepEqual(entries, ['data', 'index', 'keys', 'locks', 'snapshots']);
      // Fan-out folders are made on first upload: a repository costs six folders, not 262.
      assert.deepEqual(await readdir(path.join(dir, 'r', 'data')), []);
      assert.equal((await stat(path.join(dir, 'r'))).mode & 0o777, 0o700);
      const data = randomBytes(100);
      const name = sha256(data);
      await writeChecked(storage, { repo: ['r'], type: 'data', name }, once(data), {
        sha256: name,
        length: 100,
      });
      const file = path.join(dir, 'r', 'data', name.slice(0, 2), name);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.deepEqual(await readdir(path.join(dir, 'r', 'data')), [name.slice(0, 2)]);
    });
  });

  it('uses group modes when asked', async () => {
    await withTempDir(async (dir) => {
      const mask = process.umask(0o007);
      try {
        const storage = new FsStorage({ root: dir, groupAccessible: true });
        await storage.createRepo(['g']);
        const data = randomBytes(10);
        const name = sha256(data);
        await writeChecked(storage, { repo: ['g'], type: 'keys', name }, once(data), {
          sha256: name,
          length: 10,
        });
        assert.equal((await stat(path.join(dir, 'g'))).mode & 0o777, 0o770);
        assert.equal((await stat(path.join(dir, 'g', 'keys', name))).mode & 0o777, 0o660);
      } finally {
        process.umask(mask);
      }
    });
  });

  it('never lists temporary files or foreign names, and recreates a missing fan-out folder', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.createRepo(['r']);
      const name = 'ab'.repeat(32);
      await mkdir(path.join(dir, 'r', 'data', 'ab'));
      await writeFile(path.join(dir, 'r', 'data', 'ab', `${tempPrefix}123`), 'partial');
      await writeFile(path.join(dir, 'r', 'data', 'ab', 'README'), 'x');
      await writeFile(path.join(dir, 'r', 'keys', `${name}.tmp`), 'x');
      const listed: string[] = [];
      for await (const entry of storage.list(['r'], 'data')) listed.push(entry.name);
      for await (const entry of storage.list(['r'], 'keys')) listed.push(entry.name);
      assert.deepEqual(listed, []);

      const { rm } = await import('node:fs/promises');
      const data = randomBytes(10);
      const hash = sha256(data);
      await rm(path.join(dir, 'r', 'data', hash.slice(0, 2)), { recursive: true, force: true });
      await writeChecked(storage, { repo: ['r'], type: 'data', name: hash }, once(data), {
        sha256: hash,
        length: 10,
      });
      assert.equal(await storage.stat({ repo: ['r'], type: 'data', name: hash }), 10);
    });
  });

  it('removes at start only temporary files whose writer is provably gone', async () => {
    await withTempDir(async (dir) => {
      const folder = path.join(dir, 'r', 'data', 'cd');
      await mkdir(folder, { recursive: true });
      // Another live process: the test runner that started this one.
      const live = currentProcess(process.ppid);
      // pid_max is at most 2^22 on Linux: no process has this pid.
      const dead = { ...live, pid: 99_999_999 };
      // The same pid as a live process, but another start time: the pid was reused.
      const reused = { ...live, start: 'zzz' };
      // Another host's process (a shared network filesystem): judged by age only.
      const remote = { ...dead, host: live.host === '00000000' ? '11111111' : '00000000' };
      const files = {
        dead: `${tempStem(dead)}0`,
        reused: `${tempStem(reused)}1`,
        liveOther: `${tempStem(live)}2`,
        remoteOld: `${tempStem(remote)}3`,
        remoteFresh: `${tempStem(remote)}4`,
        oldUnowned: `${tempPrefix}dead`,
        freshUnowned: `${tempPrefix}probe-1234`,
        foreign: 'notes.txt',
      };
      for (const name of Object.values(files)) await writeFile(path.join(folder, name), 'partial upload');
      const past = new Date(Date.now() - 2 * 3600_000);
      const aged = [
        files.dead,
        files.reused,
        files.liveOther,
        files.remoteOld,
        files.oldUnowned,
        files.foreign,
      ];
      for (const name of aged) await utimes(path.join(folder, name), past, past);
      const storage = new FsStorage({ root: dir });
      await storage.init();
      try {
        await waitFor(async () => !(await readdir(folder)).includes(files.oldUnowned), 'the sweep');
        await waitFor(async () => (await readdir(folder)).length === 4, 'the sweep');
        assert.deepEqual(
          (await readdir(folder)).sort(),
          [files.liveOther, files.remoteFresh, files.freshUnowned, files.foreign].sort(),
        );
      } finally {
        await storage.close();
      }
    });
  });

  it('replaces a stored object whose bytes no longer match its name when verified content arrives', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.createRepo(['r']);
      const data = randomBytes(500);
      const name = sha256(data);
      const file = path.join(dir, 'r', 'data', name.slice(0, 2), name);
      await mkdir(path.dirname(file));
      await writeFile(file, randomBytes(500));
      const result = await writeChecked(storage, { repo: ['r'], type: 'data', name }, once(data), {
        sha256: name,
        length: 500,
      });
      assert.equal(result.created, true);
      const { readFile } = await import('node:fs/promises');
      assert.ok((await readFile(file)).equals(data));
    });
  });

  it('reads a repository laid out by restic init on a local folder', async () => {
    await withTempDir(async (dir) => {
      // restic's local layout: config file, keys/, data/XX/ — the same as the server's.
      await mkdir(path.join(dir, 'legacy', 'keys'), { recursive: true });
      await writeFile(path.join(dir, 'legacy', 'config'), 'cfg');
      const storage = new FsStorage({ root: dir });
      assert.equal(await storage.repoExists(['legacy']), true);
      assert.equal(await storage.stat({ repo: ['legacy'], type: 'config' }), 3);
    });
  });

  it("moves the nginx recipe's data objects out of data/ at start, and refuses a listing that would omit some", async () => {
    await withTempDir(async (dir) => {
      // The recipe's WebDAV put /data/<id> at r/data/<id>: no fan-out folder.
      await mkdir(path.join(dir, 'r', 'keys'), { recursive: true });
      await mkdir(path.join(dir, 'r', 'data', 'ab'), { recursive: true });
      const objects = Array.from({ length: 5 }, () => randomBytes(100 + Math.floor(Math.random() * 100)));
      for (const data of objects) await writeFile(path.join(dir, 'r', 'data', sha256(data)), data);
      // One also in its fan-out folder, damaged there: the good flat copy wins.
      const twice = objects[0] ?? Buffer.alloc(0);
      await mkdir(path.join(dir, 'r', 'data', sha256(twice).slice(0, 2)), { recursive: true });
      await writeFile(path.join(dir, 'r', 'data', sha256(twice).slice(0, 2), sha256(twice)), randomBytes(7));
      // A file that is no object name stays where it is.
      await writeFile(path.join(dir, 'r', 'data', 'notes.txt'), 'x');

      const storage = new FsStorage({ root: dir });
      await storage.init();
      const listed = async (): Promise<string[]> => {
        const out: string[] = [];
        for await (const entry of storage.list(['r'], 'data')) out.push(`${entry.name}:${entry.size}`);
        return out.sort();
      };
      assert.deepEqual(await listed(), objects.map((data) => `${sha256(data)}:${data.length}`).sort());
      assert.deepEqual(
        (await readdir(path.join(dir, 'r', 'data'), { withFileTypes: true }))
          .filter((e) => e.isFile())
          .map((e) => e.name),
        ['notes.txt'],
      );
      for (const data of objects)
        assert.equal(await storage.stat({ repo: ['r'], type: 'data', name: sha256(data) }), data.length);

      // Written there while serving (another server still running on the folder): refused, not omitted.
      const late = randomBytes(50);
      await writeFile(path.join(dir, 'r', 'data', sha256(late)), late);
      await assert.rejects(
        listed(),
        (err: Error) => 'code' in err && err.code === 'UNAVAILABLE' && /directly in data\//.test(err.message),
      );
      await storage.close();
    });
  });

  it('sees objects that others add to or remove from the folders', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const names = async (): Promise<string[]> => {
        const out: string[] = [];
        for await (const entry of storage.list(['r'], 'data')) out.push(`${entry.name}:${entry.size}`);
        return out.sort();
      };
      const data = randomBytes(10);
      const name = sha256(data);
      await writeChecked(storage, { repo: ['r'], type: 'data', name }, once(data), {
        sha256: name,
        length: 10,
      });
      assert.deepEqual(await names(), [`${name}:10`]);
      // Another process (restic on the local folder, a copy tool) adds and removes files.
      const other = randomBytes(33);
      const otherName = sha256(other);
      const { rm } = await import('node:fs/promises');
      await mkdir(path.join(dir, 'r', 'data', otherName.slice(0, 2)), { recursive: true });
      await writeFile(path.join(dir, 'r', 'data', otherName.slice(0, 2), otherName), other);
      assert.deepEqual(await names(), [`${name}:10`, `${otherName}:33`].sort());
      await rm(path.join(dir, 'r', 'data', name.slice(0, 2), name));
      assert.deepEqual(await names(), [`${otherName}:33`]);
      assert.equal((await measureRepo(storage, ['r'])).bytes, 33);
    });
  });

  it('counts usage without caching folders that no client listed, and with the cache once one did', async () => {
    await withTempDir(async (dir) => {
      const storage = new FsStorage({ root: dir });
      await storage.init();
      await storage.createRepo(['r']);
      const names = Array.from({ length: 20 }, (_, i) => sha256(Buffer.from(`object ${i}`)));
      for (const name of names) {
        await mkdir(path.join(dir, 'r', 'data', name.slice(0, 2)), { recursive: true });
        await writeFile(path.join(dir, 'r', 'data', name.slice(0, 2), name), `object ${names.indexOf(name)}`);
      }
      const fanOut = [...new Set(names.map((name) => name.slice(0, 2)))];
      const folders = fanOut.length;
      // Folders older than the racy window, so that a cached listing of them is trusted.
      const past = new Date(Date.now() - 10_000);
      for (const sub of fanOut) await utimes(path.join(dir, 'r', 'data', sub), past, past);
      const { counts } = storage.index;
      // The usage count reads every folder each time and keeps none of them.
      assert.equal((await measureRepo(storage, ['r'])).objects.data, 20);
      assert.equal((await measureRepo(storage, ['r'])).objects.data, 20);
      assert.equal(counts.folderReads, 2 * (folders + 4));
      assert.deepEqual(storage.index.folderNames(), []);
      // A client's listing fills the cache; the count then uses it and reads nothing.
      let listed = 0;
      for await (const entry of storage.list(['r'], 'data')) listed += entry.size > 0 ? 1 : 0;
      assert.equal(listed, 20);
      assert.equal(storage.index.folderNames().length, folders);
      const before = counts.folderReads;
      assert.equal((await measureRepo(storage, ['r'])).objects.data, 20);
      assert.equal(counts.folderReads, before + 4, 'only the four other type folders are read again');
      await storage.close();
    });
  });

  it('keeps the index across a restart and trusts only folders that did not change', async () => {
    await withTempDir(async (dir) => {
      const first = new FsStorage({ root: dir });
      await first.init();
      await first.createRepo(['r']);
      const blobs = Array.from({ length: 20 }, (_, i) => randomBytes(100 + i));
      for (const data of blobs) {
        const name = sha256(data);
        await writeChecked(first, { repo: ['r'], type: 'data', name }, once(data), {
          sha256: name,
          length: data.length,
        });
      }
      const snapshot = Buffer.from('a snapshot');
      await writeChecked(first, { repo: ['r'], type: 'snapshots', name: sha256(snapshot) }, once(snapshot), {
        sha256: sha256(snapshot),
        length: snapshot.length,
      });
      // Let folder mtimes leave the racy window so the saved snapshots are trusted.
      await sleep(2100);
      const before = await measureRepo(first, ['r']);
      assert.equal(before.objects.data, 20);
      assert.ok(before.newestSnapshotMs !== undefined);
      await first.close();
      assert.ok((await readdir(path.join(dir, '.ratchet'))).includes(indexFileName));
      // An index saved by an older version is dropped, not misread.
      await writeFile(path.join(dir, '.ratchet', 'index.v1.jsonl'), '{"dir":"r/data/00"}\n');

      // While the server is down, someone removes one object.
      const gone = sha256(blobs[0] ?? Buffer.alloc(0));
      const { rm } = await import('node:fs/promises');
      await rm(path.join(dir, 'r', 'data', gone.slice(0, 2), gone));

      const second = new FsStorage({ root: dir });
      await second.init();
      assert.ok(!(await readdir(path.join(dir, '.ratchet'))).includes('index.v1.jsonl'));
      const summary = await measureRepo(second, ['r']);
      assert.equal(summary.objects.data, 19);
      assert.equal(summary.objects.snapshots, 1);
      assert.equal(summary.newestSnapshotMs, before.newestSnapshotMs);
      assert.equal(summary.bytes, blobs.slice(1).reduce((sum, b) => sum + b.length, 0) + snapshot.length);
      await second.close();
    });
  });
});
