/**
 * Who a request comes from. Behind a reverse proxy every request arrives from the proxy, so the
 * throttle, the access log and the error log would see one client. Peers named with
 * --trusted-proxy may say who the client is (X-Forwarded-For) and, with --proxy-auth-username,
 * who the user is; nobody else may, or any client could pick its own throttle key or user.
 *
 * The client is the rightmost X-Forwarded-For hop that is not itself a trusted proxy: each proxy
 * appends the address it received the request from, so entries to the left of the first
 * untrusted hop were written by the client and prove nothing.
 */
import { BlockList, isIP } from 'node:net';
import type { HttpRequest } from '../util/http-types.ts';

/** The peers trusted to speak for their clients: addresses and networks, and unix sockets. */
export interface TrustedPeers {
  /** True when --trusted-proxy named at least one peer. */
  readonly configured: boolean;
  /** A peer on a unix-socket listener (it has no address). */
  readonly unix: boolean;
  readonly networks: BlockList;
}

export interface ClientAddress {
  /** The client's address: the resolved one behind a trusted proxy, else the peer's; none on a unix socket. */
  readonly address: string | undefined;
  /** The connection's own peer address (undefined: a unix socket). */
  readonly peer: string | undefined;
  /**
   * May this peer assert the user (--proxy-auth-username)? A trusted proxy; without
   * --trusted-proxy, a loopback or unix-socket peer (rest-server trusts every peer).
   */
  readonly mayAssertUser: boolean;
}

/** The --trusted-proxy entry `unix`: peers on unix-socket listeners. */
export const unixPeer = 'unix';

/**
 * Parses --trusted-proxy entries: `unix`, an address (`10.0.0.5`, `fd00::5`) or a network in
 * CIDR notation (`10.0.0.0/8`, `fd00::/8`). Throws an Error naming a malformed entry.
 */
export function parseTrustedPeers(entries: readonly string[]): TrustedPeers {
  const networks = new BlockList();
  let unix = false;
  for (const entry of entries) {
    if (entry === unixPeer) {
      unix = true;
      continue;
    }
    const [address = '', bits, extra] = entry.split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (
      family === 0 ||
      extra !== undefined ||
      (bits !== undefined && !/^\d{1,3}$/.test(bits)) ||
      prefix > (family === 6 ? 128 : 32)
    )
      throw new Error(`"${entry}" is not unix, an IP address or a network such as 10.0.0.0/8 or fd00::/8`);
    networks.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return { configured: entries.length > 0, unix, networks };
}

/** True when the peer (undefined: a unix socket) is one of the trusted proxies. */
export function isTrustedPeer(peers: TrustedPeers, address: string | undefined): boolean {
  if (address === undefined) return peers.unix;
  const plain = plainAddress(address);
  const family = isIP(plain);
  return family !== 0 && peers.networks.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}

/** Resolves the request's client from its peer and, from a trusted proxy, X-Forwarded-For. */
export function resolveClient(req: HttpRequest, peers: TrustedPeers): ClientAddress {
  const raw = req.socket.remoteAddress;
  // The kernel's peer address is always an IP address: no parsing on every request.
  const peer = raw?.startsWith('::ffff:') === true && raw.includes('.') ? raw.slice(7) : raw;
  if (!peers.configured)
    return { address: peer, peer, mayAssertUser: peer === undefined || isLoopback(peer) };
  if (!isTrustedPeer(peers, peer)) return { address: peer, peer, mayAssertUser: false };
  let client = peer;
  const hops = forwardedHops(req.headers['x-forwarded-for']);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i] ?? '');
    // A hop that is not an address (`unknown`, a typo) ends the walk: the client is then the
    // last proxy that reported one, never a value the client could have written.
    if (hop === undefined) break;
    client = hop;
    if (!isTrustedPeer(peers, hop)) break;
  }
  return { address: client, peer, mayAssertUser: true };
}

/** The hops of every X-Forwarded-For header, left to right. */
function forwardedHops(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(',') : header;
  return text
    .split(',')
    .map((hop) => hop.trim())
    .filter((hop) => hop !== '');
}

/** A hop's address: `1.2.3.4`, `1.2.3.4:567`, `fd00::1` or `[fd00::1]:567`; undefined otherwise. */
function hopAddress(hop: string): string | undefined {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  const withPort = /^([\d.]+):\d+$/.exec(hop);
  const candidate = bracketed?.[1] ?? withPort?.[1] ?? hop;
  return isIP(candidate) === 0 ? undefined : plainAddress(candidate);
}

/** An IPv4 peer on a dual-stack listener (`::ffff:1.2.3.4`) as plain IPv4. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** For an address known to be an IP address (a peer's). */
function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}
