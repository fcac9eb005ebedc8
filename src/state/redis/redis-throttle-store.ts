/**
 * The login throttle's failure counters in Redis, shared by every instance: each operation is
 * one Lua script (atomic on the server), an entry is a hash whose TTL is its expiry, and a
 * sorted set per table (scored by expiry) counts the entries and caps them like the in-memory
 * store, dropping the ones that expire first. Times come from the caller, as in every store.
 */
import type { Redis } from 'ioredis';
import { defaultThrottleOptions, LoginThrottle } from '../../auth/throttle.ts';
import type { FailureRecord, ThrottleStore } from '../throttle-store.ts';
import { keyPrefix, LuaScript, unavailableUnlessAnswered } from './redis-state.ts';

// Reads an entry; `live` is false when there is none or `now` is past its expiry.
const readEntry = `
local k = KEYS[1]
local now = tonumber(ARGV[1])
local e = redis.call('HMGET', k, 'f', 'ws', 'bu', 'b', 'ex')
local f, ws, bu, b, ex = tonumber(e[1]), tonumber(e[2]), tonumber(e[3]), tonumber(e[4]), tonumber(e[5])
local live = f ~= nil and ex ~= nil and now <= ex
`;

const saveEntry = `
local function save(k, index, f, ws, bu, b, ex, now)
  redis.call('HSET', k, 'f', f, 'ws', ws, 'bu', bu, 'b', b, 'ex', ex)
  redis.call('PEXPIRE', k, math.max(1, ex - now))
  redis.call('ZADD', index, ex, k)
end
`;

// KEYS: entry, index; ARGV: now, windowMs, maxEntries
const failScript = new LuaScript(`${readEntry}${saveEntry}
local index = KEYS[2]
local win = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
if not live then f, ws, bu, b = 0, now, 0, 0 end
if now - ws > win then f, ws = 0, now end
f = f + 1
ex = math.max(ws, bu) + win
save(k, index, f, ws, bu, b, ex, now)
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now)
local over = redis.call('ZCARD', index) - cap
if over > 0 then
  for _, old in ipairs(redis.call('ZPOPMIN', index, over)) do
    if _ % 2 == 1 then redis.call('DEL', old) end
  end
end
return {f, bu, b}
`);

// KEYS: entry, index; ARGV: now, until, seenBlocks, windowMs
const blockScript = new LuaScript(`${readEntry}${saveEntry}
local index = KEYS[2]
local untilMs = tonumber(ARGV[2])
local seen = tonumber(ARGV[3])
local win = tonumber(ARGV[4])
if not live or b ~= seen then return 0 end
save(k, index, 0, now, untilMs, b + 1, math.max(now, untilMs) + win, now)
return 1
`);

// KEYS: entry; ARGV: now, windowMs
const failuresScript = new LuaScript(`${readEntry}
local win = tonumber(ARGV[2])
if not live or now - ws > win then return 0 end
return f
`);

// KEYS: entry; ARGV: now
const blockedUntilScript = new LuaScript(`${readEntry}
if not live then return 0 end
return bu
`);

// KEYS: entry, index
const clearScript = new LuaScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return 0
`);

// KEYS: index; ARGV: now
const sizeScript = new LuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
`);

/** One table of the login throttle (addresses, address and user pairs, users) in Redis. */
export class RedisThrottleStore implements ThrottleStore<false> {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #index: string;
  readonly #maxEntries: number;

  constructor(redis: Redis, table: string, maxEntries: number) {
    this.#redis = redis;
    this.#prefix = `${keyPrefix}throttle:${table}:`;
    this.#index = `${keyPrefix}throttle-index:${table}`;
    this.#maxEntries = maxEntries;
  }

  async fail(key: string, now: number, windowMs: number): Promise<FailureRecord> {
    const [failures, blockedUntil, blocks] = (await this.#run(
      failScript,
      [this.#key(key), this.#index],
      [now, windowMs, this.#maxEntries],
    )) as number[];
    return { failures: failures ?? 0, blockedUntil: blockedUntil ?? 0, blocks: blocks ?? 0 };
  }

  async block(
    key: string,
    now: number,
    until: number,
    seenBlocks: number,
    windowMs: number,
  ): Promise<boolean> {
    return (
      (await this.#run(blockScript, [this.#key(key), this.#index], [now, until, seenBlocks, windowMs])) === 1
    );
  }

  async failures(key: string, now: number, windowMs: number): Promise<number> {
    return Number(await this.#run(failuresScript, [this.#key(key)], [now, windowMs]));
  }

  async blockedUntil(key: string, now: number): Promise<number> {
    return Number(await this.#run(blockedUntilScript, [this.#key(key)], [now]));
  }

  async clear(key: string): Promise<void> {
    await this.#run(clearScript, [this.#key(key), this.#index], []);
  }

  async size(): Promise<number> {
    return Number(await this.#run(sizeScript, [this.#index], [Date.now()]));
  }

  #key(key: string): string {
    return this.#prefix + key;
  }

  #run(script: LuaScript, keys: string[], args: number[]): Promise<unknown> {
    return unavailableUnlessAnswered(script.run(this.#redis, keys, args));
  }
}

/** The login throttle with its three tables in Redis (defaults as in one process). */
export function sharedLoginThrottle(redis: Redis): LoginThrottle<false> {
  const { maxEntries } = defaultThrottleOptions;
  return new LoginThrottle<false>(
    {},
    {
      addresses: new RedisThrottleStore(redis, 'addresses', maxEntries),
      pairs: new RedisThrottleStore(redis, 'pairs', maxEntries),
      users: new RedisThrottleStore(redis, 'users', maxEntries),
    },
  );
}
