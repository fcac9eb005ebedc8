/** A loopback redis-server and a connected RedisState for one test file (started before, stopped after). */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { silentLogger } from '../../src/log/logger.ts';
import { parseRedisUrl, RedisState } from '../../src/state/redis/redis-state.ts';
import { startRedis } from '../../bench/redis-server.ts';
import type { RedisServer } from '../../bench/redis-server.ts';

export interface TestRedis {
  /** The redis-server (stop and start it again to test outages). */
  readonly server: RedisServer;
  /** A connection to it, as a server's --state has. */
  readonly state: RedisState;
}

/** Registers the file's before and after hooks; the answer's fields are set once `before` ran. */
export function useRedis(): TestRedis {
  const fixture = {} as { server: RedisServer; state: RedisState };
  before(async () => {
    fixture.server = await startRedis();
    fixture.state = new RedisState(parseRedisUrl(fixture.server.url), silentLogger());
    await fixture.state.start();
    assert.ok(fixture.state.ready(), 'connected to the test redis-server');
  });
  after(async () => {
    // Optional: a failed `before` leaves them unset, and its error is the one to see.
    await (fixture.state as RedisState | undefined)?.close();
    await (fixture.server as RedisServer | undefined)?.stop();
  });
  return fixture;
}
