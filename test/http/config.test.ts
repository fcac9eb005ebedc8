/** The configuration file as an operator uses it: validation messages and reload on SIGHUP. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { parseConfigFile } from '../../src/config/config-file.ts';
import { basic, raw, v2 } from '../helpers/http.ts';
import {
  runRatchet,
  spawnRatchet,
  startRatchet,
  startRatchetServer,
  withTempDir,
} from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';

describe('configuration file', () => {
  it('names every invalid key with its problem', () => {
    assert.throws(
      () =>
        parseConfigFile(
          'listen: [nowhere]\nappend-only: "yes"\nsync-fs-reads: sometimes\naccess:\n  - users: [a]\n    repos: [relative/**]\n    role: owner\nbogus: 1\n',
          'ratchet.yaml',
        ),
      (err: Error) =>
        /ratchet\.yaml: invalid configuration/.test(err.message) &&
        /listen\.0: expected host:port/.test(err.message) &&
        /append-only:/.test(err.message) &&
        /sync-fs-reads:/.test(err.message) &&
        /access\.0\.repos\.0: expected a repository pattern/.test(err.message) &&
        /access\.0\.role:/.test(err.message) &&
        /bogus/.test(err.message),
    );
    assert.throws(() => parseConfigFile('a: [', 'x.yaml'), /x\.yaml: not valid YAML/);
  });

  it('refuses to start with an invalid file, exit code 2, and says why', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'ratchet.yaml');
      for (const [text, message] of [
        ['max-repo-depth: 0\n', /max-repo-depth: /],
        ['max-size: 5constructor\n', /max-size: invalid size "5constructor"/],
        ['max-repos-per-user: 1000001\n', /max-repos-per-user: /],
        ['no-auth: "false"\n', /no-auth: /],
      ] as const) {
        await writeFile(file, text);
        // A file that passed would exit 1 at the unusable path rather than serve.
        const result = await runRatchet([
          '--config',
          file,
          '--path',
          '/dev/null/x',
          '--listen',
          '127.0.0.1:0',
        ]);
        assert.equal(result.code, 2, text);
        assert.match(result.stderr, message, text);
      }
      const missing = path.join(dir, 'missing.yaml');
      const result = await runRatchet(['--config', missing, '--listen', '127.0.0.1:0']);
      assert.equal(result.code, 2);
      assert.equal(
        result.stderr.trim(),
        `ratchet: cannot read the configuration file ${missing}: no such file`,
      );
    });
  });

  it("refuses --append-only, --listen and --admin-listen beside the file's listeners, and announces each ceiling", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'ratchet.yaml');
      const listeners =
        'listeners:\n  - address: 127.0.0.1:0\n    max-role: append-only\n' +
        '  - address: 127.0.0.1:0\n    max-role: admin\n';
      await writeFile(file, `no-auth: true\n${listeners}`);
      const base = ['--config', file, '--path', path.join(dir, 'data')];
      const cases: [string[], Record<string, string>, RegExp][] = [
        [['--append-only'], {}, /^ratchet: --append-only \(flag/m],
        [[], { RATCHET_APPEND_ONLY: 'true' }, /--append-only/],
        [['--listen', '127.0.0.1:0'], {}, /^ratchet: --listen \(flag/m],
        [[], { RATCHET_LISTEN: '127.0.0.1:0' }, /--listen/],
        [['--admin-listen', '127.0.0.1:0'], {}, /^ratchet: --admin-listen \(flag/m],
      ];
      for (const [args, env, message] of cases) {
        const { child, stderr } = spawnRatchet([...base, ...args], { ...process.env, ...env });
        child.stdin.end();
        // A server that accepted the combination would serve forever: stop it, and fail below.
        const serving = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const [code] = (await once(child, 'close')) as [number | null];
        clearTimeout(serving);
        const what = `${args.join(' ')} ${JSON.stringify(env)}`;
        assert.equal(code, 2, what);
        assert.match(stderr(), message, what);
        assert.match(stderr(), /configuration file's listeners/, what);
      }
      // The same in the file itself: append-only: true beside listeners is refused too.
      await writeFile(file, `no-auth: true\nappend-only: true\n${listeners}`);
      const inFile = await runRatchet(base);
      assert.equal(inFile.code, 2);
      assert.match(inFile.stderr, /--append-only \(flag, RATCHET_\* variable or key\)/);
      // append-only set to false says nothing against the listeners; each ceiling is announced.
      await writeFile(file, `no-auth: true\nappend-only: false\n${listeners}`);
      const server = await startRatchetServer(base, 2);
      try {
        assert.deepEqual(
          server.listeners.map((listener) => listener.maxRole),
          ['append-only', 'admin'],
        );
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  });

  it('applies new grants on SIGHUP, and keeps the old ones when the new file is invalid', async () => {
    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const file = path.join(dir, 'ratchet.yaml');
      const htpasswd = path.join(dir, 'htpasswd');
      await writeFile(
        htpasswd,
        `alice:${await hashPassword('pw', 4)}\nadmin:${await hashPassword('root', 4)}\n`,
      );
      const grants = (extra: string): string =>
        `htpasswd-file: ${htpasswd}\naccess:\n  - users: ['*']\n    repos: ['/{user}/**']\n    role: append-only\n` +
        `  - users: [admin]\n    repos: ['/**']\n    role: admin\n${extra}`;
      await writeFile(file, grants(''));
      const server = await startRatchet(data, ['--config', file]);
      try {
        const alice = { Authorization: basic('alice', 'pw'), Accept: v2 };
        assert.equal(
          (
            await raw(server.url, 'POST', '/shared/?create=true', {
              headers: { Authorization: basic('admin', 'root') },
            })
          ).status,
          200,
        );
        assert.equal((await raw(server.url, 'GET', '/shared/keys/', { headers: alice })).status, 403);

        await writeFile(file, grants(`  - users: [alice]\n    repos: ['/shared/']\n    role: read-only\n`));
        server.child.kill('SIGHUP');
        await waitFor(
          async () => (await raw(server.url, 'GET', '/shared/keys/', { headers: alice })).status === 200,
          'the new grants after SIGHUP',
        );

        await writeFile(file, 'access: nonsense\n');
        server.child.kill('SIGHUP');
        await waitFor(() => /reload failed/.test(server.stderr()), 'the failed reload to be logged');
        assert.equal(
          (await raw(server.url, 'GET', '/shared/keys/', { headers: alice })).status,
          200,
          'old grants kept',
        );
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  });
});
