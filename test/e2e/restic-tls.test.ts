/**
 * End to end over HTTPS with the real restic client: `ratchet --tls` with a certificate from a
 * test CA (made by openssl), restic trusting it with --cacert and logging in with a client
 * certificate (--tls-client-cert) whose common name is the user — no password anywhere. init,
 * backup, check --read-data and a restore compared byte for byte; the access log shows HTTP/2.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeCa, makeLeaf } from '../helpers/certificates.ts';
import { makeTempDir, startRatchet } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { Restic } from './restic-helpers.ts';

const step = { timeout: 180_000 };

/** SHA-256 of every file below root, keyed by relative path. */
async function digests(root: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    result.set(
      path.relative(root, file),
      createHash('sha256')
        .update(await readFile(file))
        .digest('hex'),
    );
  }
  return result;
}

describe('restic e2e over HTTPS (HTTP/2, client certificate login)', { timeout: 600_000 }, () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let server: RatchetProcess;
  let restic: Restic;
  let source: string;
  let accessLog: string;
  let tlsArgs: string[];

  before(async () => {
    tmp = await makeTempDir('ratchet-e2e-tls-');
    const certs = path.join(tmp.dir, 'certs');
    const data = path.join(tmp.dir, 'data');
    const home = path.join(tmp.dir, 'home');
    source = path.join(tmp.dir, 'source');
    for (const dir of [certs, data, home, source]) await mkdir(dir, { recursive: true });

    const ca = await makeCa(certs, 'server-ca');
    const serverPair = await makeLeaf(certs, 'server', '127.0.0.1', ca, 'server');
    const clientCa = await makeCa(certs, 'client-ca');
    const alice = await makeLeaf(certs, 'alice', 'alice', clientCa, 'client');
    // restic wants the client certificate and its key in one file.
    const aliceBundle = path.join(certs, 'alice-bundle.pem');
    await writeFile(aliceBundle, Buffer.concat([await readFile(alice.cert), await readFile(alice.key)]), {
      mode: 0o600,
    });
    tlsArgs = ['--cacert', ca.cert, '--tls-client-cert', aliceBundle];

    // A few packs' worth of incompressible data and a folder of small files.
    for (let i = 0; i < 3; i++) await writeFile(path.join(source, `big-${i}.bin`), randomBytes(7 << 20));
    await mkdir(path.join(source, 'small'));
    for (let i = 0; i < 300; i++) {
      await writeFile(path.join(source, 'small', `f${i}.txt`), randomBytes(i * 37));
    }

    accessLog = path.join(tmp.dir, 'access.log');
    // Authentication stays on and repositories are private: only the certificate's common name
    // gets alice into /alice/.
    server = await startRatchet(data, [
      ...['--tls', '--tls-cert', serverPair.cert, '--tls-key', serverPair.key],
      ...['--tls-client-ca', clientCa.cert, '--private-repos', '--log', accessLog],
    ]);
    assert.match(server.url, /^https:/);
    restic = new Restic({
      repo: `rest:${server.url}/alice/laptop/`,
      password: 'tls e2e password',
      cacheDir: path.join(tmp.dir, 'cache'),
      home,
    });
  });

  after(async () => {
    const code = await server?.stop();
    await tmp?.cleanup();
    assert.equal(code, 0, 'the server exited cleanly');
  });

  it('init, backup and check --read-data over HTTPS', step, async (t) => {
    const run = restic.withSink((line) => t.diagnostic(line));
    await run.ok([...tlsArgs, 'init']);
    await run.ok([...tlsArgs, 'backup', '.', '--host', 'tls-host'], { cwd: source });
    await run.ok([...tlsArgs, 'check', '--read-data'], { show: 2 });
  });

  it('restores the snapshot byte for byte', step, async (t) => {
    const run = restic.withSink((line) => t.diagnostic(line));
    const target = path.join(tmp.dir, 'restore');
    await run.ok([...tlsArgs, 'restore', 'latest', '--target', target]);
    // `backup .` stores the folder's content at the snapshot's root.
    assert.deepEqual(await digests(target), await digests(source));
  });

  it('logged every request as alice, over HTTP/2', async () => {
    const lines = (await readFile(accessLog, 'utf8')).trim().split('\n');
    assert.ok(lines.length > 10, `${lines.length} access log lines`);
    const users = new Set(lines.map((line) => line.split(' ')[2]));
    assert.deepEqual([...users], ['alice']);
    const versions = new Set(lines.map((line) => / HTTP\/([\d.]+)" /.exec(line)?.[1]));
    assert.deepEqual([...versions], ['2.0']);
  });
});
