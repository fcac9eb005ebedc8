/**
 * The background size check: stats every cached entry of the directory index again, one
 * folder at a time, so that a file another program rewrote in place after its size settled
 * (cp, scp or rsync --inplace pausing longer than the racy window) is listed with its real size
 * again. One loop per process, never on a request's path: a pass stats at most
 * `entriesPerSecond` entries a second, and a new pass starts at most every `passIntervalMs`.
 *
 * Bound: a size that changed on disk is corrected within one pass period after the change,
 * max(passIntervalMs, cached entries ÷ entriesPerSecond s) plus the stats' own time; with the
 * defaults (60 s, 2,000 entries/s) 1 minute up to 120,000 objects, 8.3 minutes for 1,000,000.
 */
import type { DirectoryIndex } from './dir-index.ts';

export interface SizeCheckOptions {
  readonly passIntervalMs: number;
  readonly entriesPerSecond: number;
}

export const defaultSizeCheck: SizeCheckOptions = { passIntervalMs: 60_000, entriesPerSecond: 2000 };

export class SizeChecker {
  /** Completed passes over every cached folder. */
  passes = 0;
  private readonly index: DirectoryIndex;
  private readonly options: SizeCheckOptions;
  private readonly onError: (err: unknown) => void;
  private stopped = false;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  /** `onError` hears of a failed pass; the next one runs anyway. */
  constructor(index: DirectoryIndex, options: SizeCheckOptions, onError: (err: unknown) => void) {
    this.index = index;
    this.options = options;
    this.onError = onError;
  }

  /** Starts the loop (once). */
  start(): void {
    this.running ??= this.loop();
  }

  /** Stops the loop and waits for the folder being checked, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    // The first pass waits an interval: what a saved index holds was stat'ed when it was saved.
    let passStarted = Date.now();
    for (;;) {
      await this.pause(this.options.passIntervalMs - (Date.now() - passStarted));
      if (this.stopped) return;
      passStarted = Date.now();
      try {
        for (const dir of this.index.folderNames()) {
          if (this.stopped) return;
          const checked = await this.index.checkSizes(dir);
          await this.pause((checked * 1000) / this.options.entriesPerSecond);
        }
        this.passes++;
      } catch (err) {
        this.onError(err);
      }
    }
  }

  /** Waits, without keeping the process alive; stop() ends the wait at once. */
  private pause(ms: number): Promise<void> {
    if (this.stopped || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
      this.timer.unref();
    });
  }
}
