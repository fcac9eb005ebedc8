/**
 * The queue in front of password checks: at most `max` run at once (so logins never take all of
 * libuv's threads), a bounded number wait, and each owner (a client address, a user name) may
 * have only a few of those waiting, so one client cannot fill the queue and delay everyone's login.
 */
import { RatchetError } from '../errors.ts';
import { Counts } from '../util/counts.ts';

export interface CheckQueueLimits {
  /** Checks running at once. */
  readonly maxRunning: number;
  /** Checks waiting for a slot, all owners together. */
  readonly maxQueued: number;
  /** Checks waiting for a slot for any one owner. */
  readonly maxQueuedPerOwner: number;
}

function busy(): RatchetError {
  // The same answer whichever bound was hit: it must not tell which users exist.
  return new RatchetError('TOO_MANY_REQUESTS', 'too many logins in progress', {
    headers: { 'Retry-After': '1' },
  });
}

/** Runs password checks within the limits; a check beyond them is refused with 429. */
export class CheckQueue {
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #waitingBy = new Counts();
  readonly #limits: CheckQueueLimits;

  constructor(limits: CheckQueueLimits) {
    this.#limits = { ...limits, maxRunning: Math.max(1, limits.maxRunning) };
  }

  /** Checks waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs the task once a slot is free; `owners` are the keys whose waiting checks are bounded. */
  async run<T>(owners: readonly string[], task: () => Promise<T>): Promise<T> {
    if (this.#running < this.#limits.maxRunning) {
      this.#running++;
    } else {
      const { maxQueued, maxQueuedPerOwner } = this.#limits;
      if (
        this.#waiting.length >= maxQueued ||
        owners.some((owner) => this.#waitingBy.get(owner) >= maxQueuedPerOwner)
      )
        throw busy();
      for (const owner of owners) this.#waitingBy.add(owner, 1);
      // The finishing task hands its slot over, so #running stays counted.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      for (const owner of owners) this.#waitingBy.add(owner, -1);
    }
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
