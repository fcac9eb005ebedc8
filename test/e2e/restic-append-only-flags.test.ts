/**
 * The README's append-only scenario, set up twice: from the configuration file (listeners and
 * grants) and from flags only (`--private-repos --append-only --listen A --admin-listen B`). The
 * same restic scenario runs against both and must come out the same: a host backs up but can
 * delete nothing of its backups on either listener, and `admin` prunes through the admin
 * listener only. Refusals are checked with single HTTP requests (restic retries a 403 for ~45 s).
 */
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { basic, raw } from '../helpers/http.ts';
import { startRatchetServer } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import type { ResticEnvironment } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

const passwords = { host1: 'host1Secret7f3a', admin: 'adminSecret0e8c' } as const;
type User = keyof typeof passwords;

/** What each setup let happen, to compare the two. */
const outcomes = new Map<string, Record<string, number | string>>();

async function writeUsers(file: string): Promise<void> {
  const lines = await Promise.all(
    Object.entries(passwords).map(async ([user, password]) => `${user}:${await hashPassword(password, 4)}`),
  );
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

const setups: Record<string, (env: ResticEnvironment, htpasswd: string) => Promise<string[]>> = {
  'configuration file': async (env, htpasswd) => {
    const file = path.join(env.dir, 'ratchet.yaml');
    await writeFile(
      file,
      `path: ${JSON.stringify(env.dataDir)}\nhtpasswd-file: ${JSON.stringify(htpasswd)}\n` +
        'listeners:\n  - address: 127.0.0.1:0\n    max-role: append-only\n' +
        '  - address: 127.0.0.1:0\n    max-role: admin\n' +
        "access:\n  - users: ['*']\n    repos: ['/{user}/**']\n    role: append-only\n" +
        "  - users: [admin]\n    repos: ['/**']\n    role: admin\n",
    );
    return ['--config', file];
  },
  'flags only': (env, htpasswd) =>
    Promise.resolve([
      ...['--path', env.dataDir, '--htpasswd-file', htpasswd, '--private-repos', '--append-only'],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ]),
};

for (const [name, setup] of Object.entries(setups)) {
  describe(`restic e2e, the append-only scenario from the ${name}`, { timeout: 300_000 }, () => {
    const env = resticEnvironment({
      name: `scenario-${name.replace(/ /g, '-')}`,
      password: 'key',
      tree: smallTree,
    });
    const outcome: Record<string, number | string> = {};
    outcomes.set(name, outcome);

    it('runs the scenario', step, async (t) => {
      const htpasswd = path.join(env.dir, 'htpasswd');
      await writeUsers(htpasswd);
      const server: RatchetProcess = await env.useServer(startRatchetServer(await setup(env, htpasswd), 2));
      const [publicUrl = '', adminUrl = ''] = server.listeners.map((listener) => listener.url);
      outcome.ceilings = server.listeners.map((listener) => listener.maxRole).join(' ');
      const restic = (user: User, listener: string) => {
        const url = new URL('/host1/', listener);
        url.username = user;
        url.password = passwords[user];
        return inTest(env.runner(`rest:${url.href}`, `cache-${user}`), t);
      };
      const status = async (user: User, listener: string, method: string, urlPath: string) =>
        (await raw(listener, method, urlPath, { headers: { Authorization: basic(user, passwords[user]) } }))
          .status;

      const host1 = restic('host1', publicUrl);
      await host1.ok(['init']);
      await host1.ok(['backup', '.'], { cwd: env.source });
      await env.modifySource(host1);
      await host1.ok(['backup', '.'], { cwd: env.source });
      const [snapshot = ''] = await readdir(path.join(env.dataDir, 'host1', 'snapshots'));
      const snapshotPath = `/host1/snapshots/${snapshot}`;
      // The host deletes nothing of its backups, on either listener.
      outcome.hostDeletesSnapshotPublic = await status('host1', publicUrl, 'DELETE', snapshotPath);
      outcome.hostDeletesSnapshotAdmin = await status('host1', adminUrl, 'DELETE', snapshotPath);
      outcome.hostDeletesConfigAdmin = await status('host1', adminUrl, 'DELETE', '/host1/config');
      // The admin reads every repository, is capped on the public listener, and prunes on the admin one.
      outcome.adminListsPublic = await status('admin', publicUrl, 'GET', '/host1/snapshots/');
      outcome.adminDeletesPublic = await status('admin', publicUrl, 'DELETE', snapshotPath);
      const admin = restic('admin', adminUrl);
      await admin.ok(['forget', '--keep-last', '1', '--prune']);
      outcome.snapshotsAfterPrune = (await admin.snapshots()).length;
      outcome.hostStillBacksUp = (await host1.ok(['backup', '.'], { cwd: env.source })).code ?? -1;
    });
  });
}

describe('the two setups', () => {
  after(() => outcomes.clear());
  it('come out identical, and as the README says', () => {
    const expected = {
      ceilings: 'append-only admin',
      hostDeletesSnapshotPublic: 403,
      hostDeletesSnapshotAdmin: 403,
      hostDeletesConfigAdmin: 403,
      adminListsPublic: 200,
      adminDeletesPublic: 403,
      snapshotsAfterPrune: 1,
      hostStillBacksUp: 0,
    };
    assert.deepEqual(outcomes.get('configuration file'), expected);
    assert.deepEqual(outcomes.get('flags only'), expected);
  });
});
