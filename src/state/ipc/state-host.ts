/**
 * The deciding state of a server with several workers on one machine (--workers without
 * --state), hosted in the primary process: usage and quota holds, the login throttle's tables,
 * the rate limit buckets and the job leases, each the in-memory store a single process uses.
 * The primary handles one call at a time, so every call is one atomic step for all workers, as
 * a Lua script is in Redis. A worker that dies takes nothing with it: its holds are released
 * and its leases freed at once (its replacement counts nothing twice: the counts live here).
 */
import type { Logger } from 'pino';
import { RatchetError } from '../../errors.ts';
import { defaultThrottleOptions } from '../../auth/throttle.ts';
import { MemoryUsageStore } from '../../usage/usage-store.ts';
import type { Reserved } from '../../usage/usage-store.ts';
import { MemoryBucketStore } from '../memory-bucket-store.ts';
import { MemoryThrottleStore } from '../memory-throttle-store.ts';
import type { BlockNotice, CallMessage, ToWorker } from './messages.ts';

/** A worker as the host sees it: an id and a way to send it a message. */
export interface WorkerPort {
  readonly id: number;
  send(message: ToWorker): void;
}

// The arguments come from a worker of this build (the same code), so each method names their types.
type Args = readonly [never, never, never, never, never, never];
type Method = (worker: number, args: Args) => unknown;

const throttleTables = ['addresses', 'pairs', 'users'] as const;
type ThrottleTable = (typeof throttleTables)[number];

export class StateHost {
  readonly #usage = new MemoryUsageStore();
  /** Moves whenever a report would change, so a worker's copy is fetched again only then. */
  #version = 0;
  readonly #holdsOf = new Map<number, Set<string>>();
  readonly #throttle = new Map<ThrottleTable, MemoryThrottleStore>(
    throttleTables.map((table) => [table, new MemoryThrottleStore(defaultThrottleOptions.maxEntries)]),
  );
  /** Blocks in force, pushed to every worker so that a blocked client is refused without a call. */
  readonly #blocks = new Map<string, BlockNotice>();
  readonly #buckets = new MemoryBucketStore();
  readonly #leases = new Map<string, { holder: number; until: number }>();
  readonly #workers = new Map<number, WorkerPort>();
  readonly #methods: Record<string, Record<string, Method>>;
  readonly #logger: Logger;
  readonly #renderMetrics: (() => Promise<string>) | undefined;

  constructor(logger: Logger, renderMetrics?: () => Promise<string>) {
    this.#logger = logger;
    this.#renderMetrics = renderMetrics;
    this.#methods = {
      usage: this.#usageMethods(),
      throttle: this.#throttleMethods(),
      buckets: {
        take: (_, [key, cost, rate, burst, now]) => this.#buckets.take(key, cost, rate, burst, now),
        borrow: (_, [key, cost, rate, burst, now]) => this.#buckets.borrow(key, cost, rate, burst, now),
        clear: () => this.#buckets.clear(),
      },
      lease: {
        holds: (worker, [job, ttlMs]) => this.#holdLease(worker, job, ttlMs),
        releaseAll: (worker) => this.#releaseLeases(worker),
      },
      metrics: {
        render: () => {
          if (this.#renderMetrics === undefined) throw new RatchetError('NOT_FOUND', 'metrics are off');
          return this.#renderMetrics();
        },
      },
    };
  }

  /** A worker joined: it hears of every block from now on (and asks for those in force). */
  attach(worker: WorkerPort): void {
    this.#workers.set(worker.id, worker);
  }

  /** A worker is gone: its holds are given back and its leases freed. */
  detach(worker: number): void {
    this.#workers.delete(worker);
    const holds = this.#holdsOf.get(worker);
    this.#holdsOf.delete(worker);
    if (holds !== undefined && holds.size > 0) {
      this.#usage.release([...holds]);
      this.#logger.info({ worker, holds: holds.size }, 'released the quota holds of a worker that stopped');
    }
    this.#releaseLeases(worker);
  }

  /** Answers one call from a worker (errors go back as their code and message). */
  async handle(worker: WorkerPort, call: CallMessage): Promise<void> {
    try {
      const method = this.#methods[call.target]?.[call.method];
      if (method === undefined)
        throw new RatchetError('INTERNAL', `unknown call ${call.target}.${call.method}`);
      const value = await method(worker.id, call.args as unknown as Args);
      worker.send({ type: 'ratchet:reply', id: call.id, value });
    } catch (err) {
      const known = err instanceof RatchetError;
      if (!known)
        this.#logger.error({ err, call: `${call.target}.${call.method}` }, 'a shared state call failed');
      const error = known
        ? { code: err.code, message: err.message }
        : { code: 'INTERNAL' as const, message: 'the shared state failed' };
      worker.send({ type: 'ratchet:reply', id: call.id, error });
    }
  }

  #usageMethods(): Record<string, Method> {
    const usage = this.#usage;
    const changed = <T>(value: T): T => {
      this.#version++;
      return value;
    };
    return {
      counted: () => usage.counted(),
      startCount: () => usage.startCount(),
      markCounted: () => changed(usage.markCounted()),
      clock: () => usage.clock(),
      knows: (_, [repo]) => usage.knows(repo),
      add: (_, [repo, change]) => changed(usage.add(repo, change)),
      replace: (_, [repo, numbers, since]) => changed(usage.replace(repo, numbers, since)),
      forget: (_, [repo, since]) => changed(usage.forget(repo, since)),
      full: (_, [holds, amount]) => usage.full(holds, amount),
      reserve: (worker, [holds, amount]) => {
        const reserved: Reserved = usage.reserve(holds, amount);
        if (reserved.id !== undefined) this.#holdsFor(worker).add(reserved.id);
        return reserved;
      },
      release: (worker, [ids]) => {
        this.#forgetHolds(worker, ids);
        usage.release(ids);
      },
      settle: (worker, [ids, repo, change]) => {
        this.#forgetHolds(worker, ids);
        return changed(usage.settle(ids, repo, change));
      },
      // The reports' copy: undefined when nothing changed since the version the worker has.
      snapshot: (_, [version]) =>
        version === this.#version
          ? undefined
          : { version: this.#version, counted: usage.counted(), repos: [...usage.repos()] },
    };
  }

  #throttleMethods(): Record<string, Method> {
    const table = (name: ThrottleTable): MemoryThrottleStore => {
      const store = this.#throttle.get(name);
      if (store === undefined) throw new RatchetError('INTERNAL', `unknown throttle table ${String(name)}`);
      return store;
    };
    return {
      fail: (_, [name, key, now, windowMs]) => table(name).fail(key, now, windowMs),
      block: (_, [name, key, now, until, seenBlocks, windowMs]) => {
        const started = table(name).block(key, now, until, seenBlocks, windowMs);
        if (started) this.#pushBlock(startedBlock(name, key, until, windowMs), now);
        return started;
      },
      failures: (_, [name, key, now, windowMs]) => table(name).failures(key, now, windowMs),
      blockedUntil: (_, [name, key, now]) => table(name).blockedUntil(key, now),
      clear: (_, [name, key]) => {
        table(name).clear(key);
        if (this.#blocks.has(blockId(name, key)))
          this.#pushBlock({ table: name, key, until: 0, expires: 0 }, Date.now());
      },
      size: (_, [name]) => table(name).size(),
      // A worker's starting copy; later changes reach it as pushes, in order after this answer.
      blocks: (_, [name]) => {
        const now = Date.now();
        return [...this.#blocks.values()].filter((block) => block.table === name && block.expires > now);
      },
    };
  }

  /** Records a block (or its end) and tells every worker before the caller hears back. */
  #pushBlock(notice: BlockNotice, now: number): void {
    const id = blockId(notice.table, notice.key);
    if (notice.expires > now) this.#blocks.set(id, notice);
    else this.#blocks.delete(id);
    for (const [key, block] of this.#blocks) if (block.expires <= now) this.#blocks.delete(key);
    for (const worker of this.#workers.values()) worker.send({ type: 'ratchet:blocks', blocks: [notice] });
  }

  #holdLease(worker: number, job: string, ttlMs: number): boolean {
    const now = Date.now();
    const lease = this.#leases.get(job);
    if (lease !== undefined && lease.holder !== worker && lease.until > now) return false;
    this.#leases.set(job, { holder: worker, until: now + ttlMs });
    return true;
  }

  #releaseLeases(worker: number): void {
    for (const [job, lease] of this.#leases) if (lease.holder === worker) this.#leases.delete(job);
  }

  #holdsFor(worker: number): Set<string> {
    let holds = this.#holdsOf.get(worker);
    if (holds === undefined) this.#holdsOf.set(worker, (holds = new Set()));
    return holds;
  }

  #forgetHolds(worker: number, ids: readonly string[]): void {
    const holds = this.#holdsOf.get(worker);
    if (holds !== undefined) for (const id of ids) holds.delete(id);
  }
}

function blockId(table: string, key: string): string {
  return `${table}\u0000${key}`;
}

/** The notice of a block that started: the entry is kept a window after the block ends. */
function startedBlock(table: string, key: string, until: number, windowMs: number): BlockNotice {
  return { table, key, until, expires: until + windowMs };
}
