/**
 * The background scrub (`--scrub-interval`): a pass over every repository (scrub.ts) starts this
 * long after the previous one started, reads at most `--scrub-rate` bytes a second, and runs on
 * its own timer, never on a request's path. Where a pass stands is saved every few seconds and
 * on shutdown, so a restart resumes it instead of starting over. One scrub per storage: the data
 * folder's lock keeps a second server off it, and instances sharing S3 storage (--state) scrub
 * one at a time, by the `scrub` lease, from one saved position in Redis: another instance takes
 * the pass over where it stood a few minutes after the holder died.
 */
import type { Logger } from 'pino';
import { BackgroundLoop } from '../util/background-loop.ts';
import { readJsonFile, writeJsonFile } from '../util/json-file.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { soleInstance } from '../state/job-lease.ts';
import type { JobLease } from '../state/job-lease.ts';
import type { Storage } from '../storage/storage.ts';
import { reposInOrder, scrub } from './scrub.ts';
import type { CheckedObject, ScrubPosition } from './scrub.ts';

/** What survives a restart. */
export interface ScrubState {
  /** When the latest pass started (ms); undefined before the first. */
  readonly passStartedMs?: number;
  /** The last object checked of the pass in progress; undefined when no pass is in progress. */
  readonly position?: ScrubPosition;
  readonly inProgress?: boolean;
}

export interface ScrubStateStore {
  load(): Promise<ScrubState>;
  save(state: ScrubState): Promise<void>;
}

/** The state as a small JSON file, replaced atomically; a missing or unreadable file is a fresh start. */
export class FileScrubState implements ScrubStateStore {
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  async load(): Promise<ScrubState> {
    const parsed = await readJsonFile(this.file);
    return typeof parsed === 'object' && parsed !== null ? parsed : {};
  }

  save(state: ScrubState): Promise<void> {
    return writeJsonFile(this.file, state);
  }
}

/** Counts for metrics and the web view. */
export class ScrubStats {
  objects = 0;
  bytes = 0;
  /** Corrupt objects found, per repository (cumulative). */
  readonly corrupt = new Map<string, number>();
  /** Objects that could not be read, per repository (cumulative): I/O errors, permissions. */
  readonly unreadable = new Map<string, number>();
  /** When each repository was last checked to its end (ms). */
  readonly lastPassMs = new Map<string, number>();
  passes = 0;
}

export interface BackgroundScrubOptions {
  readonly intervalMs: number;
  readonly bytesPerSecond: number;
  /** Delay before the first work after start, so start-up work goes first (default 60 s). */
  readonly startDelayMs?: number;
  /** How often the position is saved while a pass runs (default 10 s). */
  readonly saveEveryMs?: number;
  /** Who scrubs when several instances share the storage (default: this process). */
  readonly lease?: JobLease;
}

/** The scrub's lease: renewed at least this often by its holder, lost this long after it stopped. */
const scrubJob = 'scrub';
const leaseRenewMs = 30_000;
const leaseMs = 120_000;

/** The lease went to another instance mid-pass: stop without saving over its position. */
class LeaseLost extends Error {}

export class BackgroundScrub {
  readonly stats = new ScrubStats();
  private readonly storage: Storage;
  private readonly store: ScrubStateStore;
  private readonly logger: Logger;
  private readonly options: BackgroundScrubOptions;
  private readonly background = new BackgroundLoop(
    (signal) => this.loop(signal),
    (err) => this.logger.error({ err }, 'the background scrub stopped'),
  );

  constructor(storage: Storage, store: ScrubStateStore, logger: Logger, options: BackgroundScrubOptions) {
    this.storage = storage;
    this.store = store;
    this.logger = logger;
    this.options = options;
  }

  start(): void {
    this.background.start();
  }

  /** Stops the loop; resolves once what it was doing has finished (a scrub saves its position). */
  stop(): Promise<void> {
    return this.background.stop();
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const lease = this.options.lease ?? soleInstance;
    await sleep(this.options.startDelayMs ?? 60_000, undefined, { signal, ref: false });
    for (;;) {
      // The holder looks again at least every leaseRenewMs, renewing the lease as it waits.
      if (!(await lease.holds(scrubJob, leaseMs))) {
        await sleep(leaseRenewMs, undefined, { signal, ref: false });
        continue;
      }
      let state: ScrubState;
      try {
        // Read again each time: another instance may have moved the pass on.
        state = await this.store.load();
      } catch (err) {
        this.logger.warn(
          { err },
          'background scrub: its saved state cannot be read; trying again in a minute',
        );
        await sleep(60_000, undefined, { signal, ref: false });
        continue;
      }
      if (state.inProgress !== true) {
        const due = (state.passStartedMs ?? 0) + this.options.intervalMs;
        if (due > Date.now()) {
          await sleepUntil(Math.min(due, Date.now() + leaseRenewMs), signal);
          continue;
        }
        state = { passStartedMs: Date.now(), inProgress: true };
      }
      try {
        if (state.position === undefined) {
          await this.store.save(state);
          this.logger.info('background scrub: pass started');
        } else {
          this.logger.info({ after: state.position }, 'background scrub: resuming the pass');
        }
        await this.pass(state, signal, lease);
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof LeaseLost) {
          this.logger.info('background scrub: another instance took the pass over');
          continue;
        }
        // A storage (or state store) error: the position is saved; try again in a while rather than give up.
        this.logger.warn({ err }, 'background scrub: the pass failed; it resumes in a minute');
        await sleep(60_000, undefined, { signal, ref: false });
      }
    }
  }

  /** Runs (the rest of) a pass; returns the state after it. */
  private async pass(state: ScrubState, signal: AbortSignal, lease: JobLease): Promise<ScrubState> {
    let position = state.position;
    let savedAt = Date.now();
    let renewedAt = Date.now();
    const save = (): Promise<void> => this.store.save({ ...state, position });
    const before = { objects: this.stats.objects, bytes: this.stats.bytes };
    let corrupt = 0;
    try {
      await scrub(this.storage, await reposInOrder(this.storage, signal), {
        bytesPerSecond: this.options.bytesPerSecond,
        after: position,
        signal,
        onChecked: async (object: CheckedObject) => {
          this.stats.objects++;
          this.stats.bytes += object.size;
          if (object.actual !== object.name) {
            corrupt++;
            const { repo, type, name, size, actual, error } = object;
            const counts = error !== undefined ? this.stats.unreadable : this.stats.corrupt;
            counts.set(repo, (counts.get(repo) ?? 0) + 1);
            if (error !== undefined)
              this.logger.error({ repo, type, name, error }, 'scrub: a stored object cannot be read');
            else
              this.logger.error(
                { repo, type, name, size, actual },
                'scrub: a stored object does not match its name (corrupt); a verified re-upload replaces it',
              );
          }
          position = { repo: object.repo, type: object.type, name: object.name };
          if (Date.now() - renewedAt >= leaseRenewMs) {
            renewedAt = Date.now();
            if (!(await lease.holds(scrubJob, leaseMs))) throw new LeaseLost();
          }
          if (Date.now() - savedAt >= (this.options.saveEveryMs ?? 10_000)) {
            savedAt = Date.now();
            await save();
          }
        },
        onRepoDone: (repo) => {
          this.stats.lastPassMs.set(repo, Date.now());
        },
        onListError: (repo, type, err) =>
          this.logger.error(
            { repo, type, err },
            'scrub: a folder of the repository cannot be listed; skipped',
          ),
      });
    } catch (err) {
      // Stopped (or failed): keep the position, so the next start resumes here.
      if (!(err instanceof LeaseLost)) await save();
      throw err;
    }
    this.stats.passes++;
    this.logger.info(
      {
        objects: this.stats.objects - before.objects,
        bytes: this.stats.bytes - before.bytes,
        corrupt,
      },
      'background scrub: pass complete',
    );
    const done: ScrubState = { passStartedMs: state.passStartedMs };
    await this.store.save(done);
    return done;
  }
}

// setTimeout fires at once for delays beyond 2^31 - 1 ms (about 24.8 days): wait in steps.
const longestTimerMs = 2 ** 31 - 1;

/** Waits until the time `due` (ms), however far ahead, without keeping the process alive. */
async function sleepUntil(due: number, signal: AbortSignal): Promise<void> {
  for (let left = due - Date.now(); left > 0; left = due - Date.now()) {
    await sleep(Math.min(left, longestTimerMs), undefined, { signal, ref: false });
  }
}
