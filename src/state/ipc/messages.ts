/**
 * The messages between a worker and the primary process (--workers) over node:cluster's IPC
 * channel. A worker calls the state the primary hosts (usage and quota holds, the login
 * throttle, rate limit buckets, job leases, the metrics of every worker) and the primary answers
 * each call once; the primary also pushes what every worker must know at once (throttle blocks)
 * and controls the worker's life (reload users, stop).
 */
import type { ErrorCode } from '../../errors.ts';

/** What the primary hosts, by name. */
export type CallTarget = 'usage' | 'throttle' | 'buckets' | 'lease' | 'metrics';

export interface CallMessage {
  readonly type: 'ratchet:call';
  readonly id: number;
  readonly target: CallTarget;
  readonly method: string;
  readonly args: readonly unknown[];
}

export interface ReplyMessage {
  readonly type: 'ratchet:reply';
  readonly id: number;
  readonly value?: unknown;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
}

/** A login throttle block that started (until > 0) or was lifted (until = 0). */
export interface BlockNotice {
  readonly table: string;
  readonly key: string;
  readonly until: number;
  /** When the entry is forgotten (a window after the block ends): until then it answers `until`. */
  readonly expires: number;
}

export interface PushMessage {
  readonly type: 'ratchet:blocks';
  readonly blocks: readonly BlockNotice[];
}

/** From the primary: do something and say when it is done (`done` with the same id). */
export interface ControlMessage {
  readonly type: 'ratchet:control';
  readonly id: number;
  readonly op: 'reload-users' | 'stop';
}

/** From the primary: send this process's metrics (prom-client's JSON form) for the sum. */
export interface CollectMessage {
  readonly type: 'ratchet:collect';
  readonly id: number;
}

/** From a worker: its listeners are bound, a control request is done, its metrics. */
export type WorkerStatus =
  | {
      readonly type: 'ratchet:listening';
      readonly addresses: readonly unknown[];
      readonly maxRoles: readonly string[];
      readonly secure: readonly boolean[];
    }
  | { readonly type: 'ratchet:done'; readonly id: number }
  | { readonly type: 'ratchet:collected'; readonly id: number; readonly metrics: unknown };

export type ToWorker = ReplyMessage | PushMessage | ControlMessage | CollectMessage;
export type ToPrimary = CallMessage | WorkerStatus;

/** True for a message of this protocol (node:cluster and prom-client send their own too). */
export function isRatchetMessage(message: unknown): message is { readonly type: string } {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('ratchet:')
  );
}
