/**
 * HTTPS: HTTP/2 by ALPN with HTTP/1.1 on the same port, the protocol over HTTP/2, certificate
 * reload (file replacement, SIGHUP) that refuses bad pairs, the minimum TLS version, client
 * certificates as users, graceful shutdown of HTTP/2 sessions, and the startup errors. All
 * certificates are made by openssl in a temporary folder.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFile, mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { constants, connect as http2Connect } from 'node:http2';
import type {
  ClientHttp2Session,
  ClientHttp2Stream,
  IncomingHttpHeaders,
  IncomingHttpStatusHeader,
} from 'node:http2';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';
import { defaultGrants } from '../../src/access/grants.ts';
import { parseConfigFile } from '../../src/config/config-file.ts';
import { buildServerConfig, UsageError } from '../../src/config/server-config.ts';
import type { TlsConfig } from '../../src/config/server-config.ts';
import { RatchetError } from '../../src/errors.ts';
import { sendError } from '../../src/http/error-response.ts';
import type { CredentialChecker } from '../../src/http/identify.ts';
import { unauthorized } from '../../src/http/identify.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server/server.ts';
import type { RunningServer } from '../../src/server/server.ts';
import { createSecureHttpServer } from '../../src/server/secure-server.ts';
import { loadTlsMaterial } from '../../src/server/tls-material.ts';
import { fingerprintOf, makeCa, makeLeaf, renameReplace } from '../helpers/certificates.ts';
import type { CertificateFiles } from '../helpers/certificates.ts';
import { blob, v2 } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { capturingLogger } from '../helpers/logger.ts';
import type { LogLine } from '../helpers/logger.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { makeTempDir, runRatchet, startRatchet, withTempDir } from '../helpers/ratchet-process.ts';

/** The certificate watcher's stat poll interval (its default, which `ratchet` uses). */
const pollMs = 5000;

interface Certs {
  ca: CertificateFiles;
  serverA: CertificateFiles;
  serverB: CertificateFiles;
  clientCa: CertificateFiles;
  alice: CertificateFiles;
  otherCa: CertificateFiles;
  mallory: CertificateFiles;
}

interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders & IncomingHttpStatusHeader;
  readonly body: Buffer;
}

/** One request on an HTTP/2 session, the body collected. */
function h2(
  session: ClientHttp2Session,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: Buffer } = {},
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(
      { ':method': method, ':path': path, ...options.headers },
      { endStream: options.body === undefined },
    );
    let status = 0;
    let headers: IncomingHttpHeaders & IncomingHttpStatusHeader = {};
    const parts: Buffer[] = [];
    stream.on('response', (received) => {
      headers = received;
      status = Number(received[':status']);
    });
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.on('end', () => resolve({ status, headers, body: Buffer.concat(parts) }));
    stream.on('error', reject);
    if (options.body !== undefined) stream.end(options.body);
  });
}

/** Opens an HTTP/2 session and waits until TLS and ALPN are done. */
async function h2Session(url: string, options: ConnectionOptions): Promise<ClientHttp2Session> {
  // The client queues a whole request body in memory; Node's default limit (10 MB) would make
  // the client itself refuse the large uploads below.
  const session = http2Connect(url, { maxSessionMemory: 256, ...options });
  await Promise.race([
    once(session, 'connect'),
    once(session, 'error').then(([err]) => Promise.reject(err as Error)),
  ]);
  return session;
}

/** What a fresh TLS connection sees: the server certificate's fingerprint and the protocol version. */
function handshake(
  port: number,
  options: ConnectionOptions,
): Promise<{ fingerprint: string; version: string | null; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...options }, () => {
      const result = {
        fingerprint: socket.getPeerCertificate().fingerprint256,
        version: socket.getProtocol(),
        alpn: socket.alpnProtocol ?? false,
      };
      socket.end();
      resolve(result);
    });
    socket.once('error', reject);
  });
}

/** Polls until a fresh connection presents the expected certificate, or fails after the timeout. */
async function waitForFingerprint(
  port: number,
  ca: Buffer,
  expected: string,
  timeoutMs = 8000,
): Promise<void> {
  let seen = '';
  await waitFor(
    async () => (seen = (await handshake(port, { ca })).fingerprint) === expected,
    `the certificate ${expected} (the server still presents ${seen})`,
    timeoutMs,
  );
}

/** One HTTPS request over HTTP/1.1 (node:https offers no ALPN, so the server falls back). */
function https1(
  url: string,
  method: string,
  path: string,
  options: ConnectionOptions & { headers?: Record<string, string | number>; body?: Buffer } = {},
): Promise<{ status: number; httpVersion: string; headers: Record<string, unknown>; body: Buffer }> {
  const { headers, body, ...tlsOptions } = options;
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: target.hostname, port: target.port, method, path, headers, agent: false, ...tlsOptions },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            httpVersion: res.httpVersion,
            headers: res.headers,
            body: Buffer.concat(parts),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Puts a certificate pair where the server expects it: `<dir>/public_key` and `<dir>/private_key`. */
async function install(dir: string, pair: CertificateFiles): Promise<TlsConfig> {
  await copyFile(pair.cert, path.join(dir, 'public_key'));
  await copyFile(pair.key, path.join(dir, 'private_key'));
  return {
    cert: path.join(dir, 'public_key'),
    key: path.join(dir, 'private_key'),
    minVersion: 'TLSv1.2',
    clientCa: undefined,
  };
}

describe('TLS', () => {
  let certs: Certs;
  let caPem: Buffer;
  let certDir: string;
  let cleanupCerts: () => Promise<void>;

  before(async () => {
    ({ dir: certDir, cleanup: cleanupCerts } = await makeTempDir('ratchet-tls-'));
    const ca = await makeCa(certDir, 'test-ca');
    const clientCa = await makeCa(certDir, 'client-ca');
    const otherCa = await makeCa(certDir, 'other-ca');
    certs = {
      ca,
      serverA: await makeLeaf(certDir, 'server-a', '127.0.0.1', ca, 'server'),
      serverB: await makeLeaf(certDir, 'server-b', '127.0.0.1', ca, 'server'),
      clientCa,
      alice: await makeLeaf(certDir, 'alice', 'alice', clientCa, 'client'),
      otherCa,
      mallory: await makeLeaf(certDir, 'mallory', 'alice', otherCa, 'client'),
    };
    caPem = await readFile(ca.cert);
  });
  after(() => cleanupCerts());

  /** Starts an in-process server with TLS on 127.0.0.1:0; the files are watched with short delays. */
  async function startTls(
    dir: string,
    tls: TlsConfig,
    overrides: Parameters<typeof testConfig>[1] = {},
    credentials?: CredentialChecker,
  ): Promise<{ server: RunningServer; url: string; port: number; lines: LogLine[] }> {
    const { logger, lines } = capturingLogger();
    const server = await startServer(testConfig(dir, { tls, ...overrides }), {
      logger,
      credentials,
      certificateWatch: { debounceMs: 50, pollIntervalMs: 200 },
    });
    const address = server.addresses[0];
    if (address?.kind !== 'tcp') throw new Error('expected a TCP listener');
    assert.deepEqual(server.secure, [true]);
    return { server, url: `https://127.0.0.1:${address.port}`, port: address.port, lines };
  }

  describe('HTTP/2 and HTTP/1.1 on one port', () => {
    let server: RunningServer;
    let url: string;
    let port: number;
    let session: ClientHttp2Session;
    let dataDir: string;
    let cleanup: () => Promise<void>;

    before(async () => {
      const temp = await makeTempDir();
      ({ dir: dataDir, cleanup } = temp);
      ({ server, url, port } = await startTls(temp.dir, await install(temp.dir, certs.serverA)));
      session = await h2Session(url, { ca: caPem });
    });
    after(async () => {
      session.close();
      await server.close();
      await cleanup();
    });

    it('negotiates h2 by ALPN and still serves HTTP/1.1 clients', async () => {
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal((await handshake(port, { ca: caPem, ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'h2');
      assert.equal((await handshake(port, { ca: caPem, ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
      const created = await https1(url, 'POST', '/h1/?create=true', { ca: caPem });
      assert.equal(created.status, 200);
      assert.equal(created.httpVersion, '1.1');
      const listed = await https1(url, 'GET', '/h1/keys/', { ca: caPem, headers: { Accept: v2 } });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers['content-type'], v2);
      assert.equal(listed.body.toString(), '[]');
    });

    it('refuses clients that do not trust the certificate', async () => {
      await assert.rejects(handshake(port, {}), /self[- ]signed|unable to verify|certificate/i);
    });

    it('serves the restic protocol over HTTP/2', async () => {
      assert.equal((await h2(session, 'HEAD', '/repo/config')).status, 404);
      assert.equal((await h2(session, 'POST', '/repo/?create=true')).status, 200);
      const { data, name } = blob(256 * 1024);
      const saved = await h2(session, 'POST', `/repo/data/${name}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-length': data.length, accept: v2 },
        body: data,
      });
      assert.equal(saved.status, 200);

      const head = await h2(session, 'HEAD', `/repo/data/${name}`, { headers: { accept: v2 } });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(data.length));
      assert.equal(head.body.length, 0);

      const ranged = await h2(session, 'GET', `/repo/data/${name}`, {
        headers: { range: 'bytes=1000-100999', accept: v2 },
      });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers['content-length'], '100000');
      assert.equal(ranged.headers['content-range'], `bytes 1000-100999/${data.length}`);
      assert.ok(ranged.body.equals(data.subarray(1000, 101000)));

      const listed = await h2(session, 'GET', '/repo/data/', { headers: { accept: v2 } });
      assert.equal(listed.status, 200);
      assert.equal(listed.headers['content-type'], v2);
      assert.deepEqual(JSON.parse(listed.body.toString()), [{ name, size: data.length }]);

      const mismatch = blob(1000);
      const bad = await h2(session, 'POST', `/repo/data/${name}`.replace(name, blob(1).name), {
        headers: { 'content-length': mismatch.data.length },
        body: mismatch.data,
      });
      assert.equal(bad.status, 400);
      assert.equal((await h2(session, 'DELETE', `/repo/data/${name}`)).status, 200);
      assert.equal((await h2(session, 'HEAD', `/repo/data/${name}`)).status, 404);
    });

    it('streams large objects both ways with concurrent streams on one session', async () => {
      const objects = [blob(12 << 20), blob(9 << 20), blob(5 << 20)];
      await h2(session, 'POST', '/big/?create=true');
      const saved = await Promise.all(
        objects.map(({ data, name }) =>
          h2(session, 'POST', `/big/data/${name}`, {
            headers: { 'content-length': data.length },
            body: data,
          }),
        ),
      );
      assert.deepEqual(
        saved.map((res) => res.status),
        [200, 200, 200],
      );
      const read = await Promise.all(
        objects.map(({ name }) =>
          h2(session, 'GET', `/big/data/${name}`, { headers: { range: 'bytes=0-' } }),
        ),
      );
      for (const [i, res] of read.entries()) {
        assert.equal(res.status, 206, `object ${i}: one satisfiable range`);
        assert.ok(res.body.equals(objects[i]?.data ?? Buffer.alloc(0)), `object ${i} read back`);
      }
    });

    it('keeps nothing when a client drops the connection or cancels its upload', async () => {
      await h2(session, 'POST', '/gone/?create=true');
      const { data, name } = blob(4 << 20);
      const partialUpload = async (
        headers: Record<string, string | number>,
        cut: (stream: ClientHttp2Stream, client: ClientHttp2Session) => void,
      ): Promise<void> => {
        const client = await h2Session(url, { ca: caPem });
        const stream = client.request({ ':method': 'POST', ':path': `/gone/data/${name}`, ...headers });
        stream.on('error', () => undefined);
        stream.resume();
        await new Promise<void>((resolve) => stream.write(data.subarray(0, 1 << 20), () => resolve()));
        await sleep(100);
        cut(stream, client);
        await once(stream, 'close');
        client.destroy();
      };
      // The connection goes away in the middle of a declared 4 MiB body.
      await partialUpload({ 'content-length': data.length }, (_stream, client) => client.destroy());
      // The stream is cancelled; without a Content-Length only the hash check can tell.
      await partialUpload({}, (stream) => stream.close(constants.NGHTTP2_CANCEL));

      const files = async (): Promise<string[]> =>
        (await readdir(path.join(dataDir, 'gone'), { recursive: true, withFileTypes: true }))
          .filter((entry) => entry.isFile() && entry.name !== 'config')
          .map((entry) => entry.name);
      await waitFor(
        async () => (await files()).length === 0,
        'the partial uploads to be removed',
        5000,
      ).catch(() => undefined);
      assert.deepEqual(await files(), []);
      assert.equal((await h2(session, 'HEAD', `/gone/data/${name}`)).status, 404);
    });

    it('answers a refused large upload without reading it, and the session stays usable', async () => {
      const { data } = blob(24 << 20);
      const refused = await h2(session, 'POST', '/repo/data/not-a-name', {
        headers: { 'content-length': data.length },
        body: data,
      });
      assert.equal(refused.status, 404);
      assert.equal((await h2(session, 'GET', '/repo/keys/', { headers: { accept: v2 } })).status, 200);
    });
  });

  it('over HTTP/2, stops a half-read upload after the error response and cuts a failed download', async () => {
    const { dir, cleanup } = await makeTempDir();
    const tls = await install(dir, certs.serverA);
    const { logger, lines } = capturingLogger();
    // A bare pipeline stand-in: fails an upload after its first chunk (as a quota overflow does)
    // and a download after part of its body went out (as a failing disk does).
    const secure = createSecureHttpServer(
      (req, res) => {
        if (req.url === '/partial') {
          req.once('data', () => {
            req.pause();
            sendError(req, res, new RatchetError('QUOTA_EXCEEDED', 'quota exceeded'), logger);
          });
        } else if (req.url === '/cut') {
          res.statusCode = 200;
          res.setHeader('Content-Length', 100_000);
          const out: Writable = res;
          out.write(Buffer.alloc(1000));
          setTimeout(() => sendError(req, res, new Error('disk gone'), logger), 50);
        } else {
          res.end('ok');
        }
      },
      tls,
      await loadTlsMaterial(tls),
      logger,
    );
    secure.server.listen(0, '127.0.0.1');
    await once(secure.server, 'listening');
    const { port } = secure.server.address() as { port: number };
    const url = `https://127.0.0.1:${port}`;
    const session = await h2Session(url, { ca: caPem });
    try {
      const { data } = blob(16 << 20);
      const refused = await h2(session, 'POST', '/partial', {
        headers: { 'content-length': data.length },
        body: data,
      });
      assert.equal(refused.status, 507);
      assert.equal(refused.body.toString(), 'quota exceeded\n');
      await assert.rejects(h2(session, 'GET', '/cut'), /NGHTTP2_INTERNAL_ERROR/);
      const after = await h2(session, 'GET', '/other');
      assert.equal(after.body.toString(), 'ok');
      // HTTP/1.1 on the same port keeps its behaviour: the connection is closed instead.
      const h1 = await https1(url, 'POST', '/partial', {
        ca: caPem,
        headers: { 'Content-Length': data.length },
        body: data,
      });
      assert.equal(h1.status, 507);
      assert.equal(h1.headers.connection, 'close');
      session.close();
      // A stream reset while paused with unread data must still close, or shutdown would wait
      // for its deadline and then cut it.
      await secure.drain(30_000);
      assert.deepEqual(
        lines.filter((line) => /deadline/.test(line.msg)).map((line) => line.msg),
        [],
        'every stream and session closed without the deadline',
      );
    } finally {
      session.destroy();
      await secure.drain(1000);
      await cleanup();
    }
  });

  describe('certificate reload', () => {
    let server: RunningServer;
    let port: number;
    let dir: string;
    let tls: TlsConfig;
    let cleanup: () => Promise<void>;
    let fingerprintA: string;
    let fingerprintB: string;

    before(async () => {
      ({ dir, cleanup } = await makeTempDir());
      tls = await install(dir, certs.serverA);
      ({ server, port } = await startTls(dir, tls));
      fingerprintA = await fingerprintOf(certs.serverA.cert);
      fingerprintB = await fingerprintOf(certs.serverB.cert);
    });
    after(async () => {
      await server.close();
      await cleanup();
    });

    it('switches new connections to a certificate replaced by rename, keeping open sessions', async () => {
      assert.equal((await handshake(port, { ca: caPem })).fingerprint, fingerprintA);
      const open = await h2Session(`https://127.0.0.1:${port}`, { ca: caPem });
      try {
        // The key first, then the certificate, as a renewal script would: the pair is briefly
        // mismatched (refused), then complete.
        await renameReplace(certs.serverB.key, tls.key);
        await renameReplace(certs.serverB.cert, tls.cert);
        await waitForFingerprint(port, caPem, fingerprintB);
        assert.equal(await server.reloadCertificates(), 'unchanged');
        // The session opened before the change still works (with its old certificate).
        assert.equal((await h2(open, 'POST', '/kept/?create=true')).status, 200);
      } finally {
        open.close();
      }
    });

    it('refuses a key that does not match the certificate and keeps serving the old one', async () => {
      const before = (await handshake(port, { ca: caPem })).fingerprint;
      assert.equal(before, fingerprintB);
      // Certificate A with key B still in place: a mismatch.
      await renameReplace(certs.serverA.cert, tls.cert);
      assert.equal(await server.reloadCertificates(), 'failed');
      await sleep(400); // past the watcher's debounce and a poll
      assert.equal((await handshake(port, { ca: caPem })).fingerprint, fingerprintB);
      // Garbage is refused just the same.
      await writeFile(`${tls.key}.tmp`, 'not a key');
      await rename(`${tls.key}.tmp`, tls.key);
      assert.equal(await server.reloadCertificates(), 'failed');
      assert.equal((await handshake(port, { ca: caPem })).fingerprint, fingerprintB);
      // Once the matching key arrives, the pair is taken.
      await renameReplace(certs.serverA.key, tls.key);
      await waitForFingerprint(port, caPem, fingerprintA);
    });
  });

  it('with --tls-min-ver 1.3 refuses TLS 1.2 clients; by default accepts them', async () => {
    await withTempDir(async (dir) => {
      const tls = await install(dir, certs.serverA);
      const strict = await startTls(dir, { ...tls, minVersion: 'TLSv1.3' });
      try {
        await assert.rejects(
          handshake(strict.port, { ca: caPem, maxVersion: 'TLSv1.2' }),
          /protocol version|unsupported protocol|alert/i,
        );
        assert.equal((await handshake(strict.port, { ca: caPem })).version, 'TLSv1.3');
      } finally {
        await strict.server.close();
      }
      const lenient = await startTls(dir, tls);
      try {
        const old = await handshake(lenient.port, { ca: caPem, maxVersion: 'TLSv1.2' });
        assert.equal(old.version, 'TLSv1.2');
      } finally {
        await lenient.server.close();
      }
    });
  });

  it('logs in a verified client certificate as its common name; others need Basic auth', async () => {
    const { dir, cleanup } = await makeTempDir();
    const logFile = path.join(dir, 'access.log');
    const nobody: CredentialChecker = { authenticate: () => Promise.reject(unauthorized()) };
    const tls = { ...(await install(dir, certs.serverA)), clientCa: certs.clientCa.cert };
    const { server, url } = await startTls(
      dir,
      tls,
      { noAuth: false, privateRepos: true, grants: defaultGrants(true), log: logFile },
      nobody,
    );
    const alice = { ca: caPem, cert: await readFile(certs.alice.cert), key: await readFile(certs.alice.key) };
    const mallory = {
      ca: caPem,
      cert: await readFile(certs.mallory.cert),
      key: await readFile(certs.mallory.key),
    };
    const sessions: ClientHttp2Session[] = [];
    try {
      const anonymous = await h2Session(url, { ca: caPem });
      const asAlice = await h2Session(url, alice);
      const asMallory = await h2Session(url, mallory);
      sessions.push(anonymous, asAlice, asMallory);

      const noCert = await h2(anonymous, 'POST', '/alice/?create=true');
      assert.equal(noCert.status, 401);
      assert.equal(noCert.headers['www-authenticate'], 'Basic realm="restic"');
      assert.equal((await h2(asAlice, 'POST', '/alice/?create=true')).status, 200);
      // The certificate's user gets that user's rights, no more (private repos here).
      assert.equal((await h2(asAlice, 'POST', '/bob/?create=true')).status, 403);
      // Same common name, but signed by a CA the server does not trust: not a login.
      assert.equal((await h2(asMallory, 'POST', '/alice/?create=true')).status, 401);
      // Over HTTP/1.1 too.
      const h1 = await https1(url, 'GET', '/alice/keys/', { ...alice, headers: { Accept: v2 } });
      assert.equal(h1.status, 200);
      assert.equal(h1.httpVersion, '1.1');
    } finally {
      for (const session of sessions) session.close();
      await server.close();
    }
    try {
      // The client address is known for HTTP/2 too, although the stream is gone when the line is written.
      const log = await readFile(logFile, 'utf8');
      assert.match(log, /^127\.0\.0\.1 - alice \[[^\]]+\] "POST \/alice\/\?create=true HTTP\/2\.0" 200 /m);
      assert.match(log, /^127\.0\.0\.1 - alice \[[^\]]+\] "GET \/alice\/keys\/ HTTP\/1\.1" 200 /m);
      assert.match(log, /^127\.0\.0\.1 - - \[[^\]]+\] "POST \/alice\/\?create=true HTTP\/2\.0" 401 /m);
    } finally {
      await cleanup();
    }
  });

  it('shuts down gracefully: idle sessions get GOAWAY, an upload in flight finishes', async () => {
    await withTempDir(async (dir) => {
      const keepAlive = new HttpsAgent({ keepAlive: true, ca: caPem });
      try {
        const { server, url, lines } = await startTls(dir, await install(dir, certs.serverA), {
          shutdownTimeout: 20,
        });
        // An idle HTTP/1.1 keep-alive connection must not hold up the shutdown either.
        const h1 = await new Promise<number>((resolve, reject) => {
          const target = new URL(url);
          httpsRequest(
            { host: target.hostname, port: target.port, path: '/r/keys/', agent: keepAlive },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          )
            .on('error', reject)
            .end();
        });
        assert.equal(h1, 404);
        const idle = await h2Session(url, { ca: caPem });
        const busy = await h2Session(url, { ca: caPem });
        assert.equal((await h2(busy, 'POST', '/r/?create=true')).status, 200);
        const goaway = once(idle, 'goaway');

        const { data, name } = blob(2 << 20);
        const upload = busy.request({
          ':method': 'POST',
          ':path': `/r/data/${name}`,
          'content-length': data.length,
        });
        const response = new Promise<number>((resolve, reject) => {
          upload.on('response', (headers) => resolve(Number(headers[':status'])));
          upload.on('error', reject);
        });
        upload.resume();
        upload.write(data.subarray(0, 1 << 20));
        await sleep(100);

        const closed = server.close();
        await goaway;
        await sleep(200);
        upload.end(data.subarray(1 << 20));
        assert.equal(await response, 200);
        await closed;
        // Every connection closed by itself: the 20 s shutdown deadline did not have to cut one.
        assert.deepEqual(
          lines.filter((line) => /deadline/.test(line.msg)).map((line) => line.msg),
          [],
          'close did not wait for the idle session or connection to time out',
        );
        idle.destroy();
        busy.destroy();
      } finally {
        keepAlive.destroy();
      }
    });
  });

  it('refuses to start with a missing or mismatched certificate', async () => {
    await withTempDir(async (dir) => {
      const missing: TlsConfig = {
        cert: path.join(dir, 'public_key'),
        key: path.join(dir, 'private_key'),
        minVersion: 'TLSv1.2',
        clientCa: undefined,
      };
      await assert.rejects(
        startServer(testConfig(dir, { tls: missing }), { logger: silentLogger() }),
        /TLS certificate .*public_key does not exist/,
      );
      const mismatched = { ...missing, cert: certs.serverA.cert, key: certs.serverB.key };
      await assert.rejects(
        startServer(testConfig(dir, { tls: mismatched }), { logger: silentLogger() }),
        /does not belong to the certificate/,
      );
    });
  });

  it('takes the TLS settings from the configuration file, flags overriding', () => {
    const file = parseConfigFile(
      'path: /srv/restic\ntls: true\ntls-min-ver: 1.3\ntls-client-ca: /etc/ratchet/clients.pem\n',
      'ratchet.yaml',
    );
    const fromFile = buildServerConfig({ tlsMinVer: '1.2' }, () => 'default', file);
    assert.deepEqual(fromFile.tls, {
      cert: '/srv/restic/public_key',
      key: '/srv/restic/private_key',
      minVersion: 'TLSv1.3',
      clientCa: '/etc/ratchet/clients.pem',
    });
    const flagged = buildServerConfig(
      { tlsMinVer: '1.2', tlsCert: '/c.pem' },
      (key) => (key === 'tlsMinVer' || key === 'tlsCert' ? 'cli' : 'default'),
      file,
    );
    assert.equal(flagged.tls?.minVersion, 'TLSv1.2');
    assert.equal(flagged.tls?.cert, '/c.pem');
    assert.equal(buildServerConfig({ tlsMinVer: '1.2' }, () => 'default', undefined).tls, undefined);
    assert.throws(
      () => buildServerConfig({ tlsKey: '/k.pem' }, () => 'default', parseConfigFile('tls-key: /k.pem', 'f')),
      (err: Error) => err instanceof UsageError && /--tls-key needs --tls/.test(err.message),
    );
    assert.throws(() => parseConfigFile('tls-min-ver: 1.1', 'f'), /tls-min-ver/);
  });

  describe('ratchet command', () => {
    it('exits 1 with a clear message for a missing certificate, 2 for TLS flags without --tls', async () => {
      await withTempDir(async (dir) => {
        const missing = await runRatchet(['--tls', '--no-auth', '--path', dir, '--listen', '127.0.0.1:0']);
        assert.equal(missing.code, 1, missing.stderr);
        assert.match(missing.stderr, /TLS certificate \S*public_key does not exist/);
        const cases: [string[], RegExp][] = [
          [['--tls-cert', certs.serverA.cert], /--tls-cert needs --tls/],
          [['--tls-min-ver', '1.3'], /--tls-min-ver needs --tls/],
          [['--tls', '--tls-min-ver', '1.1'], /--tls-min-ver must be 1.2 or 1.3/],
        ];
        for (const [args, message] of cases) {
          const result = await runRatchet([...args, '--no-auth', '--path', dir, '--listen', '127.0.0.1:0']);
          assert.equal(result.code, 2, args.join(' '));
          assert.match(result.stderr, message, args.join(' '));
        }
        const mismatched = await runRatchet([
          ...['--tls', '--tls-cert', certs.serverA.cert, '--tls-key', certs.serverB.key],
          ...['--no-auth', '--path', dir, '--listen', '127.0.0.1:0'],
        ]);
        assert.equal(mismatched.code, 1);
        assert.match(mismatched.stderr, /does not belong to the certificate/);
      });
    });

    it('serves HTTPS from <path>/public_key and reloads the certificate on SIGHUP', async () => {
      // The certificate folder is reached through a symlink that is swapped to another folder:
      // the folder watch (inotify on the old folder) sees nothing, so the reload is SIGHUP's or
      // the stat poll's, which runs every 5 s from the server's start. A reload served within
      // 5 s of the spawn is therefore SIGHUP's. An attempt slower than that (a loaded machine)
      // proves nothing either way and is repeated with a fresh server; without SIGHUP every
      // attempt is that slow, and the test fails.
      const fingerprintA = await fingerprintOf(certs.serverA.cert);
      const fingerprintB = await fingerprintOf(certs.serverB.cert);
      const attempts: number[] = [];
      while (attempts.length < 3 && !attempts.some((ms) => ms < pollMs)) {
        await withTempDir(async (dir) => {
          const first = path.join(dir, 'tls-1');
          const second = path.join(dir, 'tls-2');
          await mkdir(first);
          await mkdir(second);
          await install(first, certs.serverA);
          await install(second, certs.serverB);
          const data = path.join(dir, 'data');
          await symlink(first, data);
          const spawned = Date.now();
          const ratchet = await startRatchet(data, ['--tls', '--no-auth']);
          try {
            assert.match(ratchet.url, /^https:\/\/127\.0\.0\.1:\d+$/);
            const port = Number(new URL(ratchet.url).port);
            assert.equal((await handshake(port, { ca: caPem })).fingerprint, fingerprintA);
            await symlink(second, `${data}.new`);
            await rename(`${data}.new`, data);
            ratchet.child.kill('SIGHUP');
            await waitForFingerprint(port, caPem, fingerprintB);
            attempts.push(Date.now() - spawned);
            assert.match(ratchet.stderr(), /SIGHUP/);
            // The log reaches us through a pipe, possibly after the new certificate is served.
            await waitFor(() => /TLS certificate reloaded/.test(ratchet.stderr()), 'the reload log line');
            const session = await h2Session(ratchet.url, { ca: caPem });
            assert.equal((await h2(session, 'POST', '/r/?create=true')).status, 200);
            session.close();
          } finally {
            assert.equal(await ratchet.stop(), 0);
          }
        });
      }
      assert.ok(
        attempts.some((ms) => ms < pollMs),
        `the new certificate was served only after the first poll could have run (${attempts.join(', ')} ms after the spawn): SIGHUP did not reload it`,
      );
    });
  });
});
