/**
 * Refused changes (deletes and overwrites an append-only host tried, quota refusals) per
 * repository over the last 24 hours, in hourly buckets: the web view's "refused" column. The
 * counter metric keeps the totals since start; this keeps only what a morning look needs. In
 * this process's memory: a restart starts from zero (the audit trail has the history).
 */
const hourMs = 3_600_000;
const hours = 24;

export class RecentRefusals {
  /** repository key → counts per hour, indexed by the hour number modulo 24, with that hour. */
  private readonly byRepo = new Map<string, { hour: number[]; count: number[] }>();

  /** Counts one refused change in the repository (by its key, as `host1`). */
  record(repo: string, now = Date.now()): void {
    const hour = Math.floor(now / hourMs);
    let buckets = this.byRepo.get(repo);
    if (buckets === undefined) {
      buckets = { hour: new Array<number>(hours).fill(-1), count: new Array<number>(hours).fill(0) };
      this.byRepo.set(repo, buckets);
    }
    const at = hour % hours;
    if (buckets.hour[at] !== hour) {
      buckets.hour[at] = hour;
      buckets.count[at] = 0;
    }
    buckets.count[at] = (buckets.count[at] ?? 0) + 1;
  }

  /** Refused changes in the repository during the last 24 hours. */
  last24h(repo: string, now = Date.now()): number {
    const buckets = this.byRepo.get(repo);
    if (buckets === undefined) return 0;
    const oldest = Math.floor(now / hourMs) - hours + 1;
    let total = 0;
    for (let at = 0; at < hours; at++)
      if ((buckets.hour[at] ?? -1) >= oldest) total += buckets.count[at] ?? 0;
    return total;
  }

  /** Forgets repositories with nothing in the window (called now and then; bounded memory). */
  prune(now = Date.now()): void {
    for (const repo of [...this.byRepo.keys()]) if (this.last24h(repo, now) === 0) this.byRepo.delete(repo);
  }
}
