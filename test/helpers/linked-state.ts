/**
 * A worker's stores linked to a StateHost in this process: the same classes --workers uses, with
 * messages copied through JSON and delivered on a later turn of the event loop, as node:cluster's
 * IPC channel does between processes.
 */
import { silentLogger } from '../../src/log/logger.ts';
import { isRatchetMessage } from '../../src/state/ipc/messages.ts';
import type { CallMessage } from '../../src/state/ipc/messages.ts';
import { PrimaryLink } from '../../src/state/ipc/primary-link.ts';
import { StateHost } from '../../src/state/ipc/state-host.ts';

let nextWorker = 0;

/** A primary's state host, shared by the workers linked to it. */
export function stateHost(): StateHost {
  return new StateHost(silentLogger());
}

/** A new worker's link to the host; `gone()` is the worker dying (the host detaches it). */
export function linkTo(host: StateHost): { link: PrimaryLink; gone: () => void } {
  const copy = (message: unknown): unknown => JSON.parse(JSON.stringify(message)) as unknown;
  let toWorker: (message: unknown) => void = () => undefined;
  let disconnected: () => void = () => undefined;
  let alive = true;
  const port = {
    id: ++nextWorker,
    send: (message: unknown) => setImmediate(() => alive && toWorker(copy(message))),
  };
  const link = new PrimaryLink({
    send: (message) =>
      setImmediate(() => {
        const sent = copy(message);
        if (alive && isRatchetMessage(sent) && sent.type === 'ratchet:call')
          void host.handle(port, sent as unknown as CallMessage);
      }),
    onMessage: (listener) => (toWorker = listener),
    onDisconnect: (listener) => (disconnected = listener),
  });
  host.attach(port);
  return {
    link,
    gone: () => {
      alive = false;
      host.detach(port.id);
      disconnected();
    },
  };
}
