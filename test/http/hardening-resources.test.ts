/**
 * Resources a client must not be able to tie up (issue 11): a refused upload's large rest is not
 * waited for, a trickled one is cut at the drain deadline, an idle body is cut off while time the
 * server paused it for a bandwidth limit does not count, connections per peer address are capped,
 * `100 Continue` only goes to accepted uploads, and readiness probes are shared.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { defaultGrants } from '../../src/access/grants.ts';
import type { ServerConfig } from '../../src/config/server-config.ts';
import type { CredentialChecker } from '../../src/http/identify.ts';
import { unauthorized } from '../../src/http/identify.ts';
import { silentLogger } from '../../src/log/logger.ts';
import { startServer } from '../../src/server/server.ts';
import type { RunningServer } from '../../src/server/server.ts';
import type { HardeningLimits } from '../../src/http/hardening-limits.ts';
import { FsStorage } from '../../src/storage/fs/fs-storage.ts';
import type { Storage } from '../../src/storage/storage.ts';
import { basic, blob, raw, upload } from '../helpers/http.ts';
import { testConfig } from '../helpers/in-process.ts';
import { makeTempDir } from '../helpers/ratchet-process.ts';

// Every test ends within this, even when a server stops answering.
const bounded = { timeout: 60_000 };

const alice = basic('alice', 'secret');

/** Accepts alice with her password; everyone else gets 401. */
const aliceOnly: CredentialChecker = {
  authenticate: (authorization) =>
    authorization === alice ? Promise.resolve('alice') : Promise.reject(unauthorized()),
};

interface Started {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly server: RunningServer;
}

/** Runs the test against an in-process server with the given bounds; always shuts it down. */
async function withServer(
  options: {
    config?: Partial<ServerConfig>;
    hardening?: Partial<HardeningLimits>;
    storage?: (dataDir: string) => Promise<Storage>;
  },
  test: (started: Started) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = await makeTempDir();
  const dataDir = path.join(dir, 'data');
  const storage = options.storage === undefined ? undefined : await options.storage(dataDir);
  const config = testConfig(dataDir, options.config);
  const auth = config.noAuth ? undefined : aliceOnly;
  const server = await startServer(config, {
    logger: silentLogger(),
    storage,
    credentials: auth,
    hardening: options.hardening,
  });
  try {
    const address = server.addresses[0];
    assert.ok(address?.kind === 'tcp');
    await test({ url: `http://127.0.0.1:${address.port}`, port: address.port, dataDir, server });
  } finally {
    await server.close();
    await cleanup();
  }
}

/** A raw connection: what it received, whether the server closed it. */
class Connection {
  text = '';
  closed = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => (this.text += chunk.toString('latin1')));
    socket.on('close', () => (this.closed = true));
    // A server that closes under our writes may reset the connection.
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the condition holds; false if it did not within the time. */
  async until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  }

  /** The status lines received so far, in order. */
  statuses(): number[] {
    return [...this.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
  }

  close(): void {
    this.socket.destroy();
  }
}

const name = blob(1).name;

describe('refused uploads and slow bodies', () => {
  it('closes the connection after refusing an upload whose rest is large', bounded, async () => {
    await withServer({ config: { noAuth: false } }, async ({ port }) => {
      const conn = await Connection.open(port);
      try {
        // 60 MB declared, one byte sent: the 401 is answered and nothing more is waited for.
        conn.write(`PUT /alice/data/${name} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\nx`);
        assert.ok(await conn.until(() => conn.statuses().length > 0, 10_000), 'an answer');
        assert.deepEqual(conn.statuses(), [401]);
        assert.match(conn.text, /\r\nConnection: close\r\n/i);
        assert.ok(await conn.until(() => conn.closed, 20_000), 'the server closed the connection');
      } finally {
        conn.close();
      }
    });
  });

  it('stops discarding a small refused body that trickles past the drain deadline', bounded, async () => {
    await withServer({ config: { noAuth: false }, hardening: { drainDeadlineMs: 500 } }, async ({ port }) => {
      const conn = await Connection.open(port);
      try {
        conn.write(`PUT /alice/data/${name} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx`);
        assert.ok(await conn.until(() => conn.statuses().length > 0, 10_000), 'an answer');
        assert.deepEqual(conn.statuses(), [401]);
        // Small enough to be drained (keep-alive), but it never completes: cut at the deadline.
        assert.doesNotMatch(conn.text, /\r\nConnection: close\r\n/i);
        assert.ok(await conn.until(() => conn.closed, 20_000), 'the server closed the connection');
      } finally {
        conn.close();
      }
    });
  });

  it('cuts off an upload body that stops arriving, and stores nothing', bounded, async () => {
    await withServer({ hardening: { bodyIdleTimeoutMs: 1000 } }, async ({ port, url }) => {
      assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
      const { data, name: objectName } = blob(1000);
      const conn = await Connection.open(port);
      try {
        conn.write(`PUT /r/data/${objectName} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n`);
        conn.write(data.subarray(0, 10));
        assert.ok(await conn.until(() => conn.closed, 30_000), 'the server closed the connection');
        assert.deepEqual(conn.statuses(), []);
      } finally {
        conn.close();
      }
      assert.equal((await raw(url, 'HEAD', `/r/data/${objectName}`)).status, 404);
    });
  });

  it('does not count the time a bandwidth limit held the body back as idle', bounded, async () => {
    // 32 KiB/s in 64 KiB slices: the server holds the body back about 2 s per slice, twice the
    // idle timeout, while the client has sent everything long before.
    await withServer(
      {
        config: { limits: [{ users: ['*'], uploadBytesPerSecond: 32 * 1024 }] },
        hardening: { bodyIdleTimeoutMs: 1000 },
      },
      async ({ url }) => {
        assert.equal((await raw(url, 'POST', '/r/?create=true')).status, 200);
        const { data, name: objectName } = blob(192 * 1024);
        const stored = await upload(url, '/r/', 'data', data, objectName);
        assert.equal(stored.status, 200);
        assert.equal((await raw(url, 'HEAD', `/r/data/${objectName}`)).status, 200);
      },
    );
  });
});

describe('connections per peer address', () => {
  it('refuses connections over the cap and admits again once one closes', bounded, async () => {
    await withServer({ hardening: { maxConnectionsPerAddress: 4 } }, async ({ port, url }) => {
      const held: Connection[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const conn = await Connection.open(port);
          held.push(conn);
          // Each one answers, so the server has counted it before the next one comes.
          conn.write('GET /.ratchet/health HTTP/1.1\r\nHost: x\r\n\r\n');
          assert.ok(await conn.until(() => conn.statuses().length === 1, 10_000));
        }
        const extra = await Connection.open(port);
        extra.write('GET /.ratchet/health HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.ok(await extra.until(() => extra.closed, 10_000), 'the fifth connection is closed');
        assert.deepEqual(extra.statuses(), []);
        // The four admitted ones still work.
        for (const conn of held) {
          conn.write('GET /.ratchet/health HTTP/1.1\r\nHost: x\r\n\r\n');
          assert.ok(await conn.until(() => conn.statuses().length === 2, 10_000));
        }
        held.pop()?.close();
        // Once the server saw one close, a new connection is admitted.
        let answered = 0;
        for (let attempt = 0; attempt < 50 && answered === 0; attempt++) {
          const reply = await raw(url, 'GET', '/.ratchet/health').catch(() => undefined);
          if (reply?.status === 200) answered++;
        }
        assert.equal(answered, 1);
      } finally {
        for (const conn of held) conn.close();
      }
    });
  });
});

describe('connections of trusted proxies', () => {
  it('are not counted: a proxy carries many clients (--trusted-proxy)', bounded, async () => {
    const config = { trustedProxies: ['127.0.0.1'] };
    await withServer({ config, hardening: { maxConnectionsPerAddress: 2 } }, async ({ port }) => {
      const held: Connection[] = [];
      try {
        for (let i = 0; i < 5; i++) {
          const conn = await Connection.open(port);
          held.push(conn);
          conn.write('GET /.ratchet/health HTTP/1.1\r\nHost: x\r\n\r\n');
          assert.ok(await conn.until(() => conn.statuses().length === 1, 10_000), `connection ${i} answered`);
        }
      } finally {
        for (const conn of held) conn.close();
      }
    });
  });
});

describe('Expect: 100-continue', () => {
  const expectHead = (target: string, length: number, authorization?: string): string =>
    `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n` +
    (authorization === undefined ? '' : `Authorization: ${authorization}\r\n`) +
    '\r\n';

  /** Sends the head only and returns the statuses of everything received until the close or 10 s. */
  async function headOnly(port: number, head: string): Promise<number[]> {
    const conn = await Connection.open(port);
    try {
      conn.write(head);
      assert.ok(await conn.until(() => conn.statuses().length > 0, 10_000), 'an answer');
      // Anything more that comes (a late 100) shows up too.
      await conn.until(() => conn.closed, 1000);
      return conn.statuses();
    } finally {
      conn.close();
    }
  }

  it('answers refusals without 100 Continue, and sends it to accepted uploads', bounded, async () => {
    await withServer(
      {
        config: {
          noAuth: false,
          privateRepos: true,
          grants: defaultGrants(true),
          quotas: { maxTotalBytes: 4000, repoRules: [], userRules: [] },
        },
      },
      async ({ port, url }) => {
        const created = await raw(url, 'POST', '/alice/?create=true', { headers: { Authorization: alice } });
        assert.equal(created.status, 200);
        const { data, name: objectName } = blob(1000);
        const target = `/alice/data/${objectName}`;
        // Not authenticated, no access, over the quota: the final status, never a 100.
        assert.deepEqual(await headOnly(port, expectHead(target, 1000)), [401]);
        assert.deepEqual(await headOnly(port, expectHead(`/bob/data/${objectName}`, 1000, alice)), [403]);
        assert.deepEqual(await headOnly(port, expectHead(target, 5000, alice)), [507]);
        // Accepted: 100, then the body, then 200.
        const conn = await Connection.open(port);
        try {
          conn.write(expectHead(target, data.length, alice));
          assert.ok(await conn.until(() => conn.statuses().length > 0, 10_000), 'a 100');
          assert.deepEqual(conn.statuses(), [100]);
          conn.write(data);
          assert.ok(await conn.until(() => conn.statuses().length > 1, 10_000), 'the final status');
          assert.deepEqual(conn.statuses(), [100, 200]);
        } finally {
          conn.close();
        }
        const stored = await raw(url, 'GET', target, { headers: { Authorization: alice } });
        assert.equal(stored.status, 200);
        assert.ok(stored.body.equals(data));
      },
    );
  });
});

describe('/.ratchet/ready', () => {
  it('shares one storage probe among callers within the cache period', bounded, async () => {
    let probes = 0;
    const counting = async (dataDir: string): Promise<Storage> => {
      const storage = new FsStorage({ root: dataDir, logger: silentLogger() });
      await storage.init();
      return new Proxy(storage, {
        get(target, property, receiver) {
          if (property === 'probe')
            return (signal?: AbortSignal) => {
              probes++;
              return target.probe(signal);
            };
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
    };
    // A long cache period, so that the count cannot depend on how fast the machine is.
    await withServer({ storage: counting, hardening: { readyCacheMs: 60_000 } }, async ({ url }) => {
      const first = await Promise.all(Array.from({ length: 20 }, () => raw(url, 'GET', '/.ratchet/ready')));
      for (let i = 0; i < 20; i++) assert.equal((await raw(url, 'GET', '/.ratchet/ready')).status, 200);
      assert.deepEqual(
        first.map((reply) => reply.status),
        first.map(() => 200),
      );
      assert.equal(probes, 1);
    });
    // With no cache period, each call probes: the count above is the cache's doing.
    probes = 0;
    await withServer({ storage: counting, hardening: { readyCacheMs: 0 } }, async ({ url }) => {
      for (let i = 0; i < 3; i++) assert.equal((await raw(url, 'GET', '/.ratchet/ready')).status, 200);
      assert.equal(probes, 3);
    });
  });
});
