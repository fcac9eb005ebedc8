/**
 * Job leases in Redis (see JobLease): one key per job and storage served, holding the holder's
 * id, with a TTL. Instances of another storage on the same Redis hold their own leases.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';
import type { JobLease } from '../job-lease.ts';
import { keyPrefix, LuaScript } from './redis-state.ts';

// KEYS: lease; ARGV: id, ttlMs. Takes a free lease or renews ours; 1 when held.
const holdScript = new LuaScript(`
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
`);

// KEYS: lease; ARGV: id. Deletes the lease only if it is ours.
const releaseScript = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

export class RedisJobLease implements JobLease {
  /** This instance, as the leases name it (host, process and a random part). */
  readonly id = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #held = new Set<string>();

  /** `namespace` names the storage served (as the usage store's does). */
  constructor(redis: Redis, namespace: string) {
    this.#redis = redis;
    this.#prefix = `${keyPrefix}lease:${namespace}:`;
  }

  async holds(job: string, ttlMs: number): Promise<boolean> {
    try {
      const held = (await holdScript.run(this.#redis, [this.#prefix + job], [this.id, ttlMs])) === 1;
      if (held) this.#held.add(job);
      else this.#held.delete(job);
      return held;
    } catch {
      // Redis away: nobody can prove they hold the lease, so nobody runs the pass.
      return false;
    }
  }

  async releaseAll(): Promise<void> {
    const jobs = [...this.#held];
    this.#held.clear();
    await Promise.all(
      jobs.map((job) =>
        releaseScript.run(this.#redis, [this.#prefix + job], [this.id]).catch(() => undefined),
      ),
    );
  }
}
