/**
 * The web view in a real browser (Debian's headless Chromium driven by playwright-core) after
 * real restic backups: host1 backed up now, host2 three days ago (its snapshot files and
 * folder back-dated while the server was stopped), host3 initialised only. The auditor's page
 * lists them with the right status, sorts and filters, loads nothing from another origin and
 * breaks no Content-Security-Policy rule; a host gets 403 on the page and only its own
 * repository from the API. A screenshot goes to test-artifacts/web-view.png (untracked).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { basic } from '../helpers/http.ts';
import { projectRoot, startRatchetServer } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { writeHtpasswd } from '../http/operations-helpers.ts';
import { inTest, resticEnvironment, step } from '../e2e/fixture.ts';
import { smallTree } from '../e2e/restic-helpers.ts';

const passwords = {
  host1: 'host1-pass',
  host2: 'host2-pass',
  host3: 'host3-pass',
  auditor: 'auditor-pass',
} as const;
type User = keyof typeof passwords;

/** Debian's Chromium: the binary itself (the /usr/bin/chromium wrapper only adds flags). */
const chromiumPath =
  process.env.RATCHET_CHROMIUM ??
  ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((file) => existsSync(file)) ??
  '/usr/bin/chromium';

const config = `listeners:
  - address: 127.0.0.1:0
    max-role: append-only
access:
  - users: ['*']
    repos: ['/{user}/**']
    role: append-only
  - users: [auditor]
    repos: ['/**']
    role: read-only
quotas:
  users:
    - users: ['*']
      max-size: 16MiB
    - users: [host2]
      max-size: 6MiB
`;

interface TableRow {
  readonly repo: string;
  readonly status: string;
}

/** The table's visible rows, top to bottom: the repository and status cells. */
async function visibleRows(page: Page): Promise<TableRow[]> {
  const rows = '#repos tbody tr:not([hidden])';
  const repos = await page.locator(`${rows} td:first-child`).allTextContents();
  const statuses = await page.locator(`${rows} td.status`).allTextContents();
  return repos.map((repo, at) => ({ repo, status: statuses[at] ?? '' }));
}

describe('the web view in a browser', { timeout: 300_000 }, () => {
  const env = resticEnvironment({ name: 'web', password: 'web view', tree: smallTree });

  it(
    'shows fresh, stale and empty repositories from real backups, sorts, filters and stays on its origin',
    step,
    async (t) => {
      const htpasswd = path.join(env.dir, 'htpasswd');
      const configFile = path.join(env.dir, 'ratchet.yaml');
      await writeHtpasswd(htpasswd, passwords);
      await writeFile(configFile, config);
      const args = ['--config', configFile, '--path', env.dataDir, '--htpasswd-file', htpasswd];
      let server = await env.useServer(startRatchetServer(args));
      const as = (user: User): ReturnType<typeof env.rest> => {
        const url = new URL(`${server.url}/${user}/`);
        url.username = user;
        url.password = passwords[user];
        return inTest(env.runner(`rest:${url.href}`, `cache-${user}`), t);
      };
      for (const user of ['host1', 'host2', 'host3'] as const) await as(user).ok(['init']);
      await as('host2').ok(['backup', '.'], { cwd: env.source });

      // host2's backup is three days old: its snapshot objects and folder, back-dated while the
      // server is stopped, so the restarted server counts them from disk.
      await env.stopServer();
      const snapshots = path.join(env.dataDir, 'host2', 'snapshots');
      const then = new Date(Date.now() - 3 * 86_400_000);
      for (const name of await readdir(snapshots)) await utimes(path.join(snapshots, name), then, then);
      await utimes(snapshots, then, then);
      // And a size history for the sparklines: host2 grew over the days before its last backup.
      const historyFile = path.join(env.dataDir, '.ratchet', 'size-history.json');
      const history = JSON.parse(await readFile(historyFile, 'utf8')) as Record<
        string,
        Record<string, number>
      >;
      const day = (back: number): string =>
        new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10);
      const host2Now = history['host2']?.[day(0)] ?? 0;
      for (let back = 1; back <= 9; back++)
        (history['host2'] ??= {})[day(back)] = Math.round(host2Now * (1 - 0.04 * Math.max(0, back - 3)));
      await writeFile(historyFile, JSON.stringify(history));
      server = await env.useServer(startRatchetServer(args));
      await as('host1').ok(['backup', '.'], { cwd: env.source });
      // The page answers 503 until the ledger's start-up count is done.
      await waitFor(async () => {
        const res = await fetch(`${server.url}/.ratchet/api/repos`, {
          headers: { Authorization: basic('auditor', passwords.auditor) },
        });
        return res.status === 200;
      }, 'the restarted server counts the repositories');

      const origin = new URL(server.url).origin;
      const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true });
      try {
        const open = async (user: User): Promise<{ page: Page; requests: string[]; problems: string[] }> => {
          const context = await browser.newContext({
            extraHTTPHeaders: { Authorization: basic(user, passwords[user]) },
            viewport: { width: 1440, height: 300 },
          });
          const page = await context.newPage();
          const requests: string[] = [];
          const problems: string[] = [];
          page.on('request', (request) => requests.push(request.url()));
          page.on('console', (message) => {
            if (message.type() === 'error') problems.push(message.text());
          });
          page.on('pageerror', (err) => problems.push(err.message));
          return { page, requests, problems };
        };

        const { page, requests, problems } = await open('auditor');
        const answer = await page.goto(`${origin}/.ratchet/ui/`);
        assert.equal(answer?.status(), 200);
        assert.deepEqual(await visibleRows(page), [
          { repo: '/host1/', status: 'fresh' },
          { repo: '/host2/', status: 'stale' },
          { repo: '/host3/', status: 'empty' },
        ]);
        assert.match((await page.textContent('#summary')) ?? '', /3 repositories: 1 fresh, 1 stale, 1 empty/);
        // host2 is above 90 % of its 6 MiB quota; its history is drawn, host1's single day is not.
        assert.match((await page.textContent('tr:nth-child(2) td.warn')) ?? '', /of 6\.0 MiB \(9\d %\)/);
        assert.equal(await page.locator('tr:nth-child(2) svg.spark polyline').count(), 1);
        assert.equal(await page.locator('tr:nth-child(1) svg.spark').count(), 0);

        // Sorting: the path column again turns the order round; age puts the newest backup first
        // and the repository that never had one last.
        await page.click('th:nth-child(1) button');
        assert.deepEqual(
          (await visibleRows(page)).map((row) => row.repo),
          ['/host3/', '/host2/', '/host1/'],
        );
        await page.click('th:has-text("Age") button');
        assert.deepEqual(
          (await visibleRows(page)).map((row) => row.repo),
          ['/host1/', '/host2/', '/host3/'],
        );
        assert.equal(await page.getAttribute('th:has-text("Age")', 'aria-sort'), 'ascending');

        // Filtering by typed text.
        await page.fill('#filter', 'stale');
        assert.deepEqual(await visibleRows(page), [{ repo: '/host2/', status: 'stale' }]);
        await page.fill('#filter', '');
        assert.equal((await visibleRows(page)).length, 3);

        const artefacts = path.join(projectRoot, 'test-artifacts');
        await mkdir(artefacts, { recursive: true });
        await page.screenshot({ path: path.join(artefacts, 'web-view.png'), fullPage: true });

        const elsewhere = requests.filter((url) => new URL(url).origin !== origin);
        assert.deepEqual(elsewhere, [], 'every request goes to the server itself');
        assert.ok(
          requests.some((url) => url.endsWith('/.ratchet/ui/app.js')),
          'the script was loaded',
        );
        assert.deepEqual(
          problems,
          [],
          'no console error: nothing blocked by the CSP, no script error, no missing icon',
        );

        // A host: 403 on the page; the API shows it its own repository, and nothing else.
        const host = await open('host1');
        assert.equal((await host.page.goto(`${origin}/.ratchet/ui/`))?.status(), 403);
        const api = await host.page.goto(`${origin}/.ratchet/api/repos`);
        assert.equal(api?.status(), 200);
        const { repos } = (await api?.json()) as { repos: { repo: string; status: string }[] };
        assert.deepEqual(
          repos.map(({ repo, status }) => ({ repo, status })),
          [{ repo: '/host1/', status: 'fresh' }],
        );
      } finally {
        await browser.close();
      }
    },
  );
});
