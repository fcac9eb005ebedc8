/**
 * Runs the pure-JavaScript crypt schemes (SHA-crypt, MD5-crypt) on a worker thread. They are
 * synchronous and slow (about 20 ms for SHA-crypt's default 5000 rounds here, far more with
 * `rounds=`), so on the event loop every login would stall all transfers. bcrypt needs no worker:
 * its native code already runs on libuv's pool.
 */
import { Worker } from 'node:worker_threads';
import type { CryptEngine, CryptKind } from './verifiers.ts';

// Plain JavaScript evaluated in the worker, so it runs the same from src (under tsx) and dist:
// a worker does not inherit tsx's loader. The libraries are imported by resolved URL.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
Promise.all([import(workerData.sha), import(workerData.md5)]).then(([sha, md5]) => {
  const md5Crypt = md5.default;
  parentPort.on('message', ({ id, kind, password, setting }) => {
    let result = '';
    try {
      result = kind === 'sha' ? sha.encrypt(password, setting) : md5Crypt(password, setting);
    } catch {
      // An unusable setting verifies nothing; the caller compares against '' and fails.
    }
    parentPort.postMessage({ id, result });
  });
});
`;

interface Pending {
  resolve(value: string): void;
  reject(err: Error): void;
}

/** A lazily started worker thread computing crypt hashes; idle, it does not keep the process alive. */
export class CryptWorker implements CryptEngine {
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  /** Computes crypt(password, setting) on the worker. */
  crypt(kind: CryptKind, password: string, setting: string): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('crypt worker is closed'));
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise<string>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Referenced only while work is pending, so a CLI awaiting a result is kept alive.
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ id, kind, password, setting });
    });
  }

  /** Stops the worker; pending computations fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
    this.#failAll(new Error('crypt worker is closed'));
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { sha: import.meta.resolve('unixcrypt'), md5: import.meta.resolve('apache-md5') },
      // Node options such as --import tsx are for the main thread only.
      execArgv: [],
    });
    worker.unref();
    worker.on('message', (message: { id: number; result: string }) => {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (this.#pending.size === 0) worker.unref();
      pending.resolve(message.result);
    });
    const fail = (err: Error): void => {
      if (this.#worker === worker) this.#worker = undefined;
      this.#failAll(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`crypt worker exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  #failAll(err: Error): void {
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}
