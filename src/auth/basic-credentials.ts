/** Parsing of `Authorization: Basic` headers (RFC 7617) and of client addresses for throttling. */
import { isIPv4, isIPv6 } from 'node:net';
import { maxUserNameBytes } from './htpasswd.ts';

export interface BasicCredentials {
  readonly user: string;
  readonly password: string;
}

/**
 * The longest password accepted. bcrypt reads 72 bytes, but SHA-crypt hashes the whole password
 * several times per round: a cap keeps a huge header from costing seconds of CPU.
 */
export const maxPasswordBytes = 1024;

const basicPattern = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;

/**
 * The user and password of a Basic Authorization header, or undefined when the header is not
 * well-formed Basic: canonical base64 of UTF-8 `user:password` (split at the first `:`), a
 * non-empty user of at most 255 bytes without NUL, and a password of at most 1024 bytes without NUL.
 */
export function parseBasicAuthorization(header: string): BasicCredentials | undefined {
  const match = basicPattern.exec(header);
  const encoded = match?.[1];
  if (encoded === undefined || encoded.length % 4 === 1) return undefined;
  const bytes = Buffer.from(encoded, 'base64');
  // Node's decoder skips junk and ignores stray bits; a round trip rejects every non-canonical form.
  if (bytes.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  const user = text.slice(0, colon);
  const password = text.slice(colon + 1);
  if (Buffer.byteLength(user, 'utf8') > maxUserNameBytes || user.includes('\u0000')) return undefined;
  // No hash tool can store a password containing NUL (they are C strings).
  if (Buffer.byteLength(password, 'utf8') > maxPasswordBytes || password.includes('\u0000')) return undefined;
  return { user, password };
}

/** Encodes credentials as a Basic Authorization header value. */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * The key a client address is throttled under: IPv4 as is (also when IPv4-mapped in IPv6), IPv6
 * by its /64 prefix (one host usually owns a whole /64, and could otherwise rotate addresses
 * within it to dodge the limit), anything else (unix socket, unknown) as one shared `local` key.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'local';
  const plain = address.split('%')[0] ?? address;
  if (isIPv4(plain)) return plain;
  if (!isIPv6(plain)) return 'local';
  const groups = expandIPv6(plain);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with `::` and a trailing IPv4 part expanded). */
function expandIPv6(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (isIPv4(tail)) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
