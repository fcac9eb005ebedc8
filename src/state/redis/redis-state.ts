/**
 * The shared state store of several instances (--state redis://HOST:PORT[/DB]): one ioredis
 * connection that fails fast while Redis is away (no offline queue, one attempt per command,
 * a short command timeout) and reconnects on its own, so that requests that need shared state
 * get 503 at once instead of hanging, and recovery needs no restart.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RatchetError } from '../../errors.ts';

/** Every key Ratchet writes starts with this, so one Redis can serve other programs too. */
export const keyPrefix = 'ratchet:';

const commandTimeoutMs = 2_000;
const connectTimeoutMs = 2_000;
const longestReconnectMs = 2_000;

export interface RedisLocation {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  /** From the URL's user part; never logged. */
  readonly password: string | undefined;
  readonly username: string | undefined;
}

/** Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`; throws a message fit for the user. */
export function parseRedisUrl(text: string): RedisLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a URL: use redis://HOST:PORT[/DB]`);
  }
  if (url.protocol !== 'redis:') throw new Error(`only redis:// URLs are supported (redis://HOST:PORT[/DB])`);
  if (url.hostname === '') throw new Error('the URL names no host (redis://HOST:PORT[/DB])');
  if (url.search !== '' || url.hash !== '') throw new Error('the URL takes no query or fragment');
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d{1,2}$/.test(dbText)) throw new Error(`database "${dbText}" is not a number`);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    db: dbText === '' ? 0 : Number(dbText),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
  };
}

/** The location as it may be logged: without the password. */
export function describeRedis(location: RedisLocation): string {
  const host = location.host.includes(':') ? `[${location.host}]` : location.host;
  return `redis://${host}:${location.port}/${location.db}`;
}

export class RedisState {
  readonly client: Redis;
  readonly where: string;
  private readonly logger: Logger;
  private up = false;
  /** The id this instance announced: put back after a Redis restart, so instances still agree. */
  #stateId: string | undefined;

  constructor(location: RedisLocation, logger: Logger) {
    this.logger = logger;
    this.where = describeRedis(location);
    this.client = new Redis({
      host: location.host,
      port: location.port,
      db: location.db,
      password: location.password,
      username: location.username,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      connectTimeout: connectTimeoutMs,
      retryStrategy: (attempt) => Math.min(attempt * 200, longestReconnectMs),
      lazyConnect: true,
    });
    this.client.on('ready', () => {
      if (!this.up) this.logger.info({ state: this.where }, 'shared state: connected');
      this.up = true;
      if (this.#stateId !== undefined)
        void this.client.set(`${keyPrefix}state-id`, this.#stateId, 'NX').catch(() => undefined);
    });
    // Without a listener an 'error' event would end the process; the reconnects go on.
    this.client.on('error', (err: Error) => {
      if (this.up) this.logger.error({ state: this.where, err: err.message }, 'shared state: lost');
      this.up = false;
    });
    this.client.on('close', () => {
      if (this.up) this.logger.error({ state: this.where }, 'shared state: connection closed');
      this.up = false;
    });
  }

  /** Connects, waiting at most a few seconds: the server starts either way and recovers later. */
  async start(): Promise<void> {
    await this.client.connect().catch((err: unknown) => {
      this.logger.error(
        { state: this.where, err: err instanceof Error ? err.message : String(err) },
        'shared state: not reachable at start; requests that need it get 503 until it is',
      );
    });
  }

  /** True while commands can be sent. */
  ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Throws UNAVAILABLE unless the store answers a PING now (readiness). */
  async probe(): Promise<void> {
    await unavailableUnlessAnswered(this.client.ping());
  }

  /**
   * This Redis's id: a random value stored once (SET NX), the same for every client of this
   * Redis and database; undefined while Redis does not answer.
   */
  async stateId(): Promise<string | undefined> {
    try {
      await this.client.set(`${keyPrefix}state-id`, this.#stateId ?? randomUUID(), 'NX');
      this.#stateId = (await this.client.get(`${keyPrefix}state-id`)) ?? undefined;
      return this.#stateId;
    } catch {
      return undefined;
    }
  }

  /** Closes the connection (QUIT when connected, so Redis sees a clean goodbye). */
  async close(): Promise<void> {
    if (this.ready()) await this.client.quit().catch(() => undefined);
    else this.client.disconnect(false);
  }
}

/**
 * The command's answer, or UNAVAILABLE (503, Retry-After) when Redis did not give one. The cause
 * is not attached: the connection's loss is logged once when it happens, not with every request.
 */
export async function unavailableUnlessAnswered<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch {
    throw stateUnavailable();
  }
}

/** What a request that needs the shared state gets while Redis is out of reach. */
export function stateUnavailable(): RatchetError {
  return new RatchetError(
    'UNAVAILABLE',
    'the shared state store (Redis) is not reachable; try again shortly',
    {
      headers: { 'Retry-After': '2' },
    },
  );
}

/**
 * A Lua script sent once and then run by its SHA-1 (EVALSHA): every login and rate-limited
 * request runs one, and sending the body each time made Redis hash it again. A Redis that lost
 * its script cache (a restart) answers NOSCRIPT, and the body is sent again with EVAL.
 */
export class LuaScript {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      return redis.eval(this.#source, keys.length, ...keys, ...args);
    }
  }
}
