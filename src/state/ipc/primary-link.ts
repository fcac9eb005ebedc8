/**
 * A worker's line to the primary process (--workers): calls to the state the primary hosts, the
 * blocks it pushes and its control requests. The primary is on the same machine and answers
 * from memory, so an answer that takes longer than the timeout means it is gone or stuck: the
 * call fails with UNAVAILABLE (503) rather than deciding without the shared state.
 */
import { RatchetError } from '../../errors.ts';
import type {
  BlockNotice,
  CallTarget,
  CollectMessage,
  ControlMessage,
  ReplyMessage,
  ToPrimary,
} from './messages.ts';
import { isRatchetMessage } from './messages.ts';

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const callTimeoutMs = 10_000;

/** How messages travel between a worker and its primary: node:cluster's IPC channel by default. */
export interface LinkChannel {
  /** Sends a message; `failed` is called if it could not be sent (the primary is gone). */
  send(message: ToPrimary, failed: () => void): void;
  onMessage(listener: (message: unknown) => void): void;
  onDisconnect(listener: () => void): void;
}

/** This worker process's IPC channel to its primary. */
export const processChannel: LinkChannel = {
  send: (message, failed) => {
    if (process.send === undefined) return failed();
    process.send(message, undefined, undefined, (err: Error | null) => {
      if (err !== null) failed();
    });
  },
  onMessage: (listener) => process.on('message', listener),
  onDisconnect: (listener) => process.on('disconnect', listener),
};

export class PrimaryLink {
  #next = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #blockListeners: ((blocks: readonly BlockNotice[]) => void)[] = [];
  #control: ((message: ControlMessage) => Promise<void>) | undefined;
  /** Requests that came before the handler (a stop while this worker was starting). */
  readonly #early: ControlMessage[] = [];
  #collect: (() => Promise<unknown>) | undefined;
  #closed = false;
  readonly #channel: LinkChannel;

  constructor(channel: LinkChannel = processChannel) {
    this.#channel = channel;
    channel.onMessage((message: unknown) => {
      if (!isRatchetMessage(message)) return;
      if (message.type === 'ratchet:reply') this.#settle(message as ReplyMessage);
      else if (message.type === 'ratchet:blocks') {
        const { blocks } = message as unknown as { blocks: readonly BlockNotice[] };
        for (const listener of this.#blockListeners) listener(blocks);
      } else if (message.type === 'ratchet:control') void this.#answerControl(message as ControlMessage);
      else if (message.type === 'ratchet:collect') void this.#answerCollect((message as CollectMessage).id);
    });
    channel.onDisconnect(() => {
      this.#closed = true;
      for (const pending of this.#pending.values()) pending.reject(this.#unavailable());
      this.#pending.clear();
    });
  }

  /** True once the primary is gone (the IPC channel closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls a method of a store the primary hosts. */
  call<T>(target: CallTarget, method: string, args: readonly unknown[] = []): Promise<T> {
    if (this.#closed) return Promise.reject(this.#unavailable());
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(this.#unavailable());
      }, callTimeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.send({ type: 'ratchet:call', id, target, method, args });
    });
  }

  /** Sends a message to the primary (dropped once it is gone). */
  send(message: ToPrimary): void {
    if (this.#closed) return;
    this.#channel.send(message, () => (this.#closed = true));
  }

  /** Calls `listener` with every batch of throttle blocks the primary pushes. */
  onBlocks(listener: (blocks: readonly BlockNotice[]) => void): void {
    this.#blockListeners.push(listener);
  }

  /** Handles the primary's control requests; the primary hears when each is done. */
  onControl(handler: (message: ControlMessage) => Promise<void>): void {
    this.#control = handler;
    for (const message of this.#early.splice(0)) void this.#answerControl(message);
  }

  /** Gives the primary this process's metrics when it sums every worker's for a scrape. */
  onCollect(collect: () => Promise<unknown>): void {
    this.#collect = collect;
  }

  async #answerCollect(id: number): Promise<void> {
    const metrics = await this.#collect?.().catch(() => undefined);
    this.send({ type: 'ratchet:collected', id, metrics: metrics ?? [] });
  }

  #settle(reply: ReplyMessage): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.error === undefined) pending.resolve(reply.value);
    else pending.reject(new RatchetError(reply.error.code, reply.error.message));
  }

  async #answerControl(message: ControlMessage): Promise<void> {
    if (this.#control === undefined) {
      this.#early.push(message);
      return;
    }
    await this.#control(message).catch(() => undefined);
    this.send({ type: 'ratchet:done', id: message.id });
  }

  #unavailable(): RatchetError {
    return new RatchetError('UNAVAILABLE', 'the shared state of this server cannot be reached, try again', {
      headers: { 'Retry-After': '1' },
    });
  }
}
