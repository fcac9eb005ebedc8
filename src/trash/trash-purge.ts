/**
 * The trash's background purge (--delete-grace): objects deleted longer ago than the grace period
 * are removed for good, a repository at a time, on an unref'd timer off the request path. The
 * deletion time is part of each trash entry, so a restart loses nothing and purges what came due
 * meanwhile. One purge per data folder: the data folder's lock keeps a second server off it.
 */
import type { Logger } from 'pino';
import { BackgroundLoop } from '../util/background-loop.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RepoPath } from '../domain/repo-path.ts';
import type { Storage, TrashEntry } from '../storage/storage.ts';

export interface PurgeOptions {
  /** Only these repositories (default: every repository the storage lists). */
  readonly repos?: Iterable<RepoPath> | AsyncIterable<RepoPath>;
  /** Hears of each entry removed (the audit trail). */
  readonly onPurged?: (entry: TrashEntry) => void;
  readonly signal?: AbortSignal;
}

/** Removes every trash entry deleted before `before` (ms); returns the entries and bytes freed. */
export async function purgeTrash(
  storage: Storage,
  before: number,
  options: PurgeOptions = {},
): Promise<{ objects: number; bytes: number }> {
  const { signal } = options;
  let objects = 0;
  let bytes = 0;
  for await (const repo of options.repos ?? storage.listRepos(signal)) {
    for await (const entry of storage.listTrash(repo, signal)) {
      if (entry.deletedMs >= before) continue;
      const freed = await storage.purgeFromTrash(entry, signal);
      if (freed === 0 && entry.size > 0) continue; // removed meanwhile (a restore, another purge)
      bytes += freed;
      objects++;
      options.onPurged?.(entry);
    }
  }
  return { objects, bytes };
}

export class TrashPurger {
  private readonly storage: Storage;
  private readonly graceMs: number;
  private readonly logger: Logger;
  private readonly background = new BackgroundLoop(
    (signal) => this.loop(signal),
    (err) => this.logger.error({ err }, 'the trash purge stopped'),
  );

  constructor(storage: Storage, graceMs: number, logger: Logger) {
    this.storage = storage;
    this.graceMs = graceMs;
    this.logger = logger;
  }

  start(): void {
    this.background.start();
  }

  /** Stops the loop; resolves once what it was doing has finished (a scrub saves its position). */
  stop(): Promise<void> {
    return this.background.stop();
  }

  private async loop(signal: AbortSignal): Promise<void> {
    // A pass every tenth of the grace period, between a second and ten minutes.
    const everyMs = Math.min(600_000, Math.max(1000, this.graceMs / 10));
    for (;;) {
      await sleep(everyMs, undefined, { signal, ref: false });
      try {
        const { objects, bytes } = await purgeTrash(this.storage, Date.now() - this.graceMs, { signal });
        if (objects > 0) this.logger.info({ objects, bytes }, 'trash: removed objects past the grace period');
      } catch (err) {
        if (signal.aborted) throw err;
        this.logger.warn({ err }, 'trash: the purge pass failed; the next one tries again');
      }
    }
  }
}
