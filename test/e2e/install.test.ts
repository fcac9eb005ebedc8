/**
 * docs/install.md, followed by a test without systemd as PID 1: pack the project, unpack the
 * tarball into a fresh folder and install its locked dependencies without development ones
 * (offline, from npm's cache that `npm ci` filled), link the command, check the shipped unit with the real `systemd-analyze verify`, then run the
 * unit's own command line with the shipped example configuration (TLS turned on as the guide
 * says, with a test CA) under the real
 * `systemd-socket-activate` (as ratchet.socket would pass the hosts' port), add users with the
 * installed command, back up as a host, prune as the admin on the admin listener, and read
 * metrics as the `metrics` user.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import https from 'node:https';
import { makeCa, makeLeaf } from '../helpers/certificates.ts';
import { basic } from '../helpers/http.ts';
import { projectRoot } from '../helpers/ratchet-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

const run = promisify(execFile);
const passwords = {
  host1: 'host1Secret7f3a',
  admin: 'adminSecret0e8c',
  metrics: 'metricsSecret4c1d',
} as const;

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** One HTTPS request trusting the test CA: status and body. */
function httpsRequest(
  url: string,
  method: string,
  ca: Buffer,
  authorization: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method, ca, headers: { Authorization: authorization }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The value of `Key=` in a unit file (the first one). */
function unitValue(unit: string, key: string): string {
  const line = unit.split('\n').find((l) => l.startsWith(`${key}=`));
  assert.ok(line !== undefined, `${key}= in the unit`);
  return line.slice(key.length + 1);
}

describe('install: from a packed tarball to a running service', { timeout: 300_000 }, () => {
  const env = resticEnvironment({ name: 'install', password: 'key', tree: smallTree });

  it('installs without development dependencies and serves the shipped scenario', step, async (t) => {
    // Pack what a release is (dist/ is built by the test runner; prepack would build it too).
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', env.dir], { cwd: projectRoot });
    const [tarball = ''] = (await readdir(env.dir)).filter((name) => name.endsWith('.tgz'));
    // As docs/install.md: unpack into its own folder, install the locked production
    // dependencies, link the command onto the PATH.
    const installed = path.join(env.dir, 'opt', 'ratchet');
    await mkdir(installed, { recursive: true });
    await run('tar', ['xzf', path.join(env.dir, tarball), '-C', installed, '--strip-components', '1']);
    await run('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund'], { cwd: installed });
    const command = path.join(env.dir, 'bin', 'ratchet');
    await mkdir(path.dirname(command));
    await symlink(path.join(installed, 'bin', 'ratchet'), command);
    assert.ok(existsSync(command), 'the ratchet command is installed');
    assert.equal(
      existsSync(path.join(installed, 'node_modules', 'typescript')),
      false,
      'no dev dependencies',
    );
    assert.equal(existsSync(path.join(installed, 'src')), false, 'no sources: nothing to build');
    assert.match((await run(command, ['--version'])).stdout, /^\d+\.\d+\.\d+/);

    // The shipped unit, pointed at this prefix, passes systemd's own check.
    const unitDir = path.join(env.dir, 'units');
    await mkdir(unitDir);
    const shippedUnit = await readFile(path.join(installed, 'contrib', 'systemd', 'ratchet.service'), 'utf8');
    const unit = shippedUnit.replace('/usr/local/bin/ratchet', command);
    await writeFile(path.join(unitDir, 'ratchet.service'), unit);
    await writeFile(
      path.join(unitDir, 'ratchet.socket'),
      await readFile(path.join(installed, 'contrib', 'systemd', 'ratchet.socket'), 'utf8'),
    );
    await run('systemd-analyze', [
      'verify',
      path.join(unitDir, 'ratchet.service'),
      path.join(unitDir, 'ratchet.socket'),
    ]);

    // The shipped configuration with this test's folder and ports.
    const [hostsPort, adminPort] = [await freePort(), await freePort()];
    const config = (await readFile(path.join(installed, 'contrib', 'ratchet.yaml'), 'utf8'))
      .replace('path: /var/lib/ratchet', `path: ${env.dataDir}`)
      .replace('address: 0.0.0.0:8000', `address: 127.0.0.1:${hostsPort}`)
      .replace('address: 127.0.0.1:8001', `address: 127.0.0.1:${adminPort}`);
    // TLS as docs/install.md step 7: the example's lines uncommented, with a test CA's certificate.
    const ca = await makeCa(env.dir, 'ca');
    const leaf = await makeLeaf(env.dir, 'server', 'localhost', ca, 'server');
    const withTls = config
      .replace('# tls: true', 'tls: true')
      .replace('# tls-cert: /etc/ratchet/tls/fullchain.pem', `tls-cert: ${leaf.cert}`)
      .replace('# tls-key: /etc/ratchet/tls/privkey.pem', `tls-key: ${leaf.key}`);
    assert.match(withTls, /^tls-key: /m, 'the example has the TLS lines to uncomment');
    const configFile = path.join(env.dir, 'ratchet.yaml');
    await writeFile(configFile, withTls);
    for (const [user, password] of Object.entries(passwords)) {
      await new Promise<void>((resolve, reject) => {
        const child = execFile(command, ['user', 'add', user, '--path', env.dataDir], (err) => {
          if (err) reject(new Error(`ratchet user add ${user} failed`, { cause: err }));
          else resolve();
        });
        child.stdin?.end(`${password}\n`);
      });
    }

    // The unit's command line, with the socket ratchet.socket would pass (ListenStream).
    const [, ...args] = unitValue(unit, 'ExecStart').split(' ');
    const configArg = args.indexOf('--config');
    args[configArg + 1] = configFile;
    const [envKey = '', envValue = ''] = unitValue(unit, 'Environment').split('=');
    const activator: ChildProcess = spawn(
      'systemd-socket-activate',
      ['-l', `127.0.0.1:${hostsPort}`, command, ...args],
      { env: { ...process.env, [envKey]: envValue }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    activator.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    activator.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(activator, 'exit');
    try {
      await waitFor(() => output.includes(`Listening on 127.0.0.1:${hostsPort}`), `the socket: ${output}`);
      const hostsUrl = `https://127.0.0.1:${hostsPort}`;
      const adminUrl = `https://127.0.0.1:${adminPort}`;
      const restic = (user: 'host1' | 'admin', base: string) => {
        const url = new URL('/host1/', base);
        url.username = user;
        url.password = passwords[user];
        return inTest(env.runner(`rest:${url.href}`, `cache-${user}`), t);
      };
      const host1 = restic('host1', hostsUrl);
      const trust = ['--cacert', ca.cert];
      await host1.ok([...trust, 'init']);
      await host1.ok([...trust, 'backup', '.'], { cwd: env.source });
      await env.modifySource(host1);
      await host1.ok([...trust, 'backup', '.'], { cwd: env.source });
      assert.match(output, new RegExp(`on https://127\\.0\\.0\\.1:${hostsPort} \\(at most append-only\\)`));
      assert.match(output, new RegExp(`on https://127\\.0\\.0\\.1:${adminPort} \\(at most admin\\)`));
      const caPem = await readFile(ca.cert);
      const refused = await httpsRequest(
        `${hostsUrl}/host1/config`,
        'DELETE',
        caPem,
        basic('host1', passwords.host1),
      );
      assert.equal(refused.status, 403);
      const admin = restic('admin', adminUrl);
      await admin.ok([...trust, 'forget', '--keep-last', '1', '--prune']);
      assert.equal((await admin.json<unknown[]>([...trust, 'snapshots'])).length, 1);
      const metrics = await httpsRequest(
        `${adminUrl}/metrics`,
        'GET',
        caPem,
        basic('metrics', passwords.metrics),
      );
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /rest_server_blob_write_total\{[^}]*repo="host1"/);
    } finally {
      activator.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, `clean exit on SIGTERM: ${output}`);
    }
  });
});
