/** The `ratchet` command as an operator runs it: flags, exit codes, sockets, shutdown, access log. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, realpath, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { basic, blob, raw } from '../helpers/http.ts';
import {
  projectRoot,
  ratchetCommand,
  runRatchet,
  spawnRatchet,
  startRatchet,
  startRatchetServer,
  withTempDir,
} from '../helpers/ratchet-process.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { envName, flagName, optionNames } from '../../src/config/options.ts';

/** Options with which a server that accepted its settings exits at once with code 1, instead of serving. */
const unservable = ['--path', '/dev/null/nowhere', '--listen', '127.0.0.1:0'];

/** Runs `start` with the variables set in this process, which the ratchet it spawns inherits. */
async function withEnv<T>(env: Record<string, string>, start: () => Promise<T>): Promise<T> {
  const saved = Object.keys(env).map((key) => [key, process.env[key]] as const);
  Object.assign(process.env, env);
  try {
    return await start();
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

describe('ratchet command line', () => {
  it('exits 2 with a clear message for unknown flags and bad values', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown option '--bogus'/],
      [['--listen', 'nowhere'], /invalid listen address/],
      [['--listen', '127.0.0.1:99999'], /invalid listen address/],
      [['--max-repo-depth', 'zero'], /--max-repo-depth must be a whole number/],
      [['--sync-fs-reads', 'maybe'], /--sync-fs-reads must be auto, on or off/],
      [['--max-size', '5constructor'], /--max-size: invalid size "5constructor"/],
      [['--max-repos-per-user', '0'], /--max-repos-per-user must be a whole number from 1 to 1000000/],
      [['--path'], /argument missing/],
      [['extra-argument'], /too many arguments/],
      [['--storage', 'ftp://x'], /--storage ftp:\/\/x: expected file:DIR or s3:\/\/BUCKET\[\/PREFIX\]/],
      [['--storage', 's3://No_Bucket'], /"No_Bucket" is not a valid bucket name/],
      [['--storage', 's3://bucket/a/../b'], /the prefix may not contain "\.\."/],
      [['--storage', 'file:'], /--storage file: needs a folder/],
      [['--storage', 'file:/srv/a', '--path', '/srv/b'], /name different folders: give one/],
      [['--s3-endpoint', 'http://127.0.0.1:1'], /--s3-endpoint and --s3-region need --storage s3:/],
      [['--storage', 's3://bucket', '--s3-endpoint', 'rgw:7480'], /expected http:\/\/HOST\[:PORT\]/],
      [['--state', 'http://127.0.0.1:6379'], /--state: only redis:\/\/ URLs are supported/],
      [['--state', 'redis://127.0.0.1/x'], /--state: database "x" is not a number/],
    ];
    for (const [args, message] of cases) {
      const result = await runRatchet([...unservable, ...args]);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  it('serves the folder --storage file:DIR names, as --path would', async () => {
    await withTempDir(async (dir) => {
      const server = await startRatchetServer([
        '--storage',
        `file:${dir}`,
        '--listen',
        '127.0.0.1:0',
        '--no-auth',
      ]);
      try {
        assert.match(server.stdout(), new RegExp(`serving ${dir} on`));
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        assert.ok(existsSync(path.join(dir, 'r', 'config')) || existsSync(path.join(dir, 'r', 'data')));
      } finally {
        assert.equal(await server.stop(), 0, server.stderr());
      }
    });
  });

  it('exits 2 naming the variable for a bad RATCHET_* value', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ RATCHET_MAX_SIZE: '5constructor' }, /RATCHET_MAX_SIZE: invalid size "5constructor"/],
      [{ RATCHET_NO_AUTH: 'maybe' }, /RATCHET_NO_AUTH must be true or false/],
      [{ RATCHET_APPEND_ONLY: 'enabled' }, /RATCHET_APPEND_ONLY must be true or false/],
    ];
    for (const [env, message] of cases) {
      const result = await withEnv(env, () => runRatchet(unservable));
      assert.equal(result.code, 2, JSON.stringify(env));
      assert.match(result.stderr, message, JSON.stringify(env));
    }
  });

  it('keeps authentication on with RATCHET_NO_AUTH=false, and off with true', async () => {
    await withTempDir(async (dir) => {
      for (const [value, status] of [
        ['false', 401],
        ['true', 200],
      ] as const) {
        const server = await withEnv({ RATCHET_NO_AUTH: value }, () => startRatchet(path.join(dir, value)));
        try {
          assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, status, value);
        } finally {
          assert.equal(await server.stop(), 0);
        }
      }
    });
  });

  it('warns at start naming every listener --no-auth opens, and refuses --no-auth with --private-repos', async () => {
    await withTempDir(async (dir) => {
      const args = ['--no-auth', '--path', dir, '--append-only', '--listen', '127.0.0.1:0'];
      const server = await startRatchetServer([...args, '--admin-listen', '127.0.0.1:0'], 2);
      try {
        assert.deepEqual(
          server.listeners.map((listener) => listener.maxRole),
          ['append-only', 'admin'],
        );
        const warningLine = (): string | undefined =>
          server
            .stderr()
            .split('\n')
            .find((line) => line.includes('authentication disabled'));
        await waitFor(() => warningLine() !== undefined, 'the --no-auth warning');
        const warning = warningLine() ?? '';
        const logged = JSON.parse(warning) as { level: number; listeners: string[] };
        assert.equal(logged.level, 40, 'logged as a warning');
        assert.deepEqual(logged.listeners, [
          `${server.listeners[0]?.url} (at most append-only)`,
          `${server.listeners[1]?.url} (at most admin)`,
        ]);
      } finally {
        assert.equal(await server.stop(), 0);
      }
      const quiet = await startRatchet(path.join(dir, 'auth'));
      assert.equal(await quiet.stop(), 0);
      assert.doesNotMatch(quiet.stderr(), /authentication disabled/);
    });
    for (const env of [{}, { RATCHET_PRIVATE_REPOS: 'true' }] as Record<string, string>[]) {
      const extra = 'RATCHET_PRIVATE_REPOS' in env ? [] : ['--private-repos'];
      const result = await withEnv(env, () => runRatchet([...unservable, '--no-auth', ...extra]));
      assert.equal(result.code, 2, JSON.stringify(env));
      assert.match(result.stderr, /--no-auth and --private-repos contradict each other/);
    }
  });

  it('prints its version and help', async () => {
    const pkg = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as {
      version: string;
    };
    const version = await runRatchet(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), pkg.version);
    const help = await runRatchet(['--help']);
    assert.equal(help.code, 0);
    // Each option's entry runs from its flag at the start of a line to the next such line.
    const entries = new Map(
      help.stdout
        .split(/\n(?= {2}-)/)
        .map((entry) => [/^\s*(--[a-z0-9-]+)/.exec(entry)?.[1], entry.replace(/\s+/g, ' ')] as const),
    );
    assert.ok(optionNames.length > 20);
    for (const name of optionNames) {
      const entry = entries.get(flagName(name));
      assert.ok(entry !== undefined, `--help lists ${flagName(name)}`);
      assert.ok(entry.includes(`env: ${envName(name)}`), `--help names ${envName(name)}: ${entry}`);
    }
  });

  it('creates an admin with a random password on first start and requires credentials', async () => {
    await withTempDir(async (dir) => {
      const server = await startRatchet(dir);
      try {
        const password = /^ {4}(\S+)$/m.exec(server.stdout())?.[1];
        assert.ok(password !== undefined && password.length >= 16, server.stdout());
        const htpasswd = await readFile(path.join(dir, '.htpasswd'), 'utf8');
        assert.match(htpasswd, /^admin:\$2[aby]\$/);
        assert.ok(!htpasswd.includes(password), 'only the hash is stored');
        assert.ok(!server.stderr().includes(password), 'the password is not in the log');
        const anonymous = await raw(server.url, 'POST', '/r/?create=true');
        assert.equal(anonymous.status, 401);
        assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="restic"');
        const auth = basic('admin', password);
        assert.equal(
          (await raw(server.url, 'POST', '/r/?create=true', { headers: { Authorization: auth } })).status,
          200,
        );
      } finally {
        await server.stop();
      }
      // A second start finds the user and prints no password.
      const again = await startRatchet(dir);
      await again.stop();
      assert.doesNotMatch(again.stdout(), /password/);
    });
  });

  it('gives --group-accessible-repos its group modes under a umask of 077', async () => {
    await withTempDir(async (dir) => {
      const data = blob(10);
      const script = `umask 077; exec "$0" "$@"`;
      const child = spawn(
        'sh',
        [
          '-c',
          script,
          ratchetCommand(),
          '--path',
          dir,
          '--no-auth',
          '--listen',
          '127.0.0.1:0',
          '--group-accessible-repos',
        ],
        { cwd: projectRoot },
      );
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      try {
        await waitFor(() => /serving .* on (http:\/\/\S+)/.test(stdout), 'the server to listen');
        const url = /serving .* on (http:\/\/\S+)/.exec(stdout)?.[1] ?? '';
        assert.equal((await raw(url, 'POST', '/g/?create=true')).status, 200);
        assert.equal((await raw(url, 'POST', `/g/keys/${data.name}`, { body: data.data })).status, 200);
        assert.equal((await stat(path.join(dir, 'g'))).mode & 0o777, 0o770);
        assert.equal((await stat(path.join(dir, 'g', 'keys', data.name))).mode & 0o777, 0o660);
      } finally {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    });
  });

  it('npm start runs the server as the process npm made, so a SIGTERM to it stops the server', async () => {
    await withTempDir(async (dir) => {
      const npm = spawn(
        'npm',
        ['start', '--silent', '--', '--path', dir, '--no-auth', '--listen', '127.0.0.1:0'],
        {
          cwd: projectRoot,
        },
      );
      let stdout = '';
      npm.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      const npmExited = once(npm, 'exit');
      try {
        await waitFor(() => /serving .* on http:\/\/\S+/.test(stdout), 'the server to listen', 30_000);
        const url = /serving .* on (http:\/\/\S+)/.exec(stdout)?.[1] ?? '';
        // The process npm made (its script's shell) is the server itself: `exec`, no wrapper.
        const children = (await readFile(`/proc/${npm.pid}/task/${npm.pid}/children`, 'utf8'))
          .trim()
          .split(/\s+/);
        assert.equal(children.length, 1, `npm has one child: ${children.join(' ')}`);
        const server = Number(children[0]);
        assert.equal(
          await readlink(`/proc/${server}/exe`),
          await realpath(process.execPath),
          'node, not a shell',
        );
        assert.match(await readFile(`/proc/${server}/cmdline`, 'utf8'), /dist\/cli\/main\.js/);
        process.kill(server, 'SIGTERM');
        await npmExited;
        await assert.rejects(raw(url, 'GET', '/'), /ECONNREFUSED/);
        assert.equal(existsSync(`/proc/${server}`), false, 'no orphaned server');
      } finally {
        npm.kill('SIGKILL');
      }
    });
  });

  it('creates no admin when the port is taken: the password is not lost in the error', async () => {
    await withTempDir(async (dir) => {
      const taken = createServer();
      taken.listen(0, '127.0.0.1');
      await once(taken, 'listening');
      const address = taken.address();
      assert.ok(address !== null && typeof address === 'object');
      try {
        const result = await runRatchet(['--path', dir, '--listen', `127.0.0.1:${address.port}`]);
        assert.equal(result.code, 1);
        assert.match(result.stderr, /EADDRINUSE/);
        assert.doesNotMatch(result.stdout, /password/);
        assert.equal(existsSync(path.join(dir, '.htpasswd')), false, 'no user made');
      } finally {
        taken.close();
      }
      // Once the port is free, the first start that serves creates the admin and shows its password.
      const server = await startRatchet(dir);
      await server.stop();
      assert.match(server.stdout(), /user "admin" was created with the password/);
    });
  });

  it('refuses a users file whose lines yield no user, naming the file and lines, and never writes into it', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'users.htpasswd');
      // A cost above the supported maximum, and a hash of no known scheme.
      const text = `# the team\nadmin:$2y$18$${'a'.repeat(53)}\n\nbob:plaintext\n`;
      await writeFile(file, text, { mode: 0o600 });
      const result = await runRatchet(['--path', dir, '--htpasswd-file', file, '--listen', '127.0.0.1:0']);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(`${file.replace(/[.]/g, '\\.')} has user lines but no usable user`),
      );
      assert.match(result.stderr, /line 2: user "admin": bcrypt cost 18 is above the supported maximum/);
      assert.match(result.stderr, /line 4: user "bob": unsupported hash scheme/);
      assert.doesNotMatch(result.stdout, /password/);
      assert.equal(await readFile(file, 'utf8'), text, 'the file is untouched');
      assert.deepEqual(await readdir(dir), ['users.htpasswd'], 'no temporary file left either');
    });
  });

  it('names the admin user with --admin-user: the first user created, and a valid name only', async () => {
    await withTempDir(async (dir) => {
      const server = await startRatchet(dir, ['--admin-user', 'root']);
      assert.equal(await server.stop(), 0);
      assert.match(server.stdout(), /user "root" was created/);
      assert.match(await readFile(path.join(dir, '.htpasswd'), 'utf8'), /^root:\$2y\$/);
    });
    const result = await runRatchet([...unservable, '--admin-user', '.hidden']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--admin-user: the user name starts with a dot/);
  });

  it('serves on a unix socket and removes the socket file on SIGTERM', async () => {
    await withTempDir(async (dir) => {
      const socketPath = path.join(dir, 'ratchet.sock');
      const { child } = spawnRatchet([
        '--no-auth',
        '--path',
        path.join(dir, 'data'),
        '--listen',
        `unix:${socketPath}`,
      ]);
      const [firstLine] = (await once(child.stdout, 'data')) as [Buffer];
      assert.match(firstLine.toString(), /on unix:/);
      const { status } = await raw('http://unix', 'POST', '/sock/?create=true', { socketPath });
      assert.equal(status, 200);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number];
      assert.equal(code, 0);
      assert.equal(existsSync(socketPath), false);
    });
  });

  it('lets an in-flight upload finish after SIGTERM, then exits 0', async () => {
    await withTempDir(async (dir) => {
      const server = await startRatchet(dir, ['--no-auth']);
      assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
      const { data, name } = blob(2 << 20);
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      await once(socket, 'connect');
      let reply = '';
      socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
      socket.write(`POST /r/data/${name} HTTP/1.1\r\nHost: x\r\nContent-Length: ${data.length}\r\n\r\n`);
      socket.write(data.subarray(0, 1 << 20));
      await sleep(200);
      const exited = server.stop();
      await sleep(300);
      assert.equal(server.child.exitCode, null, 'the server waits for the upload');
      socket.write(data.subarray(1 << 20));
      assert.equal(await exited, 0);
      assert.match(reply, /^HTTP\/1\.1 200/);
      socket.destroy();
      const stored = await readFile(path.join(dir, 'r', 'data', name.slice(0, 2), name));
      assert.ok(stored.equals(data));
    });
  });

  it('writes an Apache combined access log with --log', async () => {
    await withTempDir(async (dir) => {
      const logFile = path.join(dir, 'access.log');
      const server = await startRatchet(path.join(dir, 'data'), ['--no-auth', '--log', logFile]);
      await raw(server.url, 'POST', '/logged/?create=true', {
        headers: { 'User-Agent': 'restic/0.14.0', Authorization: 'Basic c2VjcmV0OnB3' },
      });
      await raw(server.url, 'GET', '/logged/config');
      assert.equal(await server.stop(), 0);
      const lines = (await readFile(logFile, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(
        lines[0] ?? '',
        /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "POST \/logged\/\?create=true HTTP\/1\.1" 200 - "-" "restic\/0\.14\.0"$/,
      );
      assert.match(lines[1] ?? '', /"GET \/logged\/config HTTP\/1\.1" 404 \d+ /);
      assert.ok(!lines.join('\n').includes('c2VjcmV0OnB3'), 'credentials never reach the log');
    });
  });
});
