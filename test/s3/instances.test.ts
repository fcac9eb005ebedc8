/**
 * Servers announce themselves on an S3 prefix: without --state a second server on the same
 * prefix is refused with a message naming --state, while a server restarted after a crash
 * (same host, same --path) recognises its own heartbeat and starts at once. With --state a
 * server joins only others that run with the same Redis (quotas included: they are shared).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runRatchet, startRatchetServer, withTempDir } from '../helpers/ratchet-process.ts';
import { startRedis } from '../../bench/redis-server.ts';
import { freshPrefix, keysUnder, removePrefix, s3Gateway } from '../helpers/s3.ts';

describe('instances on one S3 prefix', { timeout: 120_000 }, () => {
  const gateway = s3Gateway();
  const prefix = freshPrefix('instances');
  after(() => removePrefix(`${prefix}/`));
  const args = (folder: string): string[] => [
    ...['--path', folder, '--listen', '127.0.0.1:0', '--no-auth'],
    ...['--storage', `s3://${gateway.bucket}/${prefix}`, '--s3-endpoint', gateway.endpoint],
    ...['--s3-region', gateway.region],
  ];

  it('refuses a second server without --state, and lets a crashed one restart at once', async () => {
    await withTempDir(async (dir) => {
      const first = await startRatchetServer(args(path.join(dir, 'first')));
      first.child.kill('SIGKILL');
      await once(first.child, 'exit');
      // Its heartbeat is still there and fresh: the same --path on this host is the same instance.
      assert.equal((await keysUnder(`${prefix}/.ratchet/instances/`)).length, 1);
      const again = await startRatchetServer(args(path.join(dir, 'first')));
      try {
        const second = await runRatchet(args(path.join(dir, 'second')));
        assert.equal(second.code, 1, second.stderr);
        assert.match(
          second.stderr,
          /another Ratchet instance serves s3:\/\/.*: .* \(\d+ s ago\); .*--state redis:\/\//,
        );
      } finally {
        assert.equal(await again.stop(), 0);
      }
      assert.deepEqual(
        await keysUnder(`${prefix}/.ratchet/instances/`),
        [],
        'a clean stop removes the heartbeat',
      );
    });
  });

  it('joins only servers that share its Redis, quotas and all', async () => {
    const redis = await startRedis();
    const otherRedis = await startRedis();
    try {
      await withTempDir(async (dir) => {
        const quota = ['--max-size', '1GiB'];
        const alone = await startRatchetServer([...args(path.join(dir, 'alone')), ...quota]);
        try {
          const joining = await runRatchet([...args(path.join(dir, 'joining')), '--state', redis.url]);
          assert.equal(joining.code, 1, joining.stderr);
          assert.match(joining.stderr, /several instances must share their state .*--state redis:\/\//);
        } finally {
          assert.equal(await alone.stop(), 0);
        }
        const first = await startRatchetServer([
          ...args(path.join(dir, 'first')),
          ...quota,
          '--state',
          redis.url,
        ]);
        try {
          const stranger = await runRatchet([...args(path.join(dir, 'stranger')), '--state', otherRedis.url]);
          assert.equal(stranger.code, 1, stranger.stderr);
          assert.match(stranger.stderr, /use\(s\) another Redis/);
          const second = await startRatchetServer([
            ...args(path.join(dir, 'second')),
            ...quota,
            '--state',
            redis.url,
          ]);
          assert.equal(await second.stop(), 0);
        } finally {
          assert.equal(await first.stop(), 0);
        }
      });
    } finally {
      await Promise.all([redis.stop(), otherRedis.stop()]);
    }
  });
});
