/**
 * The trash's background purge (--delete-grace): objects deleted longer ago than the grace period
 * are removed for good, a repository at a time, on an unref'd timer off the request path. The
 * deletion time is part of each trash entry, so a restart loses nothing and purges what came due
 * meanwhile. One purge per data folder: the data folder's lock keeps a second server off it.
 */
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoKey } from '../domain/repo-path.ts';
import type { Storage } from '../storage/storage.ts';

/** Removes every trash entry deleted before `before` (ms); returns the entries and bytes freed. */
export async function purgeTrash(
  storage: Storage,
  before: number,
  signal?: AbortSignal,
): Promise<{ objects: number; bytes: number }> {
  let objects = 0;
  let bytes = 0;
  for await (const repo of storage.listRepos(signal)) {
    for await (const entry of storage.listTrash(repo, signal)) {
      if (entry.deletedMs >= before) continue;
      const freed = await storage.purgeFromTrash(entry, signal);
      if (freed === 0 && entry.size > 0) continue; // removed meanwhile (a restore, another purge)
      bytes += freed;
      objects++;
    }
  }
  return { objects, bytes };
}

export class TrashPurger {
  private readonly storage: Storage;
  private readonly graceMs: number;
  private readonly logger: Logger;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(storage: Storage, graceMs: number, logger: Logger) {
    this.storage = storage;
    this.graceMs = graceMs;
    this.logger = logger;
  }

  start(): void {
    this.running ??= this.loop().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.logger.error({ err }, 'the trash purge stopped');
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    // A pass every tenth of the grace period, between a second and ten minutes.
    const everyMs = Math.min(600_000, Math.max(1000, this.graceMs / 10));
    for (;;) {
      await sleep(everyMs, undefined, { signal, ref: false });
      try {
        const { objects, bytes } = await purgeTrash(this.storage, Date.now() - this.graceMs, signal);
        if (objects > 0) this.logger.info({ objects, bytes }, 'trash: removed objects past the grace period');
      } catch (err) {
        if (signal.aborted) throw err;
        this.logger.warn({ err }, 'trash: the purge pass failed; the next one tries again');
      }
    }
  }
}

/** A repository path as the trash commands print it. */
export function repoLabel(repo: readonly string[]): string {
  return `/${repoKey(repo)}${repo.length > 0 ? '/' : ''}`;
}
