/**
 * Behind a reverse proxy (--trusted-proxy): the client a request comes from is the rightmost
 * X-Forwarded-For hop that is not a trusted proxy, and only trusted proxies may name it or, with
 * --proxy-auth-username, the user. Real servers on real sockets; 127.0.0.0/8 gives several
 * loopback peers (127.0.0.2 plays the proxy, 127.0.0.3 an untrusted client).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { resolveClient, parseTrustedPeers } from '../../src/http/client-address.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import { startServer } from '../../src/server/server.ts';
import { silentLogger } from '../../src/log/logger.ts';
import type { HttpRequest } from '../../src/util/http-types.ts';
import { basic, raw } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { startRatchetServer, withTempDir } from '../helpers/ratchet-process.ts';
import { writeHtpasswd } from './operations-helpers.ts';
import { waitFor } from '../helpers/wait.ts';

const passwords = { alice: 'alice-secret', bob: 'bob-secret' };
const proxy = '127.0.0.2';
const stranger = '127.0.0.3';

interface Started {
  /** Sends one request from `from` with the headers. */
  send(from: string, method: string, target: string, headers?: Record<string, string>): Promise<number>;
  readonly dir: string;
}

/** A server with alice and bob, the given overrides, and an access log in `<dir>/access.log`. */
async function withProxyServer(
  overrides: Partial<ServerConfig>,
  test: (started: Started) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'htpasswd');
    await writeHtpasswd(file, passwords);
    const auth = await startHtpasswdAuth({ file, logger: silentLogger(), watch: false, pollIntervalMs: 0 });
    const config = testConfig(path.join(dir, 'data'), {
      noAuth: false,
      log: path.join(dir, 'access.log'),
      ...overrides,
    });
    const server = await startServer(config, { logger: silentLogger(), credentials: auth });
    const address = server.addresses[0];
    const url = address?.kind === 'tcp' ? `http://127.0.0.1:${address.port}` : 'http://unix';
    const socketPath = address?.kind === 'unix' ? address.path : undefined;
    try {
      await test({
        dir,
        async send(from, method, target, headers = {}) {
          const res = await raw(url, method, target, {
            headers,
            localAddress: socketPath ? undefined : from,
            socketPath,
          });
          return res.status;
        },
      });
    } finally {
      await server.close();
      await auth.close();
    }
  });
}

/** Fails logins under 20 different user names (the per-address limit) as the client `via` names. */
async function exhaustAddress(
  started: Started,
  from: string,
  forwardedFor: (i: number) => string | undefined,
): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const xff = forwardedFor(i);
    const status = await started.send(from, 'GET', `/guess${i}/config`, {
      Authorization: basic(`guess${i}`, 'wrong'),
      ...(xff === undefined ? {} : { 'X-Forwarded-For': xff }),
    });
    assert.equal(status, 401, `guess ${i}`);
  }
}

const bobCreates = (xff?: string): Record<string, string> => ({
  Authorization: basic('bob', passwords.bob),
  ...(xff === undefined ? {} : { 'X-Forwarded-For': xff }),
});

describe('the client behind a trusted proxy', () => {
  it("throttles each forwarded client on its own: one client's guesses lock out nobody else", async () => {
    await withProxyServer({ trustedProxies: [proxy] }, async (started) => {
      await exhaustAddress(started, proxy, () => '198.51.100.7');
      // The guessing client is blocked, even with bob's right password...
      assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates('198.51.100.7')), 429);
      // ...while every other client of the same proxy logs in.
      assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates('198.51.100.8')), 200);
      assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates()), 200);
    });
  });

  it('takes the rightmost hop that is not a trusted proxy, so a client cannot pick its address', async () => {
    await withProxyServer({ trustedProxies: [proxy, '10.0.0.0/8'] }, async (started) => {
      // The client wrote a fake first hop; an inner proxy (10.1.2.3, trusted) added the real one.
      await exhaustAddress(started, proxy, (i) => `203.0.113.${i}, 198.51.100.7, 10.1.2.3`);
      for (const xff of ['9.9.9.9, 198.51.100.7', '198.51.100.7:4711', '[::1], 198.51.100.7'])
        assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates(xff)), 429, xff);
      assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates('198.51.100.9')), 200);
      // The access log names the resolved client, not the proxy.
      const log = await readFile(path.join(started.dir, 'access.log'), 'utf8');
      assert.match(log, /^198\.51\.100\.7 - - .*"GET \/guess0\/config /m);
      assert.match(log, /^198\.51\.100\.9 - bob /m);
      assert.doesNotMatch(log, /^127\.0\.0\.2 /m);
    });
  });

  it('ignores X-Forwarded-For from peers that are not trusted proxies', async () => {
    await withProxyServer({ trustedProxies: [proxy] }, async (started) => {
      // A stranger cannot escape its throttle by naming a new address each time.
      await exhaustAddress(started, stranger, (i) => `198.51.100.${i}`);
      assert.equal(
        await started.send(stranger, 'POST', '/bob/?create=true', bobCreates('198.51.100.99')),
        429,
      );
    });
    // Without --trusted-proxy, nobody's header counts.
    await withProxyServer({}, async (started) => {
      await exhaustAddress(started, proxy, (i) => `198.51.100.${i}`);
      assert.equal(await started.send(proxy, 'POST', '/bob/?create=true', bobCreates('198.51.100.99')), 429);
    });
  });

  it('resolves clients of a proxy on a unix socket (--trusted-proxy unix)', async () => {
    await withTempDir(async (sockets) => {
      const socket = path.join(sockets, 'ratchet.sock');
      const listeners = [
        { address: { kind: 'unix' as const, path: socket }, maxRole: 'admin' as const, forHosts: true },
      ];
      await withProxyServer({ listeners, trustedProxies: ['unix'] }, async (started) => {
        await exhaustAddress(started, '', () => '198.51.100.7');
        assert.equal(await started.send('', 'POST', '/bob/?create=true', bobCreates('198.51.100.7')), 429);
        assert.equal(await started.send('', 'POST', '/bob/?create=true', bobCreates('198.51.100.8')), 200);
      });
    });
  });
});

describe('the proxy user header (--proxy-auth-username)', () => {
  const header = 'X-Remote-User';

  it('is honoured from trusted proxies only; from anyone else Basic credentials are needed', async () => {
    await withProxyServer({ trustedProxies: [proxy], proxyAuthUsername: header }, async (started) => {
      assert.equal(await started.send(proxy, 'POST', '/alice/?create=true', { [header]: 'alice' }), 200);
      assert.equal(await started.send(stranger, 'POST', '/alice/?create=true', { [header]: 'alice' }), 401);
      assert.equal(
        await started.send(stranger, 'POST', '/alice/?create=true', {
          [header]: 'bob',
          Authorization: basic('alice', passwords.alice),
        }),
        200,
        'the header from a stranger is ignored, its credentials count',
      );
    });
  });

  it('without --trusted-proxy, is honoured from loopback and unix sockets only, with a warning at start', async () => {
    // A peer on another machine: the header is not honoured, Basic credentials are.
    const fromAfar = { socket: { remoteAddress: '192.0.2.10' }, headers: {} } as unknown as HttpRequest;
    assert.equal(resolveClient(fromAfar, parseTrustedPeers([])).mayAssertUser, false);
    const unixPeer = { socket: { remoteAddress: undefined }, headers: {} } as unknown as HttpRequest;
    assert.equal(resolveClient(unixPeer, parseTrustedPeers([])).mayAssertUser, true);

    await withTempDir(async (dir) => {
      const data = path.join(dir, 'data');
      const file = path.join(dir, 'htpasswd');
      await writeHtpasswd(file, passwords);
      const server = await startRatchetServer([
        ...['--listen', '127.0.0.1:0', '--path', data, '--htpasswd-file', file],
        ...['--proxy-auth-username', header],
      ]);
      try {
        assert.equal(
          (await raw(server.url, 'POST', '/alice/?create=true', { headers: { [header]: 'alice' } })).status,
          200,
        );
        await waitFor(() => server.stderr().includes('--trusted-proxy'), 'the start-up warning');
        const warning =
          server
            .stderr()
            .split('\n')
            .find((line) => line.includes('--trusted-proxy')) ?? '';
        assert.equal((JSON.parse(warning) as { level: number }).level, 40);
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  });
});
