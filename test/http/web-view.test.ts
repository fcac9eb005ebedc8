/**
 * The web view and its API through a real server: each caller sees the repositories their grants
 * cover (a host its own), the page is for read-only and admin users through a listener that
 * allows them, statuses follow --stale-after and the file's `freshness` rules (a backdated
 * snapshot, counted after a restart), names that could inject markup are escaped, the page
 * comes with a strict Content-Security-Policy, and the stale and ready metrics are exported.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Grant } from '../../src/access/grants.ts';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import { escapeHtml, renderPage } from '../../src/http/web-page.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { basic, raw, sha256, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import type { TestServer } from '../helpers/in-process.ts';
import { parseMetrics, sampleValue } from '../helpers/metrics.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { writeHtpasswd } from './operations-helpers.ts';

const passwords = {
  host1: 'host1-secret',
  host2: 'host2-secret',
  admin: 'admin-secret',
  auditor: 'auditor-secret',
} as const;
type User = keyof typeof passwords;

const grants: Grant[] = [
  { users: ['*'], repos: ['/{user}/**'], role: 'append-only' },
  { users: ['admin'], repos: ['/**'], role: 'admin' },
  { users: ['auditor'], repos: ['/**'], role: 'read-only' },
];

type As = ((
  user: User,
  listener: 'hosts' | 'admin',
  method: string,
  target: string,
  body?: Buffer,
) => Promise<RawResponse>) & { readonly anonymous: (target: string) => Promise<RawResponse> };

/** A server with a hosts listener (append-only ceiling) and an admin one; restartable. */
async function withServer(
  overrides: Partial<ServerConfig>,
  test: (
    as: As,
    dataDir: string,
    restart: (whileStopped?: () => Promise<void>) => Promise<void>,
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'htpasswd');
    await writeHtpasswd(file, passwords);
    const auth = await startHtpasswdAuth({ file, logger: silentLogger(), watch: false, pollIntervalMs: 0 });
    const loopback = { kind: 'tcp', host: '127.0.0.1', port: 0 } as const;
    const dataDir = path.join(dir, 'data');
    const start = (): Promise<TestServer> =>
      startTestServer(
        dataDir,
        {
          noAuth: false,
          grants,
          listeners: [
            { address: loopback, maxRole: 'append-only', forHosts: true },
            { address: loopback, maxRole: 'admin', forHosts: false },
          ],
          prometheus: true,
          prometheusNoAuth: true,
          ...overrides,
        },
        undefined,
        auth,
      );
    let server = await start();
    try {
      const as: As = Object.assign(
        (user: User, listener: 'hosts' | 'admin', method: string, target: string, body?: Buffer) =>
          raw(server.urls[listener === 'hosts' ? 0 : 1] ?? '', method, target, {
            headers: {
              Authorization: basic(user, passwords[user]),
              Accept: v2,
              ...(body === undefined ? {} : { 'Content-Length': body.length }),
            },
            body,
          }),
        { anonymous: (target: string) => raw(server.urls[0] ?? '', 'GET', target) },
      );
      await test(as, dataDir, async (whileStopped) => {
        await server.close();
        await whileStopped?.();
        server = await start();
      });
    } finally {
      await server.close();
      await auth.close();
    }
  });
}

interface Row {
  readonly repo: string;
  readonly owner: string | null;
  readonly status: string;
  readonly newestSnapshot: string | null;
  readonly bytes: number;
  readonly sizeHistory: (number | null)[];
  readonly scrub: { lastPass: string | null; corrupt: number; unreadable: number } | null;
}

async function repos(as: As, user: User, listener: 'hosts' | 'admin' = 'hosts'): Promise<Row[]> {
  const res = await as(user, listener, 'GET', '/.ratchet/api/repos');
  assert.equal(res.status, 200, res.body.toString());
  return (JSON.parse(res.body.toString()) as { repos: Row[] }).repos;
}

/** host1 backs up (a data object and a snapshot); host2 stores data but never a snapshot. */
async function backUp(as: As): Promise<void> {
  for (const host of ['host1', 'host2'] as const) {
    assert.equal((await as(host, 'hosts', 'POST', `/${host}/?create=true`)).status, 200);
    const data = randomBytes(300);
    assert.equal((await as(host, 'hosts', 'POST', `/${host}/data/${sha256(data)}`, data)).status, 200);
  }
  const snapshot = randomBytes(40);
  assert.equal(
    (await as('host1', 'hosts', 'POST', `/host1/snapshots/${sha256(snapshot)}`, snapshot)).status,
    200,
  );
}

const metrics = async (as: As): Promise<string> =>
  (await as('admin', 'admin', 'GET', '/metrics')).body.toString();

describe('the web view', () => {
  it('shows each caller the repositories their grants cover, the page only to read-only and admin users', async () => {
    await withServer({}, async (as) => {
      await backUp(as);
      // A host sees its own repository, fresh, and that it owns it.
      const own = await repos(as, 'host1');
      assert.deepEqual(
        own.map(({ repo, owner, status, bytes }) => ({ repo, owner, status, bytes })),
        [{ repo: '/host1/', owner: 'host1', status: 'fresh', bytes: 340 }],
      );
      assert.match(String(own[0]?.newestSnapshot), /^\d{4}-\d\d-\d\dT/);
      assert.deepEqual(
        (await repos(as, 'host2')).map(({ repo, status, newestSnapshot }) => ({
          repo,
          status,
          newestSnapshot,
        })),
        [{ repo: '/host2/', status: 'never', newestSnapshot: null }],
      );
      assert.deepEqual(
        (await repos(as, 'admin', 'admin')).map(({ repo, status }) => ({ repo, status })),
        [
          { repo: '/host1/', status: 'fresh' },
          { repo: '/host2/', status: 'never' },
        ],
      );

      // The page: for the auditor and the admin, not for a host, nor for the admin through the
      // hosts' listener (its ceiling makes the admin append-only there).
      assert.equal((await as('host1', 'hosts', 'GET', '/.ratchet/ui/')).status, 403);
      assert.equal((await as('admin', 'hosts', 'GET', '/.ratchet/ui/')).status, 403);
      assert.equal((await as.anonymous('/.ratchet/ui/')).status, 401);
      const page = await as('auditor', 'hosts', 'GET', '/.ratchet/ui/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      const html = page.body.toString();
      assert.match(html, /<td>\/host1\/<\/td>/);
      assert.match(html, /class="status fresh">fresh</);
      assert.match(html, /class="status never">never</);
      assert.doesNotMatch(html, /<script>|style=|https?:\/\//, 'no inline script or style, no other origin');
      assert.equal((await as('admin', 'admin', 'GET', '/.ratchet/ui/')).status, 200);
      const script = await as.anonymous('/.ratchet/ui/app.js');
      assert.equal(script.status, 200);
      assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal((await as('auditor', 'hosts', 'POST', '/.ratchet/ui/')).status, 405);
    });
  });

  it('marks a repository stale past --stale-after or its freshness rule, in the API and the metrics', async () => {
    const freshness = {
      staleAfterMs: 36 * 3_600_000,
      rules: [{ repos: ['/host2/'], staleAfterMs: 3_600_000 }],
    };
    await withServer({ freshness }, async (as, dataDir, restart) => {
      await backUp(as);
      const snapshot = randomBytes(40);
      assert.equal(
        (await as('host2', 'hosts', 'POST', `/host2/snapshots/${sha256(snapshot)}`, snapshot)).status,
        200,
      );
      // Back-date both snapshots by two hours, server stopped; the restarted server counts them.
      for (const host of ['host1', 'host2']) {
        const folder = path.join(dataDir, host, 'snapshots');
        const then = new Date(Date.now() - 2 * 3_600_000);
        for (const name of await readdir(folder)) await utimes(path.join(folder, name), then, then);
        await utimes(folder, then, then);
      }
      await restart();
      let rows: Row[] = [];
      await waitFor(async () => {
        rows = await repos(as, 'admin', 'admin').catch(() => []);
        return rows.length === 2;
      }, 'the restarted server counts the repositories');
      // Two hours: within the 36 h default for host1, past host2's one-hour rule.
      assert.deepEqual(
        rows.map(({ repo, status }) => ({ repo, status })),
        [
          { repo: '/host1/', status: 'fresh' },
          { repo: '/host2/', status: 'stale' },
        ],
      );
      const samples = parseMetrics(await metrics(as));
      assert.equal(sampleValue(samples, 'ratchet_repo_stale', { repo: 'host1' }), 0);
      assert.equal(sampleValue(samples, 'ratchet_repo_stale', { repo: 'host2' }), 1);
      assert.equal(sampleValue(samples, 'ratchet_ready', {}), 1);
    });
  });

  it('escapes names that could inject markup', async () => {
    const hostile = `<img src=x onerror="alert(1)">&'`;
    await withServer({ grants: [{ users: ['*'], repos: ['/**'], role: 'admin' }] }, async (as) => {
      const repo = encodeURIComponent(hostile);
      assert.equal((await as('admin', 'admin', 'POST', `/${repo}/?create=true`)).status, 200);
      const html = (await as('admin', 'admin', 'GET', '/.ratchet/ui/')).body.toString();
      assert.ok(!html.includes(hostile), 'the name never appears raw');
      assert.ok(html.includes(escapeHtml(`/${hostile}/`)));
      assert.doesNotMatch(html, /<img/);
    });
    // A hostile user name (from htpasswd) in the page's header line.
    const page = renderPage([], `"><script>alert(1)</script>`);
    assert.doesNotMatch(page, /<script>alert/);
    assert.match(page, /&#34;&#62;&#60;script&#62;/);
  });

  it('keeps the daily size of each repository across restarts and draws it', async () => {
    await withServer({}, async (as, dataDir, restart) => {
      await backUp(as);
      const file = path.join(dataDir, '.ratchet', 'size-history.json');
      // Stopping samples the ledger and saves; the days before today are written while stopped.
      await restart(async () => {
        const saved = JSON.parse(await readFile(file, 'utf8')) as Record<string, Record<string, number>>;
        const today = new Date().toISOString().slice(0, 10);
        assert.equal(saved['host1']?.[today], 340);
        const day = (back: number): string =>
          new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10);
        saved['host1'] = { ...saved['host1'], [day(40)]: 1, [day(2)]: 100, [day(1)]: 200 };
        await writeFile(file, JSON.stringify(saved));
      });
      let rows: Row[] = [];
      await waitFor(async () => {
        rows = await repos(as, 'admin', 'admin').catch(() => []);
        return rows.length === 2;
      }, 'the restarted server counts the repositories');
      const history = rows[0]?.sizeHistory ?? [];
      assert.equal(history.length, 30, 'thirty days, the one 40 days back left out');
      assert.deepEqual(history.slice(-3), [100, 200, 340]);
      assert.ok(history.slice(0, -3).every((bytes) => bytes === null));
      const html = (await as('admin', 'admin', 'GET', '/.ratchet/ui/')).body.toString();
      const sparks = html.match(/<svg class="spark"[^>]*><polyline [^>]*points="[\d., ]+"\/><\/svg>/g) ?? [];
      assert.equal(sparks.length, 1, 'host1 has a curve; host2, with one day, has none');
    });
  });

  it('shows what the background scrub found per repository', async () => {
    await withServer({ scrubIntervalMs: 1500, scrubRate: 1 << 30 }, async (as, dataDir) => {
      await backUp(as);
      // host2's data object rots on disk.
      const folder = path.join(dataDir, 'host2', 'data');
      const [sub = ''] = await readdir(folder);
      const [name = ''] = await readdir(path.join(folder, sub));
      await writeFile(path.join(folder, sub, name), randomBytes(300));
      let rows: Row[] = [];
      await waitFor(
        async () => {
          rows = await repos(as, 'admin', 'admin');
          return (rows[1]?.scrub?.corrupt ?? 0) > 0 && rows[0]?.scrub?.lastPass !== null;
        },
        'a scrub pass finds the rotten object',
        20_000,
      );
      assert.deepEqual(
        rows.map((row) => ({
          repo: row.repo,
          corrupt: row.scrub?.corrupt,
          unreadable: row.scrub?.unreadable,
        })),
        [
          { repo: '/host1/', corrupt: 0, unreadable: 0 },
          { repo: '/host2/', corrupt: 1, unreadable: 0 },
        ],
      );
      const html = (await as('admin', 'admin', 'GET', '/.ratchet/ui/')).body.toString();
      assert.match(html, /<td data-sort="1" class="warn">1 corrupt<\/td>/);
      assert.match(html, /<td data-sort="0" title="last checked whole [^"]+">ok, \d+ s ago<\/td>/);
    });
    // Without the scrub there is no scrub column and no scrub field.
    await withServer({}, async (as) => {
      await backUp(as);
      assert.equal((await repos(as, 'host1'))[0]?.scrub, null);
      assert.doesNotMatch((await as('admin', 'admin', 'GET', '/.ratchet/ui/')).body.toString(), />Scrub</);
    });
  });
});
