/**
 * What the web view and its metrics read: the usage ledger, the freshness rules, the quotas, the
 * refused changes of the last day, the scrub's findings and the daily size history (kept in the
 * data folder's state, `.ratchet/size-history.json`). Registers `ratchet_repo_stale` and
 * `ratchet_ready`, the two series the shipped alert rules need beside the ledger's.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { AccessControl } from '../access/access-control.ts';
import type { ServerConfig } from '../config/server-config.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { QuotaManager } from '../quota/quota-manager.ts';
import type { UsageLedger } from '../usage/usage-ledger.ts';
import { Freshness } from '../view/freshness.ts';
import { RecentRefusals } from '../view/recent-refusals.ts';
import { repoReport } from '../view/repo-report.ts';
import type { RepoReportSources, ScrubResults } from '../view/repo-report.ts';
import { FileSizeHistoryStore, keepSizeHistory, SizeHistory } from '../view/size-history.ts';

export interface WebViewSetup {
  readonly config: Pick<ServerConfig, 'freshness' | 'path'>;
  readonly ledger: UsageLedger;
  readonly quota: QuotaManager;
  readonly access: AccessControl;
  readonly scrub: ScrubResults | undefined;
  readonly metrics: Metrics | undefined;
  readonly logger: Logger;
  /** Resolves when storage takes a durable write now (the readiness probe). */
  readonly ready: () => Promise<void>;
}

export interface WebView {
  readonly view: RepoReportSources;
  /** Stops the size history after a last sample. */
  stop(): Promise<void>;
}

export function startWebView(setup: WebViewSetup): WebView {
  const { config, metrics } = setup;
  const history = new SizeHistory(
    new FileSizeHistoryStore(path.join(config.path, '.ratchet', 'size-history.json')),
  );
  const view: RepoReportSources = {
    ledger: setup.ledger,
    freshness: new Freshness(config.freshness),
    quota: setup.quota,
    refusals: new RecentRefusals(),
    ownerOf: (repo) => setup.access.ownerOf(repo),
    history,
    scrub: setup.scrub,
  };
  metrics?.gauge(
    'ratchet_repo_stale',
    'Whether the newest snapshot of a repository is older than --stale-after (1) or not (0)',
    ['repo'],
    (gauge) => {
      for (const row of repoReport(view, () => true) ?? [])
        gauge.set({ repo: row.repo.replace(/^\/|\/$/g, '') }, row.status === 'stale' ? 1 : 0);
    },
    'first',
  );
  metrics?.gauge(
    'ratchet_ready',
    'Whether storage takes a durable write now (1) or not (0)',
    [],
    async (gauge) => {
      gauge.set(
        await setup.ready().then(
          () => 1,
          () => 0,
        ),
      );
    },
    'min',
  );
  const keeper = keepSizeHistory(history, setup.ledger, setup.logger);
  keeper.start();
  // Bounded memory: repositories without refusals in the last day are forgotten hourly.
  const pruner = setInterval(() => view.refusals.prune(), 3_600_000).unref();
  return {
    view,
    stop: async () => {
      clearInterval(pruner);
      await keeper.stop();
    },
  };
}
