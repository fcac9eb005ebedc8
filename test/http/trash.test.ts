/**
 * The trash through a real server (--delete-grace): its bytes count against the total quota but
 * not against users' and repositories' quotas; when the total or the disk is full, trash older
 * than --delete-grace-min is purged early, oldest first, and younger trash never is; the trash
 * metrics; and the `/.ratchet/trash` endpoints, which only an admin reaches, only through a
 * listener whose ceiling allows admin, each change a line in the audit trail.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { defaultGrants } from '../../src/access/grants.ts';
import { parseRepoRoot } from '../../src/protocol/repo-root.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import { basic, blob, raw } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { startTestServer } from '../helpers/in-process.ts';
import type { TestServer } from '../helpers/in-process.ts';
import { capturingLogger } from '../helpers/logger.ts';
import type { LogLine } from '../helpers/logger.ts';
import { parseMetrics, sampleValue } from '../helpers/metrics.ts';
import { withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { withTmpfs, writeHtpasswd } from './operations-helpers.ts';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { silentLogger } from '../../src/log/logger.ts';

const day = 86_400_000;
const week = 7 * day;

/** A server with the trash on, its log lines kept; `restart` starts it again over the same folder. */
interface TrashServer {
  readonly url: string;
  readonly dataDir: string;
  readonly logs: LogLine[];
  restart(): Promise<void>;
}

async function withTrashServer(
  overrides: Partial<ServerConfig>,
  test: (server: TrashServer) => Promise<void>,
  dataDir?: string,
): Promise<void> {
  await withTempDir(async (dir) => {
    const data = dataDir ?? path.join(dir, 'data');
    const { logger, lines } = capturingLogger();
    const start = (): Promise<TestServer> =>
      startTestServer(
        data,
        {
          deleteGraceMs: week,
          prometheus: true,
          ...overrides,
          // A file name is placed beside the data folder.
          auditLog: overrides.auditLog === undefined ? undefined : path.join(data, '..', overrides.auditLog),
        },
        undefined,
        undefined,
        logger,
      );
    let server = await start();
    try {
      await test({
        get url() {
          return server.url;
        },
        dataDir: data,
        logs: lines,
        restart: async () => {
          await server.close();
          server = await start();
        },
      });
    } finally {
      await server.close();
    }
  });
}

async function put(url: string, repo: string, size: number): Promise<{ name: string; status: number }> {
  const object = blob(size);
  const res = await raw(url, 'POST', `/${repo}/data/${object.name}`, { body: object.data });
  return { name: object.name, status: res.status };
}

/** Makes the trash entry of a data object look deleted `ageMs` ago (the time is in its name). */
async function age(dataDir: string, repo: string, name: string, ageMs: number): Promise<void> {
  const folder = path.join(dataDir, repo, '.ratchet-trash', 'data');
  const [file] = (await readdir(folder)).filter((entry) => entry.startsWith(`${name}.`));
  assert.ok(file !== undefined, `${name} is in the trash`);
  await rename(path.join(folder, file), path.join(folder, `${name}.${Date.now() - ageMs}`));
}

async function trashed(dataDir: string, repo: string): Promise<string[]> {
  const names = await readdir(path.join(dataDir, repo, '.ratchet-trash', 'data')).catch(() => []);
  return names.map((file) => file.slice(0, file.lastIndexOf('.'))).sort();
}

async function metric(
  url: string,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const text = (await raw(url, 'GET', '/metrics')).body.toString();
  return sampleValue(parseMetrics(text), name, labels);
}

describe('the trash and the quotas', () => {
  it('counts trash against the total, never purges young trash early, and purges old trash oldest first', async () => {
    await withTrashServer(
      { quotas: { maxTotalBytes: 10_000, repoRules: [], userRules: [] }, auditLog: 'audit.jsonl' },
      async (server) => {
        const { dataDir, logs } = server;
        let { url } = server;
        assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
        const a = await put(url, 'r', 3000);
        const b = await put(url, 'r', 3000);
        assert.equal((await raw(url, 'DELETE', `/r/data/${a.name}`)).status, 200);
        assert.equal((await raw(url, 'DELETE', `/r/data/${b.name}`)).status, 200);
        assert.equal(await metric(url, 'ratchet_trash_bytes', { repo: 'r' }), 6000);
        assert.equal(await metric(url, 'ratchet_trash_objects', { repo: 'r' }), 2);
        assert.equal(await metric(url, 'ratchet_repo_size_bytes', { repo: 'r' }), 0);
        assert.equal(await metric(url, 'ratchet_quota_used_bytes', { scope: 'total' }), 6000);

        // Young trash stays: the upload that does not fit beside it is refused.
        const refused = await put(url, 'r', 6000);
        assert.equal(refused.status, 507);
        assert.deepEqual(await trashed(dataDir, 'r'), [a.name, b.name].sort());
        assert.ok(
          logs.some((line) => line.level === 40 && /no trash older than --delete-grace-min/.test(line.msg)),
        );

        // Days later (the deletion times moved back; a restart counts the trash from the disk):
        // older than --delete-grace-min (24h), purged early, the oldest first, no more than needed.
        await age(dataDir, 'r', a.name, 3 * day);
        await age(dataDir, 'r', b.name, 2 * day);
        await server.restart();
        url = server.url;
        await waitFor(
          async () => (await metric(url, 'ratchet_quota_used_bytes', { scope: 'total' })) === 6000,
          'the restarted server counts the trash in the total',
        );
        const fits = await put(url, 'r', 6000);
        assert.equal(fits.status, 200);
        assert.deepEqual(await trashed(dataDir, 'r'), [b.name]);
        assert.equal(await metric(url, 'ratchet_trash_bytes', { repo: 'r' }), 3000);
        assert.equal(await metric(url, 'ratchet_quota_used_bytes', { scope: 'total' }), 9000);
        const early = logs.find((line) => /removed the oldest trash early/.test(line.msg));
        assert.ok(early, 'the early purge is logged');
        assert.equal(early.level, 40);
        assert.equal(early.objects, 1);
        assert.equal(early.bytes, 3000);
        const audited = (await auditLines(path.join(dataDir, '..', 'audit.jsonl'))).filter(
          (line) => line.action === 'trash-purge',
        );
        assert.deepEqual(
          audited.map(({ time: _time, ...rest }) => rest),
          [
            {
              action: 'trash-purge',
              repo: '/r/',
              type: 'data',
              name: a.name,
              size: 3000,
              status: 0,
              reason: 'early: no room left',
            },
          ],
        );
      },
    );
  });

  it('removes trash past the grace period in the background, counted and audited', async () => {
    await withTrashServer(
      { deleteGraceMs: 2000, auditLog: 'audit.jsonl' },
      async ({ url, dataDir, logs }) => {
        assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
        const gone = await put(url, 'r', 500);
        assert.equal((await raw(url, 'DELETE', `/r/data/${gone.name}`)).status, 200);
        assert.deepEqual(await trashed(dataDir, 'r'), [gone.name]);
        await waitFor(async () => (await trashed(dataDir, 'r')).length === 0, 'the background purge');
        await waitFor(
          () => logs.some((line) => /past the grace period/.test(line.msg) && line.objects === 1),
          'the purge is logged',
        );
        assert.equal(await metric(url, 'ratchet_trash_bytes', { repo: 'r' }), 0);
        const audited = (await auditLines(path.join(dataDir, '..', 'audit.jsonl'))).filter(
          (line) => line.action === 'trash-purge',
        );
        assert.deepEqual(
          audited.map(({ time: _time, ...rest }) => rest),
          [{ action: 'trash-purge', repo: '/r/', type: 'data', name: gone.name, size: 500, status: 0 }],
        );
      },
    );
  });

  it('purges old trash only for an upload that then fits, never for one another quota refuses', async () => {
    const quotas = { maxTotalBytes: 10_000, repoRules: [{ repos: ['/r/'], maxBytes: 3000 }], userRules: [] };
    await withTrashServer({ quotas }, async (server) => {
      const { dataDir } = server;
      for (const repo of ['r', 'r2', 'r3'])
        assert.equal((await raw(server.url, 'POST', `/${repo}/?create=true`)).status, 200);
      assert.equal((await put(server.url, 'r', 3000)).status, 200);
      const old = await put(server.url, 'r2', 6000);
      assert.equal((await raw(server.url, 'DELETE', `/r2/data/${old.name}`)).status, 200);
      await age(dataDir, 'r2', old.name, 2 * day);
      await server.restart();
      await waitFor(
        async () => (await metric(server.url, 'ratchet_quota_used_bytes', { scope: 'total' })) === 9000,
        'the restarted server counts the trash',
      );
      // Both the total and /r/'s quota are full: purging the trash would not make this fit.
      const extra = blob(2000);
      const refused = await raw(server.url, 'POST', `/r/data/${extra.name}`, { body: extra.data });
      assert.equal(refused.status, 507);
      assert.match(refused.body.toString(), /repository \/r\//);
      assert.deepEqual(await trashed(dataDir, 'r2'), [old.name]);
      // Only the total is full here: the old trash makes room.
      assert.equal((await put(server.url, 'r3', 2000)).status, 200);
      assert.deepEqual(await trashed(dataDir, 'r2'), []);
    });
  });

  it('does not charge the trash to the repository and user quotas', async () => {
    const quotas = {
      maxTotalBytes: undefined,
      repoRules: [{ repos: ['/r/'], maxBytes: 7000 }],
      userRules: [{ users: ['*'], maxBytes: 7000 }],
    };
    await withTrashServer({ quotas }, async ({ url }) => {
      assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
      const first = await put(url, 'r', 6000);
      assert.equal((await put(url, 'r', 6000)).status, 507, 'the repository quota holds');
      assert.equal((await raw(url, 'DELETE', `/r/data/${first.name}`)).status, 200);
      assert.equal((await put(url, 'r', 6000)).status, 200, 'the trashed bytes are not the repository’s');
      assert.equal(await metric(url, 'ratchet_trash_bytes', { repo: 'r' }), 6000);
    });
  });

  it('purges old trash when the disk is full, so that the retried upload fits; young trash stays', async () => {
    await withTmpfs('4m', async (dir) => {
      await withTrashServer(
        { deleteGraceMinMs: day },
        async (server) => {
          const { dataDir } = server;
          const url = (): string => server.url;
          assert.equal((await raw(url(), 'POST', '/r/?create=true')).status, 200);
          const stored: string[] = [];
          for (let i = 0; i < 8; i++) {
            const { name, status } = await put(url(), 'r', 512 * 1024);
            if (status !== 200) {
              assert.equal(status, 507);
              break;
            }
            stored.push(name);
          }
          assert.ok(stored.length >= 3, `filled the disk with ${stored.length} objects`);
          for (const name of stored.slice(0, 2))
            assert.equal((await raw(url(), 'DELETE', `/r/data/${name}`)).status, 200);
          const big = blob(1024 * 1024);
          const send = async (): Promise<RawResponse> =>
            raw(url(), 'POST', `/r/data/${big.name}`, { body: big.data });
          // The trash is younger than a day: the disk stays full.
          assert.equal((await send()).status, 507);
          assert.equal((await trashed(dataDir, 'r')).length, 2);
          for (const name of stored.slice(0, 2)) await age(dataDir, 'r', name, 2 * day);
          await server.restart();
          // The failed attempt makes room from the old trash; restic's retry then fits.
          const first = await send();
          const status = first.status === 200 ? 200 : (await send()).status;
          assert.equal(status, 200);
          assert.deepEqual(await trashed(dataDir, 'r'), []);
          const back = await raw(url(), 'GET', `/r/data/${big.name}`);
          assert.equal(back.status, 200);
          assert.ok(back.body.equals(big.data));
        },
        path.join(dir, 'data'),
      );
    });
  });
});

const passwords = { host1: 'host1-secret', admin: 'admin-secret' } as const;
type User = keyof typeof passwords;
type As = (
  user: User,
  listener: 'hosts' | 'admin',
  method: string,
  target: string,
  body?: Buffer,
) => Promise<RawResponse>;

/** A server with the seed's two listeners, hosts (append-only ceiling) and admin, auditing. */
async function withListeners(
  overrides: Partial<ServerConfig>,
  test: (as: As, auditFile: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'htpasswd');
    await writeHtpasswd(file, passwords);
    const auth = await startHtpasswdAuth({ file, logger: silentLogger(), watch: false, pollIntervalMs: 0 });
    const auditFile = path.join(dir, 'audit.jsonl');
    const loopback = { kind: 'tcp', host: '127.0.0.1', port: 0 } as const;
    const server = await startTestServer(
      path.join(dir, 'data'),
      {
        noAuth: false,
        grants: defaultGrants(true, 'admin'),
        listeners: [
          { address: loopback, maxRole: 'append-only', forHosts: true },
          { address: loopback, maxRole: 'admin', forHosts: false },
        ],
        auditLog: auditFile,
        deleteGraceMs: week,
        ...overrides,
      },
      undefined,
      auth,
    );
    try {
      const as: As = (user, listener, method, target, body) =>
        raw(server.urls[listener === 'hosts' ? 0 : 1] ?? '', method, target, {
          headers: {
            Authorization: basic(user, passwords[user]),
            ...(body === undefined ? {} : { 'Content-Length': body.length }),
          },
          body,
        });
      await test(as, auditFile);
    } finally {
      await server.close();
      await auth.close();
    }
  });
}

async function auditLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const json = (res: RawResponse): Record<string, unknown> => {
  assert.equal(res.status, 200, res.body.toString());
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
};

describe('the trash endpoints', () => {
  it('list, restore and purge for the admin through the admin listener only, each change audited', async () => {
    await withListeners({}, async (as, auditFile) => {
      assert.equal((await as('host1', 'hosts', 'POST', '/host1/?create=true')).status, 200);
      const [one, two] = [blob(100), blob(200)];
      for (const object of [one, two]) {
        assert.equal(
          (await as('host1', 'hosts', 'POST', `/host1/data/${object.name}`, object.data)).status,
          200,
        );
        assert.equal((await as('admin', 'admin', 'DELETE', `/host1/data/${object.name}`)).status, 200);
      }

      // Only the admin, only through the admin listener; a host may not even look.
      const list = '/.ratchet/trash?repo=/host1/';
      assert.equal((await as('host1', 'hosts', 'GET', list)).status, 403);
      assert.equal((await as('host1', 'admin', 'GET', list)).status, 403);
      assert.equal((await as('admin', 'hosts', 'GET', list)).status, 403);
      const restoreOne = `/.ratchet/trash/restore?repo=/host1/&name=${one.name}`;
      assert.equal((await as('admin', 'hosts', 'POST', restoreOne)).status, 403);
      assert.equal((await as('host1', 'hosts', 'POST', '/.ratchet/trash/purge?repo=/host1/')).status, 403);
      assert.equal((await as('host1', 'hosts', 'GET', `/host1/data/${one.name}`)).status, 404);

      const listed = json(await as('admin', 'admin', 'GET', list)).entries as Record<string, unknown>[];
      assert.deepEqual(
        listed.map(({ repo, type, name, size }) => ({ repo, type, name, size })),
        [
          { repo: '/host1/', type: 'data', name: one.name, size: 100 },
          { repo: '/host1/', type: 'data', name: two.name, size: 200 },
        ],
      );
      assert.match(String(listed[0]?.deleted), /^\d{4}-\d\d-\d\dT/);

      // Bad requests change nothing and say why.
      const bad = async (method: string, target: string, status: number, message: RegExp): Promise<void> => {
        const res = await as('admin', 'admin', method, target);
        assert.equal(res.status, status, target);
        assert.match(res.body.toString(), message);
      };
      await bad('POST', '/.ratchet/trash/purge?older_than=7d', 400, /unknown parameter "older_than"/);
      await bad('POST', '/.ratchet/trash/restore', 400, /name the repository/);
      await bad('GET', '/.ratchet/trash/restore?repo=/host1/', 405, /not allowed/);
      await bad('GET', '/.ratchet/trash?repo=/nobody/', 404, /does not exist/);
      await bad('POST', '/.ratchet/trash/restore?repo=/host1/&since=yesterday', 400, /invalid time/);
      await bad('POST', '/.ratchet/trash/purge?older-than=7x', 400, /invalid duration/);
      assert.equal((json(await as('admin', 'admin', 'GET', list)).entries as unknown[]).length, 2);

      // One object back by name; it is served again.
      const restored = json(await as('admin', 'admin', 'POST', restoreOne));
      assert.equal(restored.restored, 1);
      assert.equal(restored.problems, 0);
      assert.deepEqual(
        (restored.results as Record<string, unknown>[]).map(({ name, outcome }) => ({ name, outcome })),
        [{ name: one.name, outcome: 'restored' }],
      );
      const back = await as('host1', 'hosts', 'GET', `/host1/data/${one.name}`);
      assert.equal(back.status, 200);
      assert.ok(back.body.equals(one.data));

      // A purge of what is older than an hour removes nothing; a purge of everything the rest.
      assert.deepEqual(
        json(await as('admin', 'admin', 'POST', '/.ratchet/trash/purge?repo=/host1/&older-than=1h')),
        {
          objects: 0,
          bytes: 0,
        },
      );
      assert.deepEqual(json(await as('admin', 'admin', 'POST', '/.ratchet/trash/purge?repo=/host1/')), {
        objects: 1,
        bytes: 200,
      });
      assert.deepEqual(json(await as('admin', 'admin', 'GET', '/.ratchet/trash')).entries, []);

      const lines = await auditLines(auditFile);
      const trashLines = lines
        .filter((line) => String(line.action).startsWith('trash-'))
        .map(({ time, client, listener, ...rest }) => {
          assert.match(String(time), /^\d{4}-/);
          assert.equal(client, '127.0.0.1');
          assert.match(String(listener), /^http:\/\/127\.0\.0\.1:\d+$/);
          return rest;
        });
      assert.deepEqual(trashLines, [
        {
          action: 'trash-restore',
          user: 'admin',
          method: 'POST',
          repo: '/host1/',
          status: 403,
          reason: 'append-only access: deleting is not allowed',
        },
        {
          action: 'trash-purge',
          user: 'host1',
          method: 'POST',
          repo: '/host1/',
          status: 403,
          reason: 'append-only access: deleting is not allowed',
        },
        {
          action: 'trash-restore',
          user: 'admin',
          method: 'POST',
          repo: '/host1/',
          type: 'data',
          name: one.name,
          size: 100,
          status: 200,
        },
        {
          action: 'trash-purge',
          user: 'admin',
          method: 'POST',
          repo: '/host1/',
          type: 'data',
          name: two.name,
          size: 200,
          status: 200,
        },
      ]);
    });
  });

  it('name repositories below the listener root, never outside it', async () => {
    const loopback = { kind: 'tcp', host: '127.0.0.1', port: 0 } as const;
    const rooted = {
      address: loopback,
      maxRole: 'admin',
      forHosts: true,
      root: parseRepoRoot('/{user}'),
    } as const;
    // Every user admin on their own folder (--private-repos without --append-only), one listener
    // that names it `/`, twice so that `as` finds it as either.
    await withListeners({ grants: defaultGrants(true), listeners: [rooted, rooted] }, async (as) => {
      for (const user of ['host1', 'admin'] as const) {
        assert.equal((await as(user, 'hosts', 'POST', '/?create=true')).status, 200);
        const object = blob(300);
        assert.equal((await as(user, 'hosts', 'POST', `/data/${object.name}`, object.data)).status, 200);
        assert.equal((await as(user, 'hosts', 'DELETE', `/data/${object.name}`)).status, 200);
      }
      const none = await as('host1', 'hosts', 'GET', '/.ratchet/trash');
      assert.equal(none.status, 400);
      assert.match(none.body.toString(), /name the repository/);
      const own = json(await as('host1', 'hosts', 'GET', '/.ratchet/trash?repo=/')).entries as Record<
        string,
        unknown
      >[];
      assert.deepEqual(
        own.map(({ repo, size }) => ({ repo, size })),
        [{ repo: '/host1/', size: 300 }],
      );
      // /admin/ below /host1/ does not exist; nothing climbs out of the root.
      assert.equal((await as('host1', 'hosts', 'GET', '/.ratchet/trash?repo=/admin/')).status, 404);
      assert.equal((await as('host1', 'hosts', 'GET', '/.ratchet/trash?repo=/../admin/')).status, 400);
      assert.equal((await as('host1', 'hosts', 'GET', '/.ratchet/trash?repo=%2E%2E%2Fadmin')).status, 400);
    });
  });

  it('answer 404 when the trash is off', async () => {
    await withListeners({ deleteGraceMs: 0 }, async (as) => {
      const res = await as('admin', 'admin', 'GET', '/.ratchet/trash');
      assert.equal(res.status, 404);
      assert.match(res.body.toString(), /--delete-grace/);
    });
  });
});
