/**
 * The audit trail through a real server in the append-only scenario: one JSON line per change
 * and per refused change with every field asserted (creation, upload, refused delete, refused
 * overwrite, quota refusal, the admin's delete, a `ratchet user` change), refused changes
 * counted and logged at warn level, and the file reopened on SIGHUP after a logrotate-style move.
 */
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { operatorLogin } from '../../src/cli/user-command.ts';
import { basic, blob, raw, upload } from '../helpers/http.ts';
import { runRatchet, startRatchetServer, withTempDir } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';

const passwords = { host1: 'host1Secret7f3a', admin: 'adminSecret0e8c' } as const;

interface Line {
  readonly [key: string]: unknown;
}

async function lines(file: string): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Line);
}

/** The line without its time (asserted to be ISO 8601 separately). */
function withoutTime(line: Line | undefined): Line {
  assert.ok(line !== undefined, 'a line');
  const { time, ...rest } = line;
  assert.match(String(time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return rest;
}

describe('audit trail', () => {
  it('never turns an answer into an error when a line cannot be written, and says so in the log', async () => {
    await withTempDir(async (dir) => {
      const server = await startRatchetServer(
        [
          '--path',
          path.join(dir, 'data'),
          '--no-auth',
          '--listen',
          '127.0.0.1:0',
          '--audit-log',
          '/dev/full',
        ],
        1,
      );
      try {
        assert.equal((await raw(server.url, 'POST', '/r/?create=true')).status, 200);
        const key = blob(40);
        assert.equal((await raw(server.url, 'POST', `/r/keys/${key.name}`, { body: key.data })).status, 200);
        assert.equal((await raw(server.url, 'DELETE', `/r/keys/${key.name}`)).status, 200);
        await waitFor(
          () => server.stderr().includes('the audit trail could not be written'),
          'the error line',
        );
      } finally {
        assert.equal(await server.stop(), 0, 'a clean shutdown, the trail closed without a flush error');
      }
    });
  });

  it('records every change and refused change with who, where, what and the outcome', async () => {
    await withTempDir(async (dir) => {
      const htpasswd = path.join(dir, 'htpasswd');
      const users = await Promise.all(
        Object.entries(passwords).map(async ([user, pw]) => `${user}:${await hashPassword(pw, 4)}`),
      );
      await writeFile(htpasswd, `${users.join('\n')}\n`, { mode: 0o600 });
      const audit = path.join(dir, 'audit.jsonl');
      const server = await startRatchetServer(
        [
          ...['--path', path.join(dir, 'data'), '--htpasswd-file', htpasswd, '--audit-log', audit],
          ...['--private-repos', '--append-only', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
          ...['--prometheus', '--max-size', '20KiB'],
        ],
        2,
      );
      try {
        const [hosts = '', admin = ''] = server.listeners.map((listener) => listener.url);
        const as = (user: keyof typeof passwords) => ({ Authorization: basic(user, passwords[user]) });
        const host = { headers: as('host1') };
        const common = { user: 'host1', client: '127.0.0.1', listener: hosts, repo: '/host1/' };

        assert.equal((await raw(hosts, 'POST', '/host1/?create=true', host)).status, 200);
        const config = blob(155);
        const configPut = await raw(hosts, 'POST', '/host1/config', { ...host, body: config.data });
        assert.equal(configPut.status, 200);
        const pack = blob(4000);
        const packPut = await raw(hosts, 'POST', `/host1/data/${pack.name}`, { ...host, body: pack.data });
        assert.equal(packPut.status, 200);
        assert.equal((await raw(hosts, 'DELETE', `/host1/data/${pack.name}`, host)).status, 403);
        const other = blob(100);
        assert.equal((await raw(hosts, 'POST', '/host1/config', { ...host, body: other.data })).status, 403);
        const big = blob(30_000);
        assert.equal(
          (await raw(hosts, 'POST', `/host1/data/${big.name}`, { ...host, body: big.data })).status,
          507,
        );
        const adminDelete = await raw(admin, 'DELETE', `/host1/data/${pack.name}`, { headers: as('admin') });
        assert.equal(adminDelete.status, 200);
        // Reads are not changes: no line.
        assert.equal((await raw(hosts, 'GET', '/host1/config', host)).status, 200);

        const got = (await lines(audit)).map(withoutTime);
        assert.deepEqual(got, [
          { action: 'create-repo', ...common, method: 'POST', status: 200 },
          { action: 'write', ...common, method: 'POST', type: 'config', size: 155, status: 200 },
          {
            action: 'write',
            ...common,
            method: 'POST',
            type: 'data',
            name: pack.name,
            size: 4000,
            status: 200,
          },
          {
            action: 'delete',
            ...common,
            method: 'DELETE',
            type: 'data',
            name: pack.name,
            status: 403,
            reason: 'append-only access: deleting is not allowed',
          },
          {
            action: 'write',
            ...common,
            method: 'POST',
            type: 'config',
            size: 100,
            status: 403,
            reason: 'an object with different content exists under this name',
          },
          {
            action: 'write',
            ...common,
            method: 'POST',
            type: 'data',
            name: big.name,
            size: 30_000,
            status: 507,
            reason: "an upload of 30000 bytes would exceed the server's storage limit",
          },
          {
            action: 'delete',
            user: 'admin',
            client: '127.0.0.1',
            listener: admin,
            repo: '/host1/',
            method: 'DELETE',
            type: 'data',
            name: pack.name,
            size: 4000,
            status: 200,
          },
        ]);

        // Refused changes: counted by reason, and the delete and overwrite logged at warn level.
        const metrics = (await raw(admin, 'GET', '/metrics', { headers: as('admin') })).body.toString();
        assert.match(
          metrics,
          /^ratchet_refused_changes_total\{repo="host1",user="host1",reason="forbidden"\} 1$/m,
        );
        assert.match(
          metrics,
          /^ratchet_refused_changes_total\{repo="host1",user="host1",reason="conflict"\} 1$/m,
        );
        assert.match(
          metrics,
          /^ratchet_refused_changes_total\{repo="host1",user="host1",reason="quota_exceeded"\} 1$/m,
        );
        const warnings = server
          .stderr()
          .split('\n')
          .filter((line) => line.includes('"level":40') && line.includes('refused '));
        assert.equal(warnings.length, 2, warnings.join('\n'));

        // logrotate moves the file, then SIGHUP: the next line goes into a new file.
        await rename(audit, `${audit}.1`);
        server.child.kill('SIGHUP');
        await waitFor(() => server.stderr().includes('reopening the audit trail'), 'the SIGHUP');
        const later = blob(50);
        assert.equal((await upload(hosts, '/host1/', 'keys', later.data)).status, 401);
        const keyPut = await raw(hosts, 'POST', `/host1/keys/${later.name}`, { ...host, body: later.data });
        assert.equal(keyPut.status, 200);
        await waitFor(async () => (await lines(audit)).length === 1, 'a line in the new file');
        assert.equal((await lines(`${audit}.1`)).length, 7, 'the moved file keeps its lines');
        assert.equal((await lines(audit))[0]?.name, later.name);
      } finally {
        await server.stop();
      }

      // A user change made with the command is in the same trail.
      const added = await runRatchet(
        ['user', 'add', 'host2', '--htpasswd-file', htpasswd, '--audit-log', audit],
        'host2Secret9a1e\n',
      );
      assert.equal(added.code, 0, added.stderr);
      const last = (await lines(audit)).at(-1);
      assert.deepEqual(withoutTime(last), {
        action: 'user-add',
        user: operatorLogin(),
        subject: 'host2',
        file: htpasswd,
        status: 0,
      });
    });
  });
});
