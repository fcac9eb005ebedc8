/**
 * Nothing that logs may contain credentials (issue 11): the operator's log at debug level and the
 * access log, through each path that writes them: a malformed request (client error, whose raw
 * bytes hold the Authorization header), a failed login, a refused request, a server fault whose
 * error names a URL with a password, and URLs carrying user:password@.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { createLogger, silentLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server/server.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { basic, blob, raw } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { makeTempDir } from '../helpers/ratchet-process.ts';
import { writeHtpasswd } from './operations-helpers.ts';

const password = 'Pa55-w0rd-do-not-log';
const wrongPassword = 'Wr0ng-pa55-do-not-log';
const storagePassword = 'St0rage-pa55-do-not-log';

/** Every form in which a secret could show up: as is, in a Basic header, as JSON-encoded bytes. */
function leaks(text: string, secrets: readonly string[]): string[] {
  const forms = secrets.flatMap((secret) => [
    secret,
    Buffer.from(`alice:${secret}`).toString('base64'),
    Buffer.from(`mallory:${secret}`).toString('base64'),
  ]);
  // pino writes a Buffer as {"type":"Buffer","data":[...]}: decode those too.
  const decoded = [...text.matchAll(/"type":"Buffer","data":\[([\d,]*)\]/g)]
    .map((match) => Buffer.from((match[1] ?? '').split(',').map(Number)).toString('latin1'))
    .join('\n');
  return forms.filter((form) => text.includes(form) || decoded.includes(form));
}

/** Sends raw bytes and waits for the server to answer and close. */
function sendRaw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('credentials in logs', () => {
  it('appear in no log line, whatever the path', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = await makeTempDir();
    const dataDir = path.join(dir, 'data');
    const accessLogFile = path.join(dir, 'access.log');
    const lines: string[] = [];
    const logger = createLogger(true, { write: (line: string) => void lines.push(line) });
    await writeHtpasswd(path.join(dir, 'htpasswd'), { alice: password });
    const auth = await startHtpasswdAuth({
      file: path.join(dir, 'htpasswd'),
      logger,
      watch: false,
      pollIntervalMs: 0,
    });
    const fs = new FsStorage({ root: dataDir, logger: silentLogger() });
    await fs.init();
    // A backend whose failure names its URL, credentials included (as a remote store's might).
    const failing = new Proxy(fs, {
      get(target, property, receiver) {
        if (property === 'stat')
          return () =>
            Promise.reject(new Error(`backend https://backup:${storagePassword}@store.example/ unreachable`));
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    }) as Storage;
    const server = await startServer(
      testConfig(dataDir, { noAuth: false, debug: true, log: accessLogFile }),
      { logger, storage: failing, credentials: auth },
    );
    try {
      const address = server.addresses[0];
      assert.ok(address?.kind === 'tcp');
      const url = `http://127.0.0.1:${address.port}`;
      const alice = basic('alice', password);

      // A malformed request carrying credentials: the client-error path.
      const malformed = await sendRaw(
        address.port,
        `GET /alice/config HTTP/1.1\r\nHost: x\r\nAuthorization: ${alice}\r\nProxy-Authorization: ${alice}\r\nBad header line\r\n\r\n`,
      );
      assert.match(malformed, /^HTTP\/1\.1 400 /);
      // A failed login.
      const refused = await raw(url, 'GET', '/alice/config', {
        headers: { Authorization: basic('mallory', wrongPassword) },
      });
      assert.equal(refused.status, 401);
      // Accepted, answered with an error (404), and a server fault (500) with the backend's URL.
      assert.equal(
        (await raw(url, 'POST', '/alice/?create=true', { headers: { Authorization: alice } })).status,
        200,
      );
      const missing = await raw(url, 'GET', '/bob/config', {
        headers: { Authorization: alice, 'Proxy-Authorization': alice },
      });
      assert.equal(missing.status, 404);
      const fault = await raw(url, 'HEAD', `/alice/data/${blob(1).name}`, {
        headers: { Authorization: alice },
      });
      assert.equal(fault.status, 500);
      // Credentials in the URL (absolute form): the access log and the refusal's log line.
      const absolute = await raw(url, 'GET', `http://alice:${password}@127.0.0.1/alice/config`, {
        headers: { Authorization: alice },
      });
      assert.ok(absolute.status >= 400);
    } finally {
      await server.close();
      await auth.close();
    }
    const accessLog = await readFile(accessLogFile, 'utf8');
    await cleanup();
    const log = lines.join('');
    // The paths above were logged at all (else the checks below prove nothing).
    assert.match(log, /"msg":"client error"/);
    assert.match(log, /"msg":"login failed"/);
    assert.match(log, /"msg":"request failed"/);
    assert.match(log, /store\.example/);
    assert.match(accessLog, /\[redacted\]@127\.0\.0\.1\/alice\/config/);
    assert.deepEqual(leaks(log, [password, wrongPassword, storagePassword]), []);
    assert.deepEqual(leaks(accessLog, [password, wrongPassword, storagePassword]), []);
  });
});
