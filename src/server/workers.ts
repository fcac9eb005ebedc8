/**
 * Several server processes on one machine (--workers N): this primary process forks N workers
 * (node:cluster) that run the whole server on shared listening sockets, and serves no request
 * itself. It does what must happen once: holds the data folder's lock (so no second server
 * starts on it), opens the sockets (systemd's too), hosts the deciding state when there is no
 * --state (state-host.ts), sums the workers' metrics for a scrape, replaces a worker that dies
 * (its quota holds and leases are released at once) and passes SIGHUP and SIGTERM on to all.
 *
 * Connections are handed out by the primary in turn (node:cluster's round-robin) unless
 * NODE_CLUSTER_SCHED_POLICY=none leaves it to the kernel; docs/benchmarks.md has the figures.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/listen-address.ts';
import type { ServerConfig } from '../config/server-config.ts';
import type { Role } from '../access/policy.ts';
import { StateHost } from '../state/ipc/state-host.ts';
import type { WorkerPort } from '../state/ipc/state-host.ts';
import { isRatchetMessage } from '../state/ipc/messages.ts';
import type { CallMessage, ToWorker } from '../state/ipc/messages.ts';
import { removeSocketFile, removeStaleSocket } from './listener.ts';

/** The variable that hands the systemd sockets' descriptors to the workers. */
export const workerFdsVariable = 'RATCHET_LISTEN_FDS';

/** What a worker reports once its listeners are bound. */
export interface WorkerListening {
  readonly type: 'ratchet:listening';
  readonly addresses: readonly ListenAddress[];
  readonly maxRoles: readonly Role[];
  readonly secure: readonly boolean[];
}

export interface RunningWorkers {
  readonly addresses: readonly ListenAddress[];
  readonly maxRoles: readonly Role[];
  readonly secure: readonly boolean[];
  /** The workers' process ids (tests, operators). */
  pids(): number[];
  /** Asks every worker to load the users file again; resolves when all did. */
  reloadUsers(): Promise<void>;
  /** Passes SIGHUP to every worker (each reloads users, certificates and configuration). */
  reload(): void;
  /** Stops every worker gracefully, waits for them to finish their requests, then frees the data folder. */
  close(): Promise<void>;
}

/** A worker dying this soon after it started is failing to start: it is replaced after a pause. */
const quickDeathMs = 10_000;
const restartPauseMs = 2_000;
const metricsTimeoutMs = 5_000;

/** Forks the workers and resolves once every one is listening; rejects if one fails to start. */
export async function startWorkers(
  config: ServerConfig,
  options: { logger: Logger; inheritedFds: readonly number[] },
): Promise<RunningWorkers> {
  const { logger } = options;
  // Before the workers bind: a stale socket file is removed once, here (a worker that finds a
  // live socket at the path finds the primary's own).
  for (const listener of config.listeners)
    if (listener.address.kind === 'unix') await removeStaleSocket(listener.address.path);
  const folder =
    config.storage.kind === 'file'
      ? await (
          await import('../storage/fs/fs-storage.ts')
        ).holdDataFolder({
          root: config.path,
          groupAccessible: config.groupAccessibleRepos,
          logger,
        })
      : undefined;
  const collector = config.prometheus ? await MetricsCollector.create() : undefined;
  const host = new StateHost(logger, collector === undefined ? undefined : () => collector.render(ready));
  const env = { [workerFdsVariable]: options.inheritedFds.join(',') };
  const ready = new Set<Worker>();
  const controls = new Map<number, () => void>();
  let nextControl = 0;
  let stopping = false;
  // Until every first worker listens, a failure stops the start instead of being replaced.
  let running = false;
  let first: WorkerListening | undefined;

  const portOf = (worker: Worker): WorkerPort => ({
    id: worker.id,
    send: (message: ToWorker) => {
      if (worker.isConnected()) worker.send(message);
    },
  });

  /** Forks one worker; resolves when it listens, rejects when it exits before. */
  const fork = (): Promise<Worker> => {
    const worker = cluster.fork(env);
    const port = portOf(worker);
    const started = Date.now();
    host.attach(port);
    return new Promise((resolve, reject) => {
      worker.on('message', (message: unknown) => {
        if (!isRatchetMessage(message)) return;
        if (message.type === 'ratchet:call') void host.handle(port, message as unknown as CallMessage);
        else if (message.type === 'ratchet:listening') {
          first ??= message as unknown as WorkerListening;
          ready.add(worker);
          resolve(worker);
        } else if (message.type === 'ratchet:done')
          controls.get((message as unknown as { id: number }).id)?.();
        else if (message.type === 'ratchet:collected')
          collector?.receive(message as unknown as CollectedMessage);
      });
      worker.on('exit', (code, signal) => {
        ready.delete(worker);
        host.detach(worker.id);
        reject(new Error(`worker ${worker.id} exited during start (${signal ?? `code ${code}`})`));
        if (stopping || !running) return;
        const after = Date.now() - started;
        logger.error(
          { worker: worker.id, pid: worker.process.pid, code, signal },
          'a worker stopped; starting another',
        );
        const replace = (): void => {
          if (stopping) return;
          fork().then(
            (next) => logger.info({ worker: next.id, pid: next.process.pid }, 'worker replaced'),
            (err: unknown) => logger.error({ err: (err as Error).message }, 'a replacement worker failed'),
          );
        };
        setTimeout(replace, after < quickDeathMs ? restartPauseMs : 0);
      });
    });
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker !== undefined);
    const exits = workers.map(
      (worker) =>
        new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))),
    );
    // Asked, not signalled: a worker that had the signal already (systemd signals the whole
    // control group, a terminal the process group) must not take this for a second one.
    // A worker still starting has no request in flight and may not listen to messages yet.
    for (const worker of workers)
      if (ready.has(worker)) portOf(worker).send({ type: 'ratchet:control', id: 0, op: 'stop' });
      else worker.process.kill('SIGTERM');
    // A worker that outlives its own deadline is cut off.
    const cut = setTimeout(
      () => {
        for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
      },
      (config.shutdownTimeout + 10) * 1000,
    );
    await Promise.all(exits);
    clearTimeout(cut);
    await Promise.all(config.listeners.map((listener) => removeSocketFile(listener.address)));
    await folder?.release();
  };

  try {
    await Promise.all(Array.from({ length: config.workers }, fork));
  } catch (err) {
    await stopAll();
    throw err;
  }
  running = true;
  const listening = first as WorkerListening;
  logger.info({ workers: config.workers }, 'workers started');
  return {
    addresses: listening.addresses,
    maxRoles: listening.maxRoles,
    secure: listening.secure,
    pids: () => [...ready].map((worker) => worker.process.pid ?? 0),
    reloadUsers: async () => {
      await Promise.all(
        [...ready].map(
          (worker) =>
            new Promise<void>((resolve) => {
              const id = ++nextControl;
              controls.set(id, () => {
                controls.delete(id);
                resolve();
              });
              worker.once('exit', () => resolve());
              portOf(worker).send({ type: 'ratchet:control', id, op: 'reload-users' });
            }),
        ),
      );
    },
    reload: () => {
      for (const worker of ready) worker.process.kill('SIGHUP');
    },
    close: stopAll,
  };
}

interface CollectedMessage {
  readonly type: 'ratchet:collected';
  readonly id: number;
  readonly metrics: unknown;
}

/** Sums the metrics of every listening worker for one scrape (prom-client's aggregation). */
class MetricsCollector {
  #next = 0;
  readonly #waiting = new Map<number, { parts: unknown[]; left: number; done: () => void }>();
  readonly #aggregate: (parts: unknown[]) => Promise<string>;

  private constructor(aggregate: (parts: unknown[]) => Promise<string>) {
    this.#aggregate = aggregate;
  }

  static async create(): Promise<MetricsCollector> {
    // Loaded only with --prometheus, as in a single process.
    const { AggregatorRegistry } = await import('prom-client');
    return new MetricsCollector((parts) =>
      AggregatorRegistry.aggregate(parts as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics(),
    );
  }

  /** Asks each worker for its metrics; a worker that does not answer in time is left out. */
  async render(workers: ReadonlySet<Worker>): Promise<string> {
    const id = ++this.#next;
    const parts: unknown[] = [];
    const asked = [...workers].filter((worker) => worker.isConnected());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, metricsTimeoutMs);
      this.#waiting.set(id, {
        parts,
        left: asked.length,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      if (asked.length === 0) resolve();
      for (const worker of asked) worker.send({ type: 'ratchet:collect', id });
    });
    this.#waiting.delete(id);
    return this.#aggregate(parts);
  }

  receive(message: CollectedMessage): void {
    const waiting = this.#waiting.get(message.id);
    if (waiting === undefined) return;
    waiting.parts.push(message.metrics);
    if (--waiting.left === 0) waiting.done();
  }
}
