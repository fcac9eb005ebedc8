/** Bad input and failures: aborted uploads, storage faults, no stack traces, no partial objects. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.ts';
import { blob, raw, upload } from '../helpers/http.ts';
import { filesUnder, tempFilesUnder } from '../helpers/files.ts';
import { waitFor } from '../helpers/wait.ts';
import { serverForSuite } from './operations-helpers.ts';

const filesIn = async (dir: string): Promise<string[]> => (await filesUnder(dir)).map((f) => f.file);

describe('robustness', () => {
  const server = serverForSuite();

  before(async () => {
    await raw(server.url, 'POST', '/r/?create=true');
  });

  it('keeps nothing, not even a temporary file, when the client disconnects mid-upload', async () => {
    const { data, name } = blob(4 << 20);
    const port = Number(new URL(server.url).port);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `POST /r/data/${name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\n\r\n`,
        );
        socket.write(data.subarray(0, 1 << 20), () => {
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 100);
        });
      });
      socket.on('error', reject);
    });
    const repoDir = path.join(server.dataDir, 'r');
    await waitFor(async () => (await filesIn(repoDir)).length === 0, 'the partial upload to go', 5000).catch(
      () => undefined,
    );
    assert.deepEqual(await filesIn(repoDir), []);
    assert.equal((await raw(server.url, 'HEAD', `/r/data/${name}`)).status, 404);
    // The server is still serving.
    assert.equal((await upload(server.url, '/r/', 'data', data)).status, 200);
  });

  it('answers 400 for a malformed Content-Length and stores nothing', async () => {
    const { name } = blob(10);
    const port = Number(new URL(server.url).port);
    const reply = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = connect(port, '127.0.0.1', () => {
        socket.end(`POST /r/keys/${name} HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n`);
      });
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.equal((await raw(server.url, 'HEAD', `/r/keys/${name}`)).status, 404);
  });

  it('handles a body longer than nothing with chunked encoding (curl-style PUT)', async () => {
    const { data, name } = blob(3000);
    const port = Number(new URL(server.url).port);
    const reply = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `PUT /r/index/${name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n` +
            `${data.length.toString(16)}\r\n${data.toString('latin1')}\r\n0\r\n\r\n`,
          'latin1',
        );
      });
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.ok((await raw(server.url, 'GET', `/r/index/${name}`)).body.equals(data));
  });

  it('leaves no temporary files behind after many failed uploads', async () => {
    for (let i = 0; i < 20; i++) {
      const { data } = blob(1000 + i);
      assert.equal((await upload(server.url, '/r/', 'data', data, blob(1).name)).status, 400);
    }
    assert.deepEqual(await tempFilesUnder(server.dataDir), []);
  });
});

describe('unexpected storage faults', () => {
  const secret = 'EIO: secret detail /srv/backups/alice';
  class FaultyStorage extends MemoryStorage {
    override stat(): Promise<number | undefined> {
      return Promise.reject(new Error(secret));
    }
    override read(): Promise<never> {
      return Promise.reject(new Error(secret));
    }
  }
  const server = serverForSuite({ storage: new FaultyStorage() });

  it('answers 500 with a generic message, without the detail or a stack trace', async () => {
    const get = await raw(server.url, 'GET', `/r/keys/${blob(1).name}`, { headers: { Range: 'bytes=0-' } });
    assert.equal(get.status, 500);
    assert.equal(get.body.toString(), 'internal server error\n');
    const head = await raw(server.url, 'HEAD', '/r/config');
    assert.equal(head.status, 500);
    assert.equal(head.body.length, 0);
  });
});
