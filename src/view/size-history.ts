/**
 * Each repository's size per day over the last weeks: the web view's sparkline, so that growth
 * and sudden drops stand out. The size a day keeps is the last one sampled that day (UTC).
 * Sampled from the usage ledger (no storage walk), hourly and at shutdown, and kept in the data
 * folder's state so a restart keeps the curve. Only a picture: nothing decides on it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import { BackgroundLoop } from '../util/background-loop.ts';
import { readJsonFile, writeJsonFile } from '../util/json-file.ts';

/** Per repository key, bytes per day ('2026-12-01'). */
export type SizeHistoryData = Record<string, Record<string, number>>;

export interface SizeHistoryStore {
  load(): Promise<SizeHistoryData>;
  save(data: SizeHistoryData): Promise<void>;
}

const dayMs = 86_400_000;

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export class SizeHistory {
  private data: SizeHistoryData = {};
  private changed = false;
  private readonly store: SizeHistoryStore;
  readonly days: number;

  constructor(store: SizeHistoryStore, days = 30) {
    this.store = store;
    this.days = days;
  }

  async load(): Promise<void> {
    this.data = await this.store.load();
  }

  /** Takes today's sizes (the repositories now, by key) and forgets days older than the window. */
  sample(sizes: Iterable<[string, number]>, now = Date.now()): void {
    const today = dayOf(now);
    const oldest = dayOf(now - (this.days - 1) * dayMs);
    const seen = new Set<string>();
    for (const [repo, bytes] of sizes) {
      seen.add(repo);
      const days = (this.data[repo] ??= {});
      if (days[today] !== bytes) {
        days[today] = bytes;
        this.changed = true;
      }
    }
    for (const [repo, days] of Object.entries(this.data)) {
      for (const day of Object.keys(days))
        if (day < oldest) {
          delete days[day];
          this.changed = true;
        }
      // A repository that is gone and has no day left in the window is forgotten.
      if (!seen.has(repo) && Object.keys(days).length === 0) {
        delete this.data[repo];
        this.changed = true;
      }
    }
  }

  /** The days of the window at `now`, oldest first (for series). */
  window(now = Date.now()): string[] {
    const days: string[] = [];
    for (let back = this.days - 1; back >= 0; back--) days.push(dayOf(now - back * dayMs));
    return days;
  }

  /** The repository's size on each day of the window, oldest first; undefined where unknown. */
  series(repo: string, window: readonly string[] = this.window()): (number | undefined)[] {
    const days = this.data[repo] ?? {};
    return window.map((day) => days[day]);
  }

  /** Writes the history if a sample changed it. */
  async save(): Promise<void> {
    if (!this.changed) return;
    this.changed = false;
    try {
      await this.store.save(this.data);
    } catch (err) {
      this.changed = true;
      throw err;
    }
  }
}

/** The history as a JSON file, replaced atomically; a missing or unreadable file starts afresh. */
export class FileSizeHistoryStore implements SizeHistoryStore {
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  async load(): Promise<SizeHistoryData> {
    const parsed = await readJsonFile(this.file);
    return isHistory(parsed) ? parsed : {};
  }

  save(data: SizeHistoryData): Promise<void> {
    return writeJsonFile(this.file, data);
  }
}

function isHistory(value: unknown): value is SizeHistoryData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every(
    (days: unknown) =>
      typeof days === 'object' &&
      days !== null &&
      Object.values(days).every((bytes: unknown) => typeof bytes === 'number' && Number.isFinite(bytes)),
  );
}

/**
 * Keeps the history: loads it, samples the ledger once its start-up count is done, then every
 * `everyMs` (an hour) and at stop, saving after each sample. A failed save is logged and retried
 * at the next sample: the picture may miss a day, nothing else depends on it.
 */
export function keepSizeHistory(
  history: SizeHistory,
  ledger: Pick<UsageLedger, 'ready' | 'repos'>,
  logger: Logger,
  everyMs = 3_600_000,
): BackgroundLoop {
  const sampleAndSave = async (): Promise<void> => {
    history.sample(sizesOf(ledger));
    await history.save().catch((err: unknown) => logger.warn({ err }, 'the size history could not be saved'));
  };
  return new BackgroundLoop(
    async (signal) => {
      await history.load();
      const stopped = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      await Promise.race([ledger.ready, stopped]);
      if (signal.aborted) return;
      try {
        for (;;) {
          await sampleAndSave();
          await sleep(everyMs, undefined, { signal, ref: false });
        }
      } finally {
        if (signal.aborted) await sampleAndSave();
      }
    },
    (err) => logger.error({ err }, 'the size history stopped'),
  );
}

function* sizesOf(ledger: Pick<UsageLedger, 'repos'>): Iterable<[string, number]> {
  for (const [key, usage] of ledger.repos()) yield [key, usage.bytes];
}
