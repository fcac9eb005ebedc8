/** The `ratchet` command as an operator runs it: flags, exit codes, sockets, shutdown, access log. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { blob, raw } from '../helpers/http.ts';
import { projectRoot, runRatchet, startRatchet, withTempDir } from '../helpers/ratchet-process.ts';

describe('ratchet command line', () => {
  it('exits 2 with a clear message for unknown flags and bad values', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown option '--bogus'/],
      [['--listen', 'nowhere'], /invalid listen address/],
      [['--listen', '127.0.0.1:99999'], /invalid listen address/],
      [['--max-repo-depth', 'zero'], /--max-repo-depth must be a whole number/],
      [['--sync-fs-reads', 'maybe'], /--sync-fs-reads must be auto, on or off/],
      [['--path'], /argument missing/],
      [['extra-argument'], /too many arguments/],
    ];
    for (const [args, message] of cases) {
      const result = await runRatchet(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
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
    for (const flag of [
      '--path',
      '--listen',
      '--append-only',
      '--no-auth',
      '--no-verify-upload',
      '--log',
      '--debug',
    ]) {
      assert.ok(help.stdout.includes(flag), flag);
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
        const auth = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
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

  it('serves on a unix socket and removes the socket file on SIGTERM', async () => {
    await withTempDir(async (dir) => {
      const socketPath = path.join(dir, 'ratchet.sock');
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          '--no-auth',
          '--path',
          path.join(dir, 'data'),
          '--listen',
          `unix:${socketPath}`,
        ],
        { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const [firstLine] = (await once(child.stdout, 'data')) as [Buffer];
      assert.match(firstLine.toString(), /on unix:/);
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const req = request({ socketPath, method: 'POST', path: '/sock/?create=true' }, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', reject);
        req.end();
      });
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
      await new Promise((resolve) => setTimeout(resolve, 200));
      const exited = server.stop();
      await new Promise((resolve) => setTimeout(resolve, 300));
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
