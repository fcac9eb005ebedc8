/**
 * TLS listener hardening (issue 11): a client certificate from a look-alike CA (the configured
 * client CA's name, another key) is ignored and Basic authentication applies, over HTTP/1.1 and
 * HTTP/2; an HTTP/2 client that keeps resetting streams (rapid reset) loses its session; and
 * `100 Continue` over HTTP/2 only for accepted uploads. Certificates are made by openssl.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { constants, connect as http2Connect } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { defaultGrants } from '../../src/access/grants.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import type { CredentialChecker } from '../../src/http/identify.ts';
import { unauthorized } from '../../src/http/identify.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { HardeningLimits } from '../../src/http/hardening-limits.ts';
import { startServer } from '../../src/server/server.ts';
import { makeCa, makeLeaf } from '../helpers/certificates.ts';
import type { CertificateFiles } from '../helpers/certificates.ts';
import { basic, blob } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { makeTempDir } from '../helpers/ratchet-process.ts';
import { sleep } from '../helpers/wait.ts';

const run = promisify(execFile);
const bounded = { timeout: 60_000 };
const alice = basic('alice', 'secret');
const aliceOnly: CredentialChecker = {
  authenticate: (authorization) =>
    authorization === alice ? Promise.resolve('alice') : Promise.reject(unauthorized()),
};

/** The subject key identifier of a certificate, as openssl prints it (hex pairs with colons). */
async function subjectKeyId(cert: string): Promise<string> {
  const { stdout } = await run('openssl', ['x509', '-in', cert, '-noout', '-ext', 'subjectKeyIdentifier']);
  const id = /([0-9A-F]{2}(?::[0-9A-F]{2})+)/.exec(stdout)?.[1];
  assert.ok(id, `a subject key identifier in ${stdout}`);
  return id;
}

/** A CA with the same name and key identifier as `ca`, but its own key: a forgery of its identity. */
async function makeLookAlikeCa(dir: string, ca: CertificateFiles): Promise<CertificateFiles> {
  await mkdir(dir, { recursive: true });
  const files = { cert: path.join(dir, 'look-alike.pem'), key: path.join(dir, 'look-alike.key') };
  const subject = (
    await run('openssl', ['x509', '-in', ca.cert, '-noout', '-subject', '-nameopt', 'compat'])
  ).stdout
    .replace(/^subject=\s*/, '')
    .trim();
  await run('openssl', [
    ...'req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2'.split(' '),
    ...['-keyout', files.key, '-out', files.cert, '-subj', subject],
    ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ...['-addext', `subjectKeyIdentifier=${await subjectKeyId(ca.cert)}`],
  ]);
  return files;
}

interface TlsServer {
  readonly url: string;
  close(): Promise<void>;
}

describe('TLS listener hardening', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let caPem: Buffer;
  let server: CertificateFiles;
  let clientCa: CertificateFiles;
  let forged: CertificateFiles;

  before(async () => {
    ({ dir, cleanup } = await makeTempDir('ratchet-hardening-tls-'));
    const ca = await makeCa(dir, 'test-ca');
    caPem = await readFile(ca.cert);
    server = await makeLeaf(dir, 'server', '127.0.0.1', ca, 'server');
    clientCa = await makeCa(dir, 'client-ca');
    const lookAlike = await makeLookAlikeCa(path.join(dir, 'forger'), clientCa);
    forged = await makeLeaf(dir, 'forged-alice', 'alice', lookAlike, 'client');
  });
  after(() => cleanup());

  async function startTls(
    config: Partial<ServerConfig>,
    hardening?: Partial<HardeningLimits>,
  ): Promise<TlsServer> {
    const tls = {
      cert: server.cert,
      key: server.key,
      minVersion: 'TLSv1.2' as const,
      clientCa: clientCa.cert,
    };
    const dataDir = path.join(dir, `data-${Math.random().toString(16).slice(2)}`);
    const config_ = testConfig(dataDir, { tls, ...config });
    const running = await startServer(config_, {
      logger: silentLogger(),
      credentials: config_.noAuth ? undefined : aliceOnly,
      hardening,
    });
    const address = running.addresses[0];
    assert.ok(address?.kind === 'tcp');
    return { url: `https://127.0.0.1:${address.port}`, close: () => running.close() };
  }

  async function session(url: string, options: ConnectionOptions = {}): Promise<ClientHttp2Session> {
    const opened = http2Connect(url, { ca: caPem, ...options });
    opened.on('error', () => undefined);
    await once(opened, 'connect');
    return opened;
  }

  /** One HTTP/2 request; the status (0 if the stream failed). */
  function h2Status(
    opened: ClientHttp2Session,
    method: string,
    target: string,
    headers = {},
  ): Promise<number> {
    return new Promise((resolve) => {
      const stream = opened.request({ ':method': method, ':path': target, ...headers }, { endStream: true });
      let status = 0;
      stream.on('response', (received) => (status = Number(received[':status'])));
      stream.on('error', () => resolve(0));
      stream.on('close', () => resolve(status));
      stream.resume();
    });
  }

  /** One HTTP/1.1 request over TLS; the status, or the error message. */
  function h1Status(url: string, target: string, options: ConnectionOptions & { authorization?: string }) {
    const { authorization, ...tlsOptions } = options;
    const { hostname, port } = new URL(url);
    return new Promise<number | string>((resolve) => {
      const req = httpsRequest(
        {
          host: hostname,
          port,
          path: target,
          agent: false,
          ca: caPem,
          headers: authorization === undefined ? {} : { Authorization: authorization },
          ...tlsOptions,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', (err) => resolve(err.message));
      req.end();
    });
  }

  it('ignores a client certificate from a look-alike CA and applies Basic auth', bounded, async () => {
    const started = await startTls({ noAuth: false, privateRepos: true, grants: defaultGrants(true) });
    const forgedCert = { cert: await readFile(forged.cert), key: await readFile(forged.key) };
    try {
      // HTTP/1.1: the forged certificate names alice but logs nobody in; Basic credentials do.
      assert.equal(await h1Status(started.url, '/alice/keys/', forgedCert), 401);
      assert.equal(await h1Status(started.url, '/alice/?create=true', forgedCert), 401);
      assert.equal(await h1Status(started.url, '/alice/keys/', { ...forgedCert, authorization: alice }), 404);
      // HTTP/2, two requests on one session: the session survives the refusal.
      const h2 = await session(started.url, forgedCert);
      try {
        assert.equal(await h2Status(h2, 'GET', '/alice/keys/'), 401);
        assert.equal(await h2Status(h2, 'POST', '/alice/?create=true', { authorization: alice }), 200);
        assert.equal(await h2Status(h2, 'GET', '/alice/keys/', { authorization: alice }), 200);
        assert.equal(h2.closed, false);
      } finally {
        h2.close();
      }
    } finally {
      await started.close();
    }
  });

  it('closes an HTTP/2 session whose client keeps resetting streams', bounded, async () => {
    const started = await startTls({}, { maxStreamResets: 50, resetWindowMs: 60_000 });
    try {
      const attacker = await session(started.url);
      let goawayCode: number | undefined;
      attacker.on('goaway', (code: number) => (goawayCode = code));
      const closed = new Promise((resolve) => attacker.once('close', resolve));
      let opened = 0;
      // Batches of requests each cancelled right away, until the server ends the session.
      while (!attacker.closed && !attacker.destroyed && opened < 5000) {
        for (let i = 0; i < 25 && !attacker.closed && !attacker.destroyed; i++) {
          const { name } = blob(1);
          const stream = attacker.request({ ':method': 'GET', ':path': `/r/data/${name}` });
          stream.on('error', () => undefined);
          stream.close(constants.NGHTTP2_CANCEL);
          opened++;
        }
        await sleep(10);
      }
      await closed;
      assert.equal(goawayCode, constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.ok(opened < 1000, `the session was closed after ${opened} streams`);
      // Only that session: a new one is served.
      const next = await session(started.url);
      try {
        assert.equal(await h2Status(next, 'GET', '/.ratchet/health'), 200);
      } finally {
        next.close();
      }
    } finally {
      await started.close();
    }
  });

  it('sends 100 Continue over HTTP/2 only for accepted uploads', bounded, async () => {
    const started = await startTls({ noAuth: false, privateRepos: true, grants: defaultGrants(true) });
    const h2 = await session(started.url);
    try {
      assert.equal(await h2Status(h2, 'POST', '/alice/?create=true', { authorization: alice }), 200);
      const { data, name } = blob(1000);
      /** Sends the head with `expect: 100-continue`; the body only once a 100 came. */
      const attempt = (headers: Record<string, string>): Promise<{ continued: boolean; status: number }> =>
        new Promise((resolve) => {
          const stream = h2.request(
            {
              ':method': 'POST',
              ':path': `/alice/data/${name}`,
              'content-length': data.length,
              expect: '100-continue',
              ...headers,
            },
            { endStream: false },
          );
          let continued = false;
          let status = 0;
          stream.on('continue', () => {
            continued = true;
            stream.end(data);
          });
          stream.on('response', (received) => (status = Number(received[':status'])));
          stream.on('error', () => undefined);
          stream.on('close', () => resolve({ continued, status }));
          stream.resume();
        });
      assert.deepEqual(await attempt({}), { continued: false, status: 401 });
      assert.deepEqual(await attempt({ authorization: alice }), { continued: true, status: 200 });
    } finally {
      h2.close();
      await started.close();
    }
  });
});
