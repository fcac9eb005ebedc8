/**
 * Where the background scrub stands, in Redis (--state): one JSON value per storage served, so
 * that whichever instance holds the scrub's lease goes on from the same position.
 */
import type { Redis } from 'ioredis';
import type { ScrubState, ScrubStateStore } from '../../scrub/background-scrub.ts';
import { keyPrefix, unavailableUnlessAnswered } from './redis-state.ts';

export class RedisScrubState implements ScrubStateStore {
  readonly #redis: Redis;
  readonly #key: string;

  /** `namespace` names the storage served (as the usage store's does). */
  constructor(redis: Redis, namespace: string) {
    this.#redis = redis;
    this.#key = `${keyPrefix}scrub:${namespace}`;
  }

  /** The saved state; a missing or unreadable value is a fresh start. */
  async load(): Promise<ScrubState> {
    const text = await unavailableUnlessAnswered(this.#redis.get(this.#key));
    try {
      const parsed: unknown = JSON.parse(text ?? '{}');
      return typeof parsed === 'object' && parsed !== null ? parsed : {};
    } catch {
      return {};
    }
  }

  async save(state: ScrubState): Promise<void> {
    await unavailableUnlessAnswered(this.#redis.set(this.#key, JSON.stringify(state)));
  }
}
