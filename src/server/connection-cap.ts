/**
 * Caps the open connections per peer address, across all of a server's TCP listeners, so that
 * one client cannot take every file descriptor. Unix-socket connections have no peer address and
 * are not counted (their file permissions guard them), nor are --trusted-proxy peers, which carry
 * many clients. Loopback is not exempt by itself: it would exempt every local user too.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { Counts } from '../util/counts.ts';

/** The open connection counts, shared by the listeners it is attached to. */
export class ConnectionCap {
  readonly #max: number;
  readonly #logger: Logger;
  readonly #open = new Counts();
  readonly #warned = new Set<string>();
  readonly #exempt: (address: string) => boolean;

  /** `exempt` names peers that are not counted (trusted proxies). */
  constructor(max: number, logger: Logger, exempt: (address: string) => boolean = () => false) {
    this.#max = max;
    this.#logger = logger;
    this.#exempt = exempt;
  }

  /** Counts the server's connections; one over the cap is closed before anything is read. */
  attach(server: Server): void {
    // Ahead of the server's own listener, so a refused socket never reaches HTTP or TLS.
    server.prependListener('connection', (socket: Socket) => this.#admit(socket));
  }

  #admit(socket: Socket): void {
    const address = socket.remoteAddress;
    if (address === undefined || this.#exempt(address)) return;
    const key = peerKey(address);
    if (this.#open.get(key) >= this.#max) {
      // One warning per address until its count drops below the cap again.
      if (!this.#warned.has(key)) {
        this.#warned.add(key);
        this.#logger.warn(
          { client: key, max: this.#max },
          'too many connections from one address: refusing more',
        );
      }
      socket.destroy();
      return;
    }
    this.#open.add(key, 1);
    socket.once('close', () => {
      this.#warned.delete(key);
      this.#open.add(key, -1);
    });
  }
}

/** An IPv4 peer on a dual-stack listener counts as the same address as over IPv4. */
function peerKey(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
