/**
 * Authenticated requests with and without --state: one user, a bcrypt hash, HEADs of a missing
 * repository's config (the login is the work) at 1 and 8 connections, after a first request
 * that fills the verified-credential cache. Builds can be compared with ENTRY.
 *
 *   node --import tsx bench/auth-state.ts [redis://127.0.0.1:6379]
 *   ENTRY=/tmp/other/dist/cli/main.js node --import tsx bench/auth-state.ts redis://...
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './peers.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ratchet-auth-bench-'));
const line = execFileSync('htpasswd', ['-nbB', '-C', '5', 'alice', 'secret']).toString().trim();
writeFileSync(path.join(dir, 'htpasswd'), `${line}\n`);
const state = process.argv[2];
const port = await freePort();
const entry = process.env['ENTRY'] ?? path.resolve('dist/cli/main.js');
const args = [entry, '--path', path.join(dir, 'data'), '--htpasswd-file', path.join(dir, 'htpasswd')];
args.push('--listen', `127.0.0.1:${port}`, ...(state === undefined ? [] : ['--state', state]));
const child = spawn(process.execPath, args, { stdio: 'ignore' });
await new Promise((resolve) => setTimeout(resolve, 2500));
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const headers = { Authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` };
const one = (): Promise<number | undefined> =>
  new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/alice/config', method: 'HEAD', agent, headers },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end();
  });
try {
  if ((await one()) !== 404) throw new Error('the first request was not authenticated');
  for (const connections of [1, 8]) {
    const total = 4000;
    let sent = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (sent < total) {
          sent++;
          await one();
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(
      `${state === undefined ? 'in process' : 'with --state'}, c=${connections}: ${Math.round(total / seconds)} req/s`,
    );
  }
} finally {
  agent.destroy();
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
