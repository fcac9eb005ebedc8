/**
 * The server's trash (--delete-grace): deletes move objects into it, restores put them back, and
 * a background purge removes what is older than the grace period, a repository at a time, on an
 * unref'd timer off the request path. The deletion time is part of each entry, so a restart loses
 * nothing and purges what came due meanwhile. One purge per data folder: the data folder's lock
 * keeps a second server off it; instances sharing a bucket take turns by a lease in --state.
 *
 * The trash is on disk, so it counts against the total quota (--max-size), not against users'
 * and repositories' quotas: every move is told to the usage ledger. When the total quota or the
 * disk is full, `reclaim` purges trash older than --delete-grace-min early, oldest deletion
 * first; younger trash is never purged early.
 *
 * Restores and purges (by request, in the background, early) run one at a time, so a purge
 * never removes an entry a restore is putting back, and each entry is counted once.
 */
import { soleInstance } from '../state/job-lease.ts';
import type { JobLease } from '../state/job-lease.ts';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoDisplay } from '../domain/repo-path.ts';
import type { ObjectRef } from '../domain/object-ref.ts';
import type { AuditLog } from '../log/audit-log.ts';
import type { DeleteResult, Storage, TrashEntry } from '../storage/storage.ts';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import { BackgroundLoop } from '../util/background-loop.ts';
import type { RepoSelection, RestoreReport } from './trash-operations.ts';
import { gatherTrash, purgeEntry, purgeTrash, restoreTrash } from './trash-operations.ts';

export interface TrashSettings {
  /** --delete-grace: how long deleted objects stay restorable (ms, > 0). */
  readonly graceMs: number;
  /** --delete-grace-min: trash younger than this is never purged early (ms). */
  readonly minAgeMs: number;
}

/** Who asked for a trash change, for the audit trail (nobody: the server's own purge). */
export interface TrashRequester {
  readonly user?: string | undefined;
  readonly client?: string | undefined;
  readonly listener?: string | undefined;
  readonly method?: string | undefined;
}

export class TrashKeeper {
  readonly settings: TrashSettings;
  private readonly storage: Storage;
  private readonly ledger: UsageLedger;
  private readonly logger: Logger;
  private readonly audit: AuditLog | undefined;
  private readonly background = new BackgroundLoop(
    (signal) => this.loop(signal),
    (err) => this.logger.error({ err }, 'the trash purge stopped'),
  );
  /** The early purge in progress: callers that find the quota full meanwhile share it. */
  private reclaiming: Promise<number> | undefined;
  /** Until then no entry can be old enough for an early purge (new trash is always younger). */
  private nothingEligibleUntil = 0;
  /** With several instances, only the holder of the 'trash-purge' lease runs the timed purge. */
  private readonly lease: JobLease;
  /** The end of the restore or purge in progress: the next one starts after it. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    storage: Storage,
    ledger: UsageLedger,
    settings: TrashSettings,
    logger: Logger,
    audit: AuditLog | undefined,
    lease: JobLease = soleInstance,
  ) {
    this.lease = lease;
    this.storage = storage;
    this.ledger = ledger;
    this.settings = settings;
    this.logger = logger;
    this.audit = audit;
  }

  start(): void {
    this.background.start();
  }

  /** Stops the background purge; resolves once the pass in progress has stopped. */
  async stop(): Promise<void> {
    await this.background.stop();
    await this.lease.releaseAll();
  }

  /** Moves the object into its repository's trash (the protocol's delete). */
  async discard(ref: ObjectRef, signal?: AbortSignal): Promise<DeleteResult> {
    const result = await this.storage.moveToTrash(ref, Date.now(), signal);
    if (result.existed) await this.ledger.trashed(ref, result.bytes);
    return result;
  }

  /** The repositories' trash (every repository's when none are given), oldest deletion first. */
  list(repos: RepoSelection, signal?: AbortSignal): Promise<TrashEntry[]> {
    return gatherTrash(this.storage, repos, signal);
  }

  /** Puts the entries back (see restoreTrash), recording each in the audit trail. */
  restore(
    entries: readonly TrashEntry[],
    by: TrashRequester,
    signal?: AbortSignal,
  ): Promise<RestoreReport[]> {
    const onReport = (report: RestoreReport): void => {
      const { entry, outcome } = report;
      // The ledger logs and repairs a change its store did not take: nothing to wait for here.
      if (outcome === 'restored') void this.ledger.restored(refOf(entry), entry.size);
      // The trash copy was dropped: an identical object is there already.
      if (outcome === 'already-there') void this.ledger.purged(entry.repo, entry.size);
      this.record(entry, 'trash-restore', by, outcome === 'restored' ? undefined : (report.error ?? outcome));
    };
    return this.exclusive(() => restoreTrash(this.storage, entries, onReport, signal));
  }

  /** Removes the trash deleted before `before` (ms) for good; `reason` goes to the audit trail. */
  purge(
    before: number,
    repos: RepoSelection,
    by: TrashRequester,
    signal?: AbortSignal,
  ): Promise<{ objects: number; bytes: number }> {
    const onPurged = (entry: TrashEntry, bytes: number): void => {
      void this.ledger.purged(entry.repo, bytes);
      this.record(entry, 'trash-purge', by, undefined);
    };
    return this.exclusive(() => purgeTrash(this.storage, before, { repos, signal, onPurged }));
  }

  /**
   * Makes room for `bytes` when the total quota or the disk is full: purges trash older than
   * --delete-grace-min, oldest deletion first, until that much is freed or none is left. Resolves
   * to the bytes freed (0: nothing was old enough, or the trash could not be read: the caller's
   * 507 stands). Concurrent callers share one pass.
   */
  reclaim(bytes: number): Promise<number> {
    this.reclaiming ??= this.exclusive(() => this.reclaimOnce(bytes))
      .catch((err: unknown) => {
        this.logger.warn({ err }, 'trash: removing old trash to make room failed');
        return 0;
      })
      .finally(() => {
        this.reclaiming = undefined;
      });
    return this.reclaiming;
  }

  private async reclaimOnce(wanted: number): Promise<number> {
    const now = Date.now();
    if (now < this.nothingEligibleUntil) return 0;
    const cutoff = now - this.settings.minAgeMs;
    // A repository whose trash cannot be read is left out, not the whole early purge.
    const entries = await gatherTrash(this.storage, undefined, undefined, (repo, err) =>
      this.logger.warn({ err, repo: repoDisplay(repo) }, "trash: reading a repository's trash failed"),
    );
    let freed = 0;
    let objects = 0;
    let next = entries.length;
    for (const [at, entry] of entries.entries()) {
      if (freed >= wanted || entry.deletedMs >= cutoff) {
        next = at;
        break;
      }
      const bytes = await purgeEntry(this.storage, entry);
      if (bytes === undefined) continue;
      await this.ledger.purged(entry.repo, bytes);
      this.record(entry, 'trash-purge', {}, 'early: no room left');
      freed += bytes;
      objects++;
    }
    if (freed < wanted) {
      // Everything old enough is gone: the next early purge can find something only once the
      // oldest remaining entry (or a deletion made from now on) reaches the minimum age.
      const oldest = entries[next]?.deletedMs ?? now;
      this.nothingEligibleUntil = Math.min(oldest, now) + this.settings.minAgeMs;
    }
    if (objects > 0)
      this.logger.warn(
        { objects, bytes: freed, wanted },
        'trash: no room left; removed the oldest trash early (older than --delete-grace-min)',
      );
    else
      this.logger.warn(
        { wanted, trashObjects: entries.length },
        'trash: no room left and no trash older than --delete-grace-min to remove',
      );
    return freed;
  }

  /** Runs the work once the restore or purge in progress (failed or not) has ended. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work, work);
    this.turn = result.catch(() => undefined);
    return result;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    // A pass every tenth of the grace period, between a second and ten minutes.
    const everyMs = Math.min(600_000, Math.max(1000, this.settings.graceMs / 10));
    for (;;) {
      await sleep(everyMs, undefined, { signal, ref: false });
      // Held for three passes: a holder that died leaves the job to another instance after that.
      if (!(await this.lease.holds('trash-purge', 3 * everyMs))) continue;
      try {
        const { objects, bytes } = await this.purge(
          Date.now() - this.settings.graceMs,
          undefined,
          {},
          signal,
        );
        if (objects > 0) this.logger.info({ objects, bytes }, 'trash: removed objects past the grace period');
      } catch (err) {
        if (signal.aborted) throw err;
        this.logger.warn({ err }, 'trash: the purge pass failed; the next one tries again');
      }
    }
  }

  private record(
    entry: TrashEntry,
    action: 'trash-restore' | 'trash-purge',
    by: TrashRequester,
    reason: string | undefined,
  ): void {
    this.audit?.record({
      action,
      ...by,
      repo: repoDisplay(entry.repo),
      type: entry.type,
      name: entry.type === 'config' ? undefined : entry.name,
      size: entry.size,
      status: by.method === undefined ? 0 : 200,
      reason,
    });
  }
}

/** The object a trash entry was. */
export function refOf(entry: TrashEntry): ObjectRef {
  return entry.type === 'config'
    ? { repo: entry.repo, type: 'config' }
    : { repo: entry.repo, type: entry.type, name: entry.name };
}
