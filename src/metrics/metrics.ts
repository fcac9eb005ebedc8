/**
 * Prometheus metrics. The blob counters keep rest-server's names and labels so existing
 * dashboards work; the rest are Ratchet's own: request timing, requests in flight,
 * authentication failures, and per-repository gauges read from storage at scrape time —
 * bytes used, objects per type, and the time of the newest snapshot, so an alert can fire when
 * a host stops backing up.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { objectTypes } from '../domain/object-types.ts';
import { repoKey } from '../domain/repo-path.ts';
import type { Storage } from '../storage/storage.ts';
import { summarizeRepo } from '../usage/repo-summary.ts';
import type { RepoSummary } from '../usage/repo-summary.ts';

export type BlobOperation = 'read' | 'write' | 'delete';

const blobLabels = ['user', 'repo', 'type'] as const;

// Scrapes within this interval reuse the previous repository summaries.
const summaryCacheMs = 5_000;

export class Metrics {
  readonly registry = new Registry();
  private readonly blobCount: Record<BlobOperation, Counter<(typeof blobLabels)[number]>>;
  private readonly blobBytes: Record<BlobOperation, Counter<(typeof blobLabels)[number]>>;
  private readonly duration: Histogram<'method' | 'operation' | 'status'>;
  private readonly inFlight: Gauge;
  private readonly authFailures: Counter<'reason'>;
  private summaries: { at: number; repos: Map<string, RepoSummary> } | undefined;

  constructor(storage: Storage, logger: Logger) {
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
    this.authFailures = new Counter({
      name: 'ratchet_auth_failures_total',
      help: 'Requests refused by authentication (401) or login throttling (429)',
      labelNames: ['reason'],
      registers: [registry],
    });

    const readSummaries = async (): Promise<Map<string, RepoSummary>> => {
      if (this.summaries && Date.now() - this.summaries.at < summaryCacheMs) return this.summaries.repos;
      const repos = new Map<string, RepoSummary>();
      try {
        for await (const repo of storage.listRepos())
          repos.set(repoKey(repo), await summarizeRepo(storage, repo));
      } catch (err) {
        logger.warn({ err }, 'reading repository summaries for metrics failed');
      }
      this.summaries = { at: Date.now(), repos };
      return repos;
    };
    new Gauge({
      name: 'ratchet_repo_size_bytes',
      help: 'Bytes stored in a repository (objects and config)',
      labelNames: ['repo'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [repo, summary] of await readSummaries()) this.set({ repo }, summary.bytes);
      },
    });
    new Gauge({
      name: 'ratchet_repo_objects',
      help: 'Objects stored in a repository, by type',
      labelNames: ['repo', 'type'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [repo, summary] of await readSummaries()) {
          for (const type of objectTypes) this.set({ repo, type }, summary.objects[type]);
        }
      },
    });
    new Gauge({
      name: 'ratchet_repo_newest_snapshot_timestamp_seconds',
      help: 'When the newest snapshot object of a repository was stored (Unix time)',
      labelNames: ['repo'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [repo, summary] of await readSummaries()) {
          if (summary.newestSnapshotMs !== undefined) this.set({ repo }, summary.newestSnapshotMs / 1000);
        }
      },
    });
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

  /** Counts a request refused by authentication. */
  authFailure(reason: 'unauthorized' | 'throttled'): void {
    this.authFailures.inc({ reason });
  }

  /** Registers gauges computed by another module (e.g. quotas) at scrape time. */
  gauge(name: string, help: string, labelNames: string[], collect: (gauge: Gauge) => void): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        collect(this);
      },
    });
  }
}
