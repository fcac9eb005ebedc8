import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChangeWatcher } from '../../src/util/change-watcher.ts';
import type { ChangeWatcherOptions } from '../../src/util/change-watcher.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

let root = '';
let counter = 0;
const closers: (() => void)[] = [];

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ratchet-change-'));
});
after(async () => {
  for (const close of closers) close();
  await rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = path.join(root, `case-${counter++}`);
  await mkdir(dir);
  return dir;
}

async function replaceByRename(file: string, content: string): Promise<void> {
  await writeFile(`${file}.new`, content);
  await rename(`${file}.new`, file);
}

interface Harness {
  changes: ChangeWatcher<number>;
  reloads: () => number;
  watchErrors: { folder: string; lost: boolean }[];
  reloadErrors: unknown[];
}

/** A started watcher whose reload counts its calls (and returns the count). */
async function start(
  files: string[],
  options: Partial<ChangeWatcherOptions<number>> = {},
  reload?: (call: number) => Promise<number>,
): Promise<Harness> {
  let reloads = 0;
  const watchErrors: Harness['watchErrors'] = [];
  const reloadErrors: unknown[] = [];
  const changes = new ChangeWatcher<number>({
    files,
    reload: () => {
      reloads++;
      return reload ? reload(reloads) : Promise.resolve(reloads);
    },
    debounceMs: 20,
    pollIntervalMs: 0,
    onWatchError: (_err, folder, lost) => watchErrors.push({ folder, lost }),
    onReloadError: (err) => reloadErrors.push(err),
    ...options,
  });
  closers.push(() => changes.close());
  await changes.snapshot();
  changes.start();
  return { changes, reloads: () => reloads, watchErrors, reloadErrors };
}

describe('ChangeWatcher', () => {
  it('runs one reload at a time and coalesces the calls made meanwhile into one more', async () => {
    const dir = await freshDir();
    const gates: (() => void)[] = [];
    let active = 0;
    let most = 0;
    const { changes, reloads } = await start([path.join(dir, 'f')], { watch: false }, async (call) => {
      active++;
      most = Math.max(most, active);
      await new Promise<void>((resolve) => gates.push(resolve));
      active--;
      return call;
    });
    const first = changes.reload();
    const second = changes.reload();
    const third = changes.reload();
    assert.equal(second, third, 'calls during a reload share the queued one');
    assert.notEqual(first, second);
    await waitFor(() => gates.length === 1, 'the first reload');
    gates.shift()?.();
    assert.equal(await first, 1);
    await waitFor(() => gates.length === 1, 'the queued reload');
    gates.shift()?.();
    assert.equal(await second, 2);
    assert.equal(reloads(), 2);
    assert.equal(most, 1);
    // Idle again: the next call starts a reload of its own.
    const fourth = changes.reload();
    await waitFor(() => gates.length === 1, 'a fresh reload');
    gates.shift()?.();
    assert.equal(await fourth, 3);
  });

  it('reloads once per burst of changes, also after repeated rename-replaces (folder watch)', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a');
    const { reloads } = await start([file], { debounceMs: 80 });
    await writeFile(file, 'b');
    await writeFile(file, 'c');
    await writeFile(file, 'd');
    await waitFor(() => reloads() === 1, 'the debounced reload');
    await sleep(150);
    assert.equal(reloads(), 1, 'a burst of writes is one reload');
    await replaceByRename(file, 'e');
    await waitFor(() => reloads() === 2, 'a reload after the first rename');
    // A watch on the old inode would have gone quiet by now.
    await replaceByRename(file, 'f');
    await waitFor(() => reloads() === 3, 'a reload after the second rename');
  });

  it('ignores other files in a watched folder', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a');
    const { reloads } = await start([file]);
    await writeFile(path.join(dir, 'other'), 'x');
    await sleep(150);
    assert.equal(reloads(), 0);
  });

  it('watches every folder of several files', async () => {
    const one = await freshDir();
    const two = await freshDir();
    const first = path.join(one, 'cert');
    const second = path.join(two, 'key');
    await writeFile(first, 'a');
    await writeFile(second, 'a');
    const { reloads } = await start([first, second]);
    await replaceByRename(second, 'b');
    await waitFor(() => reloads() === 1, 'a reload for the second folder');
    await replaceByRename(first, 'b');
    await waitFor(() => reloads() === 2, 'a reload for the first folder');
  });

  it('notices changes by polling alone, and only real ones', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a');
    const { reloads } = await start([file], { watch: false, pollIntervalMs: 30 });
    await sleep(150);
    assert.equal(reloads(), 0, 'no change, no reload');
    await replaceByRename(file, 'bb');
    await waitFor(() => reloads() === 1, 'a polled reload');
    await sleep(150);
    assert.equal(reloads(), 1, 'the poll does not repeat a reload for the same change');
    await rm(file);
    await waitFor(() => reloads() === 2, 'a reload when the file goes missing');
  });

  it('uses the given signature to decide what counts as a change', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a', { mode: 0o600 });
    // Only the permission bits count: new content is no change, a chmod is one.
    let polls = 0;
    const { reloads } = await start([file], {
      watch: false,
      pollIntervalMs: 30,
      signature: (info) => {
        polls++;
        return String(info.mode);
      },
    });
    await writeFile(file, 'new and longer content');
    const seen = polls;
    await waitFor(() => polls >= seen + 3, 'three polls after the content change');
    assert.equal(reloads(), 0, 'a change the signature ignores is no change');
    await chmod(file, 0o644);
    await waitFor(() => reloads() === 1, 'a reload after chmod');
  });

  it('reports a folder it cannot watch, and watches it once it appears', async () => {
    const parent = await freshDir();
    const dir = path.join(parent, 'later');
    const file = path.join(dir, 'f');
    const { reloads, watchErrors } = await start([file], { pollIntervalMs: 40 });
    assert.deepEqual(watchErrors, [{ folder: dir, lost: false }]);
    await mkdir(dir);
    await writeFile(file, 'a');
    await waitFor(() => reloads() === 1, 'a polled reload when the file appears');
    assert.equal(watchErrors.length, 1, 'the poll retried the watch, which now works');
    await replaceByRename(file, 'b');
    await waitFor(() => reloads() === 2, 'a reload after the folder appeared');
  });

  it('reports a reload that rejects after a change', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a');
    const { reloadErrors } = await start([file], {}, () => Promise.reject(new Error('boom')));
    await writeFile(file, 'b');
    await waitFor(() => reloadErrors.length > 0, 'the reported error');
    assert.match(String(reloadErrors[0]), /boom/);
  });

  it('close() cancels a pending reload and stops watching and polling', async () => {
    const dir = await freshDir();
    const file = path.join(dir, 'f');
    await writeFile(file, 'a');
    // The debounce is long enough that a stalled event loop cannot fire the reload before close().
    const { changes, reloads } = await start([file], { debounceMs: 300, pollIntervalMs: 30 });
    await writeFile(file, 'b');
    await sleep(30);
    changes.close();
    assert.equal(changes.closed, true);
    await replaceByRename(file, 'c');
    await sleep(500);
    assert.equal(reloads(), 0);
  });
});
