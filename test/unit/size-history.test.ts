/**
 * The web view's size history: a day keeps its last sample, the window forgets older days and
 * repositories gone from it, an unchanged history is not written again, and a damaged file
 * starts a new history instead of failing the server.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FileSizeHistoryStore, SizeHistory } from '../../src/view/size-history.ts';
import type { SizeHistoryData, SizeHistoryStore } from '../../src/view/size-history.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';

const day = 86_400_000;
const noon = Date.parse('2026-12-01T12:00:00Z');

/** A store that counts its saves. */
function countingStore(): SizeHistoryStore & { saves: SizeHistoryData[] } {
  const saves: SizeHistoryData[] = [];
  return {
    saves,
    load: () => Promise.resolve({}),
    save: (data) => {
      saves.push(structuredClone(data));
      return Promise.resolve();
    },
  };
}

describe('size history', () => {
  it('keeps the last sample of each day over the window, oldest first', async () => {
    const store = countingStore();
    const history = new SizeHistory(store, 3);
    history.sample([['host1', 10]], noon - 2 * day);
    history.sample([['host1', 20]], noon - day);
    history.sample([['host1', 25]], noon - day + 3_600_000); // later the same day: replaces
    history.sample([['host1', 30]], noon);
    assert.deepEqual(history.series('host1', history.window(noon)), [10, 25, 30]);
    assert.deepEqual(history.series('other', history.window(noon)), [undefined, undefined, undefined]);
    // A day later the first day leaves the window.
    history.sample([['host1', 40]], noon + day);
    assert.deepEqual(history.series('host1', history.window(noon + day)), [25, 30, 40]);
    await history.save();
    assert.deepEqual(store.saves, [{ host1: { '2026-11-30': 25, '2026-12-01': 30, '2026-12-02': 40 } }]);
    // Nothing new: no write.
    history.sample([['host1', 40]], noon + day);
    await history.save();
    assert.equal(store.saves.length, 1);
  });

  it('forgets a repository that is gone once its days have left the window', () => {
    const history = new SizeHistory(countingStore(), 2);
    history.sample([['gone', 5]], noon);
    history.sample([], noon + day);
    assert.deepEqual(
      history.series('gone', history.window(noon + day)),
      [5, undefined],
      'still drawn while in the window',
    );
    history.sample([], noon + 2 * day);
    assert.deepEqual(history.series('gone', history.window(noon + 2 * day)), [undefined, undefined]);
  });

  it('stores the history as JSON and starts afresh from a damaged file', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'size-history.json');
      const history = new SizeHistory(new FileSizeHistoryStore(file));
      history.sample([['host1', 7]], noon);
      await history.save();
      assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { host1: { '2026-12-01': 7 } });
      const again = new SizeHistory(new FileSizeHistoryStore(file));
      await again.load();
      assert.equal(again.series('host1', again.window(noon)).at(-1), 7);

      for (const damaged of ['{"host1": {"2026-12-01": "big"}}', '[1,2]', 'not json']) {
        await writeFile(file, damaged);
        const fresh = new SizeHistory(new FileSizeHistoryStore(file));
        await fresh.load();
        assert.equal(fresh.series('host1', fresh.window(noon)).at(-1), undefined, damaged);
      }
    });
  });
});
