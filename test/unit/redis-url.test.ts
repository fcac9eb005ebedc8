/** --state URLs: what parses, what is refused with a message, and what may be logged. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRedis, parseRedisUrl } from '../../src/state/redis/redis-state.ts';

describe('--state redis:// URLs', () => {
  it('parses host, port, database and credentials', () => {
    assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6380/2'), {
      host: '127.0.0.1',
      port: 6380,
      db: 2,
      password: undefined,
      username: undefined,
    });
    const location = parseRedisUrl('redis://ratchet:s%40cret@[::1]');
    assert.equal(location.host, '::1');
    assert.equal(location.port, 6379, 'the default port');
    assert.equal(location.db, 0);
    assert.equal(location.password, 's@cret');
    assert.equal(location.username, 'ratchet');
  });

  it('logs the location without its password', () => {
    const text = describeRedis(parseRedisUrl('redis://:hunter2@redis.internal:6379/1'));
    assert.equal(text, 'redis://redis.internal:6379/1');
  });

  it('refuses other schemes, a missing host, a bad database and queries', () => {
    assert.throws(() => parseRedisUrl('http://127.0.0.1:6379'), /only redis:\/\//);
    assert.throws(() => parseRedisUrl('127.0.0.1:6379'), /redis:\/\//);
    assert.throws(() => parseRedisUrl('redis://127.0.0.1/db1'), /not a number/);
    assert.throws(() => parseRedisUrl('redis://127.0.0.1/?timeout=1'), /no query/);
  });
});
