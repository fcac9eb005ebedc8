/**
 * Prometheus metrics. The blob counters keep rest-server's names and labels so existing
 * dashboards work; the rest are Ratchet's own: request timing, requests in flight,
 * authentication failures, and per-repository gauges read from the usage ledger at scrape time
 * (no storage walk) — bytes used, objects per type, the trash, and the time of the newest
 * snapshot, so an alert can fire when a host stops backing up. Until the ledger's start-up count is done the
 * repository gauges are left out rather than shown incomplete.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Aggregator } from 'prom-client';
import { objectTypes } from '../domain/object-types.ts';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import type { RepoUsage } from '../usage/usage-store.ts';

export type BlobOperation = 'read' | 'write' | 'delete';

const blobLabels = ['user', 'repo', 'type'] as const;

export class Metrics {
  readonly registry = new Registry();
  /**
   * The text a scrape gets: this process's registry, or with --workers every worker's, summed
   * by the primary (counters and per-process gauges add up; gauges of shared state, which every
   * worker reads from the same store, are taken once).
   */
  render: () => Promise<string> = () => this.registry.metrics();
  private readonly blobCount: Record<BlobOperation, Counter<(typeof blobLabels)[number]>>;
  private readonly blobBytes: Record<BlobOperation, Counter<(typeof blobLabels)[number]>>;
  private readonly duration: Histogram<'method' | 'operation' | 'status'>;
  private readonly inFlight: Gauge;
  private readonly uploadsInFlight: Gauge;
  private readonly authFailures: Counter<'reason'>;
  private readonly refusedChanges: Counter<'repo' | 'user' | 'reason'>;

  constructor(usage: UsageLedger) {
    const registry = this.registry;
    const blob = (
      operation: BlobOperation,
      suffix: string,
      help: string,
    ): Counter<(typeof blobLabels)[number]> =>
      new Counter({
        name: `rest_server_blob_${operation}${suffix}_total`,
        help,
        labelNames: blobLabels,
        registers: [registry],
      });
    this.blobCount = {
      read: blob('read', '', 'Total number of blobs read'),
      write: blob('write', '', 'Total number of blobs written'),
      delete: blob('delete', '', 'Total number of blobs deleted'),
    };
    this.blobBytes = {
      read: blob('read', '_bytes', 'Total number of bytes read from blobs'),
      write: blob('write', '_bytes', 'Total number of bytes written to blobs'),
      delete: blob('delete', '_bytes', 'Total number of bytes of blobs deleted'),
    };
    this.duration = new Histogram({
      name: 'ratchet_http_request_duration_seconds',
      help: 'Time from request start to the end of the response',
      labelNames: ['method', 'operation', 'status'],
      buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120],
      registers: [registry],
    });
    this.inFlight = new Gauge({
      name: 'ratchet_http_requests_in_flight',
      help: 'Requests being served',
      registers: [registry],
    });
    this.uploadsInFlight = new Gauge({
      name: 'ratchet_uploads_in_flight',
      help: 'Object uploads being received (bodies streaming in), a part of the requests in flight',
      registers: [registry],
    });
    this.authFailures = new Counter({
      name: 'ratchet_auth_failures_total',
      help: 'Requests refused by authentication (401) or login throttling (429)',
      labelNames: ['reason'],
      registers: [registry],
    });

    this.refusedChanges = new Counter({
      name: 'ratchet_refused_changes_total',
      help: 'Refused changes (403: append-only deletes, overwrites; 507: quota, full disk), by reason',
      labelNames: ['repo', 'user', 'reason'],
      registers: [registry],
    });

    const repoGauge = (
      name: string,
      help: string,
      labelNames: string[],
      set: (gauge: Gauge, repo: string, usage: RepoUsage) => void,
    ): void =>
      this.gauge(
        name,
        help,
        labelNames,
        (gauge) => {
          if (!usage.isReady) return;
          for (const [repo, numbers] of usage.repos()) set(gauge, repo, numbers);
        },
        'first',
      );
    repoGauge(
      'ratchet_repo_size_bytes',
      'Bytes stored in a repository (objects and config)',
      ['repo'],
      (g, repo, u) => g.set({ repo }, u.bytes),
    );
    repoGauge(
      'ratchet_repo_objects',
      'Objects stored in a repository, by type',
      ['repo', 'type'],
      (g, repo, u) => {
        for (const type of objectTypes) g.set({ repo, type }, u.objects[type]);
      },
    );
    // Trash (--delete-grace): on disk and in the total quota, but no longer in the repository.
    repoGauge(
      'ratchet_trash_bytes',
      "Bytes in a repository's trash (deleted, restorable until the grace period ends)",
      ['repo'],
      (g, repo, u) => g.set({ repo }, u.trashBytes),
    );
    repoGauge('ratchet_trash_objects', "Objects in a repository's trash", ['repo'], (g, repo, u) =>
      g.set({ repo }, u.trashObjects),
    );
    repoGauge(
      'ratchet_repo_newest_snapshot_timestamp_seconds',
      'When the newest snapshot object of a repository was stored (Unix time)',
      ['repo'],
      (g, repo, u) => {
        if (u.newestSnapshotMs !== undefined) g.set({ repo }, u.newestSnapshotMs / 1000);
      },
    );
  }

  /** Counts one blob operation the way rest-server does. */
  blob(operation: BlobOperation, user: string | undefined, repo: string, type: string, bytes: number): void {
    const labels = { user: user ?? '', repo, type };
    this.blobCount[operation].inc(labels);
    this.blobBytes[operation].inc(labels, bytes);
  }

  /** Starts timing a request; call the returned function with the outcome when it ends. */
  startRequest(method: string): (operation: string, status: number) => void {
    this.inFlight.inc();
    const end = this.duration.startTimer({ method });
    return (operation, status) => {
      this.inFlight.dec();
      end({ operation, status: String(status) });
    };
  }

  /** Counts an object upload as in flight until the returned function is called. */
  startUpload(): () => void {
    this.uploadsInFlight.inc();
    return () => this.uploadsInFlight.dec();
  }

  /** Counts a request refused by authentication. */
  authFailure(reason: 'unauthorized' | 'throttled'): void {
    this.authFailures.inc({ reason });
  }

  /** Counts a refused change (reason: the error code, e.g. forbidden, quota_exceeded). */
  refusedChange(repo: string, user: string | undefined, reason: string): void {
    this.refusedChanges.inc({ repo, user: user ?? '', reason });
  }

  /** Registers a counter whose values another module keeps (e.g. the scrub), read at scrape time. */
  counter(name: string, help: string, labelNames: string[], collect: (counter: Counter) => void): void {
    new Counter({ name, help, labelNames, registers: [this.registry], collect: collectAfresh(collect) });
  }

  /**
   * Registers gauges computed by another module (e.g. quotas, readiness) at scrape time;
   * `across` says how the workers' values combine (shared state: 'first').
   */
  gauge(
    name: string,
    help: string,
    labelNames: string[],
    collect: (gauge: Gauge) => void | Promise<void>,
    across: Aggregator = 'sum',
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: collectAfresh(collect),
      aggregator: across,
    });
  }
}

/**
 * A prom-client collect hook that clears the metric, then lets `fill` set this scrape's values
 * (prom-client waits for a fill that returns a promise).
 */
function collectAfresh<M extends Counter | Gauge>(
  fill: (metric: M) => void | Promise<void>,
): (this: M) => void | Promise<void> {
  return function (this: M) {
    this.reset();
    return fill(this);
  };
}
