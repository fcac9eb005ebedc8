/**
 * The seed's scenario end to end, with the real restic client against the real `ratchet` command
 * and authentication on: users made with `ratchet user add`, a configuration file with a public
 * listener (at most append-only) and an admin listener, and the grants "every user append-only on
 * /<own name>/ and below; `admin` admin everywhere; `auditor` read-only everywhere".
 *
 * Hosts back up into their own repositories and can neither prune them nor touch another host's;
 * the auditor reads, checks and restores but cannot back up; the admin prunes through the admin
 * listener and is capped at append-only on the public one. restic 0.14 retries a refused request
 * ten times with backoff (about 45 s), so most refusals are checked with single HTTP requests, and
 * the refused restic commands that do retry run concurrently where they touch different
 * repositories (on one repository, their locks would get in each other's way).
 */
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { tempFilesUnder } from '../helpers/files.ts';
import { basic, blob, raw, v2 } from '../helpers/http.ts';
import type { RawResponse } from '../helpers/http.ts';
import { runRatchet, startRatchetServer } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { listFiles, smallTree } from './restic-helpers.ts';
import type { Restic, ResticResult, SnapshotJson } from './restic-helpers.ts';

/** Login passwords (alphanumeric, so they need no escaping in restic's URLs). */
const users = {
  host1: 'host1Secret7f3a',
  host2: 'host2Secret91bc',
  auditor: 'auditorSecret55d0',
  admin: 'adminSecret0e8c',
} as const;
type User = keyof typeof users;

/** The configuration file, as the README describes the seed's setup. */
function configuration(dataDir: string, htpasswdFile: string): string {
  return `path: ${JSON.stringify(dataDir)}
htpasswd-file: ${JSON.stringify(htpasswdFile)}
listeners:
  - address: 127.0.0.1:0
    max-role: append-only
  - address: 127.0.0.1:0
    max-role: admin
access:
  - users: ['*']
    repos: ['/{user}/**']
    role: append-only
  - users: [admin]
    repos: ['/**']
    role: admin
  - users: [auditor]
    repos: ['/**']
    role: read-only
`;
}

/** A refused restic command gives up after its retries; the limit only guards against a hang. */
const refused = { show: 6, timeoutMs: 150_000 };

function assertRefused(result: ResticResult): void {
  assert.match(result.stderr, /403|Forbidden/i, `restic reports the refusal:\n${result.stderr}`);
}

describe('restic e2e, access per user, repository and listener', { timeout: 420_000 }, () => {
  const env = resticEnvironment({ name: 'access', password: 'one repository key', tree: smallTree });
  let server: RatchetProcess;
  let publicUrl = '';
  let adminUrl = '';

  /** restic as a user, through a listener, on /<repo>/; every user has a cache folder of its own. */
  const restic = (t: TestContext, user: User, listener: string, repo: string): Restic => {
    const url = new URL(`/${repo}/`, listener);
    url.username = user;
    url.password = users[user];
    return inTest(env.runner(`rest:${url.href}`, `cache-${user}`), t);
  };

  /** One HTTP request as a user (a blob as body for POST); the status goes to the transcript. */
  const request = async (
    t: TestContext,
    user: User,
    listener: string,
    method: string,
    urlPath: string,
  ): Promise<RawResponse> => {
    const body = method === 'POST' ? blob(1024).data : undefined;
    const response = await raw(listener, method, urlPath, {
      headers: { Authorization: basic(user, users[user]), Accept: v2, 'Content-Length': body?.length ?? 0 },
      body,
    });
    const which = listener === adminUrl ? 'admin' : 'public';
    t.diagnostic(`${method} ${urlPath} as ${user} on the ${which} listener -> ${response.status}`);
    return response;
  };

  /** The repository's files, lock files aside (restic may take and remove its locks at any role). */
  const repoFiles = async (repo: string): Promise<string[]> =>
    (await listFiles(path.join(env.dataDir, repo))).filter((name) => !name.startsWith('locks/'));

  /** `forget --keep-last 1 --prune` fails with 403; the repository keeps its snapshots and files. */
  const assertPruneRefused = async (runner: Restic, repo: string): Promise<void> => {
    const before = await repoFiles(repo);
    const count = (await runner.json<SnapshotJson[]>(['snapshots'])).length;
    const result = await runner.fails(['forget', '--keep-last', '1', '--prune'], refused);
    assertRefused(result);
    assert.doesNotMatch(result.stdout, /^done$/m, 'prune did not run');
    await runner.snapshots(count, 'still ');
    // Nothing was deleted. restic 0.17+ writes the repacked packs and the new index before it
    // deletes anything, and those uploads are allowed (append-only may add): only data and index
    // objects may have been added, never a snapshot, key or config.
    const after = await repoFiles(repo);
    assert.deepEqual(
      before.filter((name) => !after.includes(name)),
      [],
      'no file of the repository was deleted',
    );
    const added = after.filter((name) => !before.includes(name));
    assert.deepEqual(
      added.filter((name) => !/^(data|index)\//.test(name)),
      [],
      'only packs and index files were added',
    );
  };

  it('`ratchet user add` makes the users; ratchet serves the two listeners', step, async (t) => {
    const htpasswd = path.join(env.dir, 'htpasswd');
    for (const [user, password] of Object.entries(users)) {
      const args = ['user', 'add', user, '--htpasswd-file', htpasswd, '--cost', '4'];
      t.diagnostic(`$ ratchet ${args.join(' ')}   (password on stdin)`);
      const result = await runRatchet(args, `${password}\n`);
      assert.equal(result.code, 0, result.stderr);
      t.diagnostic(`  ${result.stdout.trim()}`);
    }
    const list = await runRatchet(['user', 'list', '--htpasswd-file', htpasswd]);
    assert.deepEqual(list.stdout.trim().split('\n').sort(), Object.keys(users).sort(), list.stderr);

    const configFile = path.join(env.dir, 'ratchet.yaml');
    await writeFile(configFile, configuration(env.dataDir, htpasswd));
    t.diagnostic(`${configFile}:\n${configuration(env.dataDir, htpasswd)}`);
    t.diagnostic(`$ ratchet --config ${configFile}`);
    server = await env.useServer(startRatchetServer(['--config', configFile], 2));
    for (const line of server.stdout().trim().split('\n')) t.diagnostic(`  ${line}`);
    assert.deepEqual(
      server.listeners.map((listener) => listener.maxRole),
      ['append-only', 'admin'],
    );
    [publicUrl, adminUrl] = server.listeners.map((listener) => listener.url) as [string, string];
    assert.notEqual(publicUrl, adminUrl);
    assert.doesNotMatch(server.stdout(), /No users were configured/, 'no first-start admin was made');
  });

  it('host1 backs up twice into /host1/, host2 once into /host2/ (public)', step, async (t) => {
    const host1 = restic(t, 'host1', publicUrl, 'host1');
    await host1.ok(['init']);
    await host1.ok(['backup', '.'], { cwd: env.source });
    await env.modifySource(host1);
    await host1.ok(['backup', '.'], { cwd: env.source });
    await host1.snapshots(2);

    const host2 = restic(t, 'host2', publicUrl, 'host2');
    await host2.ok(['init']);
    await host2.ok(['backup', 'misc'], { cwd: env.source });
    await host2.snapshots(1);
  });

  it('host1 gets 403 on /host2/ for list, HEAD, GET and POST, on both listeners', step, async (t) => {
    // Its own repository answers, so the 403s below are about the repository.
    assert.equal((await request(t, 'host1', publicUrl, 'GET', '/host1/config')).status, 200);
    const before = await repoFiles('host2');
    const name = 'ab'.repeat(32);
    for (const listener of [publicUrl, adminUrl]) {
      assert.equal((await request(t, 'host1', listener, 'GET', '/host2/keys/')).status, 403);
      assert.equal((await request(t, 'host1', listener, 'HEAD', '/host2/config')).status, 403);
      assert.equal((await request(t, 'host1', listener, 'GET', '/host2/config')).status, 403);
      assert.equal((await request(t, 'host1', listener, 'POST', `/host2/data/${name}`)).status, 403);
      assert.equal((await request(t, 'host1', listener, 'POST', `/host2/locks/${name}`)).status, 403);
      assert.equal((await request(t, 'host1', listener, 'POST', '/host2/?create=true')).status, 403);
    }
    assert.deepEqual(await repoFiles('host2'), before, "host2's repository is unchanged");
  });

  it('the auditor lists, checks and restores /host1/, and cannot upload', step, async (t) => {
    const auditor = restic(t, 'auditor', publicUrl, 'host1');
    await auditor.snapshots(2);
    await auditor.ok(['check', '--read-data'], { show: 2 });
    await env.restoreLatest(auditor, 'restore-auditor');
    const name = 'cd'.repeat(32);
    assert.equal((await request(t, 'auditor', publicUrl, 'POST', `/host1/data/${name}`)).status, 403);
    assert.equal((await request(t, 'auditor', adminUrl, 'POST', `/host1/data/${name}`)).status, 403);
  });

  describe(
    'refused restic commands, concurrently (each 403 retried for ~45 s)',
    { concurrency: true },
    () => {
      it('host1 cannot forget --prune /host1/; check stays clean', step, async (t) => {
        const host1 = restic(t, 'host1', publicUrl, 'host1');
        await assertPruneRefused(host1, 'host1');
        await host1.ok(['check'], { show: 2 });
      });

      it('host1 can neither init nor open /host2/', step, async (t) => {
        const host1 = restic(t, 'host1', publicUrl, 'host2');
        const before = await repoFiles('host2');
        assertRefused(await host1.fails(['init'], refused));
        assertRefused(await host1.fails(['snapshots'], refused));
        assert.deepEqual(await repoFiles('host2'), before, "host2's repository is unchanged");
      });

      it('the auditor cannot back up into /host2/', step, async (t) => {
        const auditor = restic(t, 'auditor', publicUrl, 'host2');
        const before = await repoFiles('host2');
        assertRefused(await auditor.fails(['backup', 'big'], { ...refused, cwd: env.source }));
        assert.deepEqual(await repoFiles('host2'), before, 'nothing was written into /host2/');
        await restic(t, 'host2', publicUrl, 'host2').snapshots(1, 'still ');
      });
    },
  );

  it('the admin is capped at append-only on the public listener', step, async (t) => {
    const admin = restic(t, 'admin', publicUrl, 'host1');
    const snapshots = await admin.json<SnapshotJson[]>(['snapshots']);
    const oldest = snapshots.sort((a, b) => a.time.localeCompare(b.time))[0];
    assert.ok(oldest);
    const deleting = await request(t, 'admin', publicUrl, 'DELETE', `/host1/snapshots/${oldest.id}`);
    assert.equal(deleting.status, 403);
    await assertPruneRefused(admin, 'host1');
  });

  it('the admin prunes /host1/ through the admin listener; host1 backs up on', step, async (t) => {
    const admin = restic(t, 'admin', adminUrl, 'host1');
    const before = await repoFiles('host1');
    await admin.ok(['forget', '--keep-last', '1', '--prune'], { show: 12 });
    await admin.snapshots(1);
    const after = await repoFiles('host1');
    const deleted = before.filter((name) => !after.includes(name));
    assert.ok(
      deleted.some((name) => name.startsWith('snapshots/')),
      'a snapshot file was deleted',
    );
    t.diagnostic(`  files deleted on disk: ${deleted.join(', ')}`);
    await admin.ok(['check', '--read-data'], { show: 2 });

    const host1 = restic(t, 'host1', publicUrl, 'host1');
    await host1.ok(['backup', '.'], { cwd: env.source });
    await host1.snapshots(2);
    await host1.ok(['check'], { show: 2 });
  });

  it('a wrong password, or none, gets 401 with a Basic challenge', async (t) => {
    const wrong = await raw(publicUrl, 'GET', '/host1/config', {
      headers: { Authorization: basic('host1', 'not-the-password'), Accept: v2 },
    });
    const challenge = wrong.headers['www-authenticate'] ?? '';
    t.diagnostic(`GET /host1/config as host1 with a wrong password -> ${wrong.status}, ${challenge}`);
    assert.equal(wrong.status, 401);
    assert.match(challenge, /^Basic realm="[^"]+"/);
    const none = await raw(adminUrl, 'GET', '/host1/config', { headers: { Accept: v2 } });
    t.diagnostic(`GET /host1/config without credentials on the admin listener -> ${none.status}`);
    assert.equal(none.status, 401);
    assert.match(none.headers['www-authenticate'] ?? '', /^Basic realm="[^"]+"/);
  });

  it('leaves no lock and no temporary file behind', async () => {
    for (const host of ['host1', 'host2']) {
      const locks = path.join(env.dataDir, host, 'locks');
      assert.ok((await stat(locks)).isDirectory(), `${locks} is the repository's locks folder`);
      assert.deepEqual(await listFiles(locks), [], `no lock left in ${locks}`);
    }
    assert.deepEqual(await tempFilesUnder(env.dataDir), []);
  });
});
