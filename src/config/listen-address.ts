/** Listen addresses as rest-server writes them: `host:port`, `:port`, `[v6]:port`, `unix:/path`. */

export type ListenAddress =
  | { readonly kind: 'tcp'; readonly host: string | undefined; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  /** A listening socket inherited from systemd socket activation. */
  | { readonly kind: 'fd'; readonly fd: number };

/** Parses a listen address; throws an Error with a readable message when it is not one. */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path === '') throw new Error(`invalid listen address "${text}": unix: needs a socket path`);
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new Error(`invalid listen address "${text}": expected host:port, :port, [ipv6]:port or unix:/path`);
  }
  const host = match[1] ?? (match[2] === '' ? undefined : match[2]);
  return { kind: 'tcp', host, port };
}

/** The address as a URL base a client could use (unix sockets shown as unix:path). */
export function describeAddress(address: ListenAddress, secure = false): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  if (address.kind === 'fd') return `fd:${address.fd}`;
  const host = address.host ?? '0.0.0.0';
  return `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
