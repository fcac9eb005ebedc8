/**
 * Switching from the nginx recipe without touching a host: the append-only vhost served each
 * host's repository at the server's root (`root /backups/$remote_user`), so hosts use
 * `rest:https://host1:PW@backup/`. With `--listen-root /{user}` the same URL reaches
 * `<path>/host1/` on Ratchet's append-only listener, the admin listener serves `/host1/` by path
 * for pruning, and the recipe's users file (nginx reads `{SSHA}`, `{PLAIN}` and crypt hashes)
 * works as it is, and so does its data folder (data objects directly in `data/`, which Ratchet
 * moves into the fan-out folders at start). Refusals are checked with single HTTP requests
 * (restic retries a 403).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, rename, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { basic, raw } from '../helpers/http.ts';
import { startRatchetServer } from '../helpers/ratchet-process.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

const passwords = { host1: 'host1Secret7f3a', host2: 'host2Secret51bd', admin: 'adminSecret0e8c' } as const;
type User = keyof typeof passwords;

/** salted SHA-1 as slappasswd writes it: base64(SHA-1(password + salt) + salt). */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** The recipe's users file: one user per scheme nginx reads and Apache's htpasswd does not write. */
async function writeRecipeUsers(file: string): Promise<void> {
  const md5Crypt = execFileSync('openssl', ['passwd', '-1', passwords.host2], { encoding: 'utf8' }).trim();
  const lines = [`host1:${ssha(passwords.host1)}`, `host2:${md5Crypt}`, `admin:{PLAIN}${passwords.admin}`];
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

describe('restic e2e, a host of the nginx recipe with its root URL', { timeout: 300_000 }, () => {
  const env = resticEnvironment({ name: 'nginx-recipe', password: 'key', tree: smallTree });

  it('backs up unchanged, into its own folder, and the admin prunes it by path', step, async (t) => {
    const htpasswd = path.join(env.dir, 'htpasswd');
    await writeRecipeUsers(htpasswd);
    // host1's repository as the recipe left it: WebDAV stored /data/<id> as data/<id>, without
    // the fan-out folders (made here with restic's local backend, then flattened).
    const recipeRepo = inTest(env.local('host1', 'cache-recipe'), t);
    await recipeRepo.ok(['init']);
    await recipeRepo.ok(['backup', '.'], { cwd: env.source });
    const dataDir = path.join(env.dataDir, 'host1', 'data');
    for (const folder of await readdir(dataDir)) {
      for (const name of await readdir(path.join(dataDir, folder))) {
        await rename(path.join(dataDir, folder, name), path.join(dataDir, name));
      }
      await rmdir(path.join(dataDir, folder));
    }
    const flatPacks = (await readdir(dataDir)).length;
    assert.ok(flatPacks > 0);
    const server = await env.useServer(
      startRatchetServer(
        [
          ...['--path', env.dataDir, '--htpasswd-file', htpasswd, '--private-repos', '--append-only'],
          ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--listen-root', '/{user}'],
        ],
        2,
      ),
    );
    const [publicUrl = '', adminUrl = ''] = server.listeners.map((listener) => listener.url);
    const restic = (user: User, listener: string, repoPath: string) => {
      const url = new URL(repoPath, listener);
      url.username = user;
      url.password = passwords[user];
      return inTest(env.runner(`rest:${url.href}`, `cache-${user}-${repoPath.length}`), t);
    };
    const status = async (user: User, listener: string, method: string, urlPath: string) =>
      (await raw(listener, method, urlPath, { headers: { Authorization: basic(user, passwords[user]) } }))
        .status;

    // Both hosts use the root URL, as with the recipe; each lands in its own folder. host1's
    // packs were moved into the fan-out folders at start: its old snapshot reads back whole.
    const host1 = restic('host1', publicUrl, '/');
    assert.equal((await host1.snapshots()).length, 1);
    await host1.ok(['check', '--read-data']);
    await env.modifySource(host1);
    await host1.ok(['backup', '.'], { cwd: env.source });
    const host2 = restic('host2', publicUrl, '/');
    await host2.ok(['init']);
    await host2.ok(['backup', '.'], { cwd: env.source });
    assert.ok(existsSync(path.join(env.dataDir, 'host1', 'config')));
    assert.ok(existsSync(path.join(env.dataDir, 'host2', 'config')));
    assert.equal(existsSync(path.join(env.dataDir, 'config')), false, 'nothing at the data root');
    assert.equal((await host2.snapshots()).length, 1, "host2 sees only its own repository's snapshots");

    // On the root listener a host names nothing outside its folder, and deletes nothing there.
    const [snapshot = ''] = await readdir(path.join(env.dataDir, 'host1', 'snapshots'));
    assert.equal(
      await status('host1', publicUrl, 'GET', '/host2/config'),
      404,
      '/host1/host2/ is no repository',
    );
    assert.equal(await status('host1', publicUrl, 'GET', '/config'), 200);
    assert.equal(await status('host1', publicUrl, 'DELETE', `/snapshots/${snapshot}`), 403);
    assert.equal(await status('host1', publicUrl, 'GET', '/../host2/config'), 404);

    // The admin listener serves repositories by path: the admin prunes host1's.
    const admin = restic('admin', adminUrl, '/host1/');
    await admin.ok(['forget', '--keep-last', '1', '--prune']);
    assert.equal((await admin.snapshots()).length, 1);
    await host1.ok(['backup', '.'], { cwd: env.source });
    assert.equal((await host1.snapshots()).length, 2);
    assert.equal((await host2.snapshots()).length, 1);
  });
});
