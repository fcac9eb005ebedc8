/**
 * The per-user rate and bandwidth buckets in Redis, shared by every instance: one Lua script per
 * take or borrow (atomic on the server), a bucket is a hash that expires once it would be full
 * again (a missing bucket is a full one), times come from the caller.
 */
import type { Redis } from 'ioredis';
import type { BucketStore, TakeResult } from '../bucket-store.ts';
import { keyPrefix, LuaScript, unavailableUnlessAnswered } from './redis-state.ts';

// KEYS: bucket; ARGV: cost, rate, burst, now, borrow (1: go into debt). Returns {allowed, waitMs}.
const takeScript = new LuaScript(`
local k = KEYS[1]
local cost, rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local borrow = ARGV[5] == '1'
local e = redis.call('HMGET', k, 't', 'u')
local tokens, updated = tonumber(e[1]), tonumber(e[2])
if tokens == nil or updated == nil then tokens, updated = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - updated) / 1000 * rate)
local allowed, wait = 1, 0
if borrow then
  tokens = tokens - cost
  if tokens < 0 then wait = -tokens / rate * 1000 end
elseif tokens >= cost then
  tokens = tokens - cost
else
  allowed, wait = 0, (cost - tokens) / rate * 1000
end
redis.call('HSET', k, 't', tostring(tokens), 'u', now)
redis.call('PEXPIRE', k, math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(wait)}
`);

const scanCount = 500;

/** Token buckets by key in Redis (see BucketStore). */
export class RedisBucketStore implements BucketStore<false> {
  readonly #redis: Redis;
  readonly #prefix = `${keyPrefix}bucket:`;

  constructor(redis: Redis) {
    this.#redis = redis;
  }

  async take(key: string, cost: number, rate: number, burst: number, now: number): Promise<TakeResult> {
    const [allowed, wait] = await this.#run(key, cost, rate, burst, now, false);
    return { allowed: allowed === 1, waitMs: allowed === 1 ? 0 : wait };
  }

  async borrow(key: string, cost: number, rate: number, burst: number, now: number): Promise<number> {
    const [, wait] = await this.#run(key, cost, rate, burst, now, true);
    return wait;
  }

  /** Forgets every bucket (the rules were reloaded), in batches. */
  async clear(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await unavailableUnlessAnswered(
        this.#redis.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', scanCount),
      );
      if (keys.length > 0) await unavailableUnlessAnswered(this.#redis.unlink(...keys));
      cursor = next;
    } while (cursor !== '0');
  }

  async #run(
    key: string,
    cost: number,
    rate: number,
    burst: number,
    now: number,
    borrow: boolean,
  ): Promise<[number, number]> {
    const answer = (await unavailableUnlessAnswered(
      takeScript.run(this.#redis, [this.#prefix + key], [cost, rate, burst, now, borrow ? '1' : '0']),
    )) as [number, string];
    return [Number(answer[0]), Number(answer[1])];
  }
}
