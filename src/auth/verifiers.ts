/**
 * Password hash schemes found in htpasswd files: recognising a hash, verifying a password against
 * it in constant time, and making a same-cost decoy for users that do not exist.
 *
 * Supported: bcrypt `$2a$`/`$2b$`/`$2y$` (htpasswd -B, mkpasswd), apr1 `$apr1$` (htpasswd -m),
 * MD5-crypt `$1$` (openssl passwd -1), `{SHA}` (htpasswd -s), SHA-crypt `$5$`/`$6$` with or
 * without `rounds=` (mkpasswd, openssl passwd -5/-6, htpasswd -2/-5), and what nginx's
 * auth_basic_user_file reads besides: `{SSHA}` (salted SHA-1) and `{PLAIN}` (the password
 * itself, accepted with a warning). Traditional DES crypt (13 characters) is recognised and
 * refused with its own message: it keeps only 8 characters of a password. Passwords are UTF-8.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

// The hash libraries are loaded on first use (about 10 MiB together): a server without password
// logins never needs them, and the server computes the crypt schemes on a worker anyway.
/**
 * Loads bcrypt now. Password logins always need it (it is also the decoy scheme for unknown
 * users), and a broken native module should stop the start, not fail every login later.
 */
export async function preloadBcrypt(): Promise<void> {
  await import('bcrypt');
}

/** bcrypt.hash with a cost or a full salt setting. */
export async function bcryptHash(password: string, costOrSalt: number | string): Promise<string> {
  const bcrypt = (await import('bcrypt')).default;
  return bcrypt.hash(password, costOrSalt);
}

export type HashScheme =
  'bcrypt' | 'apr1' | 'md5-crypt' | 'sha1' | 'ssha' | 'plain' | 'sha256-crypt' | 'sha512-crypt';

/** A recognised hash: its scheme and a key naming scheme + cost, to pick a decoy of equal cost. */
export interface HashInfo {
  readonly scheme: HashScheme;
  readonly costKey: string;
}

export type HashCheck =
  | ({ readonly ok: true } & HashInfo)
  | { readonly ok: false; readonly reason: string; readonly unknownScheme: boolean };

/** Computes a crypt(3)-style hash; runs off the event loop in a worker (see crypt-worker.ts). */
export interface CryptEngine {
  crypt(kind: CryptKind, password: string, setting: string): Promise<string>;
}

export type CryptKind = 'md5' | 'sha';

// The highest costs accepted. htpasswd -B allows up to 17 (about 10 s per check here); SHA-crypt
// up to a million rounds covers passlib's 656000 default. Beyond that one login stalls a worker
// for minutes, so such lines are skipped rather than served.
export const maxBcryptCost = 17;
export const maxShaCryptRounds = 1_000_000;
const minShaCryptRounds = 1000;
const defaultShaCryptRounds = 5000;

const cryptAlphabet = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const bcryptPattern = /^\$2([aby])\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const md5Pattern = /^\$(apr1|1)\$([./0-9A-Za-z]{1,8})\$[./0-9A-Za-z]{22}$/;
const sha1Pattern = /^\{SHA\}[A-Za-z0-9+/]{27}=$/;
// SHA-1 digest (20 bytes) then the salt, in base64: at least one byte of salt.
const sshaPattern = /^\{SSHA\}[A-Za-z0-9+/]{28,}={0,2}$/;
const plainPrefix = '{PLAIN}';
const desCryptPattern = /^[./0-9A-Za-z]{13}$/;
const shaCryptPattern = /^\$([56])\$(?:rounds=(\d{1,10})\$)?([./0-9A-Za-z]{0,16})\$([./0-9A-Za-z]+)$/;
const shaDigestLength = { '5': 43, '6': 86 } as const;

/** Recognises a hash and checks that its parameters are supported. */
export function checkHash(hash: string): HashCheck {
  const bcryptMatch = bcryptPattern.exec(hash);
  if (bcryptMatch) {
    const cost = Number(bcryptMatch[2]);
    if (cost < 4 || cost > 31) return invalid(`bcrypt cost ${cost} is not valid (4 to 31)`);
    if (cost > maxBcryptCost)
      return invalid(`bcrypt cost ${cost} is above the supported maximum ${maxBcryptCost}`);
    return { ok: true, scheme: 'bcrypt', costKey: `bcrypt:${cost}` };
  }
  const md5Match = md5Pattern.exec(hash);
  if (md5Match) {
    const scheme = md5Match[1] === 'apr1' ? 'apr1' : 'md5-crypt';
    return { ok: true, scheme, costKey: scheme };
  }
  if (sha1Pattern.test(hash)) return { ok: true, scheme: 'sha1', costKey: 'sha1' };
  if (sshaPattern.test(hash) && Buffer.from(hash.slice(6), 'base64').length > 20)
    return { ok: true, scheme: 'ssha', costKey: 'ssha' };
  if (hash.startsWith(plainPrefix) && hash.length > plainPrefix.length)
    return { ok: true, scheme: 'plain', costKey: 'plain' };
  const shaMatch = shaCryptPattern.exec(hash);
  if (shaMatch) {
    const id = shaMatch[1] as '5' | '6';
    const scheme = id === '5' ? 'sha256-crypt' : 'sha512-crypt';
    if (shaMatch[4]?.length !== shaDigestLength[id]) return invalid(`malformed ${scheme} hash`);
    // crypt(3) writes rounds clamped to 1000..999999999 and without leading zeros; anything else
    // was not written by a crypt implementation and could never verify.
    const roundsText = shaMatch[2];
    const rounds = roundsText === undefined ? defaultShaCryptRounds : Number(roundsText);
    if (roundsText !== undefined && (rounds < minShaCryptRounds || String(rounds) !== roundsText))
      return invalid(`${scheme} rounds=${roundsText} is not valid`);
    if (rounds > maxShaCryptRounds)
      return invalid(`${scheme} rounds=${rounds} is above the supported maximum ${maxShaCryptRounds}`);
    return { ok: true, scheme, costKey: `${scheme}:${rounds}` };
  }
  if (/^\$2[aby]\$/.test(hash)) return invalid('malformed bcrypt hash');
  if (/^\$(apr1|1)\$/.test(hash)) return invalid('malformed MD5 hash');
  if (hash.startsWith('{SHA}')) return invalid('malformed {SHA} hash');
  if (hash.startsWith('{SSHA}')) return invalid('malformed {SSHA} hash');
  if (hash.startsWith(plainPrefix)) return invalid('empty {PLAIN} password');
  if (desCryptPattern.test(hash))
    return invalid(
      'traditional DES crypt hash, which is not supported (it uses only the first 8 characters of a password); set a new password with `ratchet user passwd`',
    );
  if (/^\$[56]\$/.test(hash)) return invalid('malformed SHA-crypt hash');
  return { ok: false, reason: 'unsupported hash scheme', unknownScheme: true };
}

function invalid(reason: string): HashCheck {
  return { ok: false, reason, unknownScheme: false };
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  // Digest lengths are fixed by the scheme, so an early length check reveals nothing secret;
  // the self-compare keeps the work the same either way.
  if (left.length !== right.length) {
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}

/** Computes crypt hashes on the calling thread (the CLI and tests; the server uses a worker). */
export const inlineCrypt: CryptEngine = {
  async crypt(kind, password, setting) {
    if (kind === 'sha') return (await import('unixcrypt')).encrypt(password, setting);
    // apache-md5 is CommonJS exporting the function itself; its typings claim an ES default export.
    const md5Crypt = (await import('apache-md5')).default as unknown as (
      password: string,
      salt: string,
    ) => string;
    return md5Crypt(password, setting);
  },
};

/** True when the password matches the hash; false for a wrong password or an unusable hash. */
export async function verifyPassword(
  password: string,
  hash: string,
  engine: CryptEngine = inlineCrypt,
): Promise<boolean> {
  const check = checkHash(hash);
  if (!check.ok) return false;
  switch (check.scheme) {
    case 'bcrypt':
      return verifyBcrypt(password, hash);
    case 'sha1':
      return verifySha1(password, hash);
    case 'ssha':
      return verifySsha(password, hash);
    case 'plain':
      return verifyPlain(password, hash);
    case 'apr1':
    case 'md5-crypt':
      // apache-md5 hashes each UTF-16 code unit as one byte; htpasswd hashes the UTF-8 bytes.
      // A latin1 string of the UTF-8 bytes makes the two agree.
      return verifyCrypt(engine, 'md5', Buffer.from(password, 'utf8').toString('latin1'), hash);
    case 'sha256-crypt':
    case 'sha512-crypt':
      return verifyCrypt(engine, 'sha', password, hash);
  }
}

async function verifyBcrypt(password: string, hash: string): Promise<boolean> {
  // bcrypt 6 computes only $2a$/$2b$, and its compare() uses strcmp. $2y$ (crypt_blowfish) and
  // $2b$ are the same algorithm, and $2a$ matches them below 255 bytes (our limit is lower), so
  // hash with $2b$ and compare the rest ourselves in constant time.
  const computed = await bcryptHash(password, `$2b$${hash.slice(4, 29)}`);
  return constantTimeEqual(computed.slice(4), hash.slice(4));
}

function verifySha1(password: string, hash: string): boolean {
  const expected = Buffer.from(hash.slice(5), 'base64');
  const actual = createHash('sha1').update(password, 'utf8').digest();
  return timingSafeEqual(actual, expected);
}

function verifySsha(password: string, hash: string): boolean {
  const decoded = Buffer.from(hash.slice('{SSHA}'.length), 'base64');
  const expected = decoded.subarray(0, 20);
  const actual = createHash('sha1').update(password, 'utf8').update(decoded.subarray(20)).digest();
  return timingSafeEqual(actual, expected);
}

function verifyPlain(password: string, hash: string): boolean {
  // Digests of both, so that the comparison takes the same time whatever the lengths.
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(password), digest(hash.slice(plainPrefix.length)));
}

async function verifyCrypt(
  engine: CryptEngine,
  kind: CryptKind,
  password: string,
  hash: string,
): Promise<boolean> {
  const split = hash.lastIndexOf('$');
  const computed = await engine.crypt(kind, password, hash.slice(0, split));
  // Only the digest is secret-dependent; the setting part is what we passed in.
  return constantTimeEqual(computed.slice(computed.lastIndexOf('$') + 1), hash.slice(split + 1));
}

function randomCryptText(length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += cryptAlphabet[randomInt(cryptAlphabet.length)];
  return text;
}

/**
 * A random hash of the same scheme and cost as the given one, that no password matches in
 * practice: checking a password against it costs what checking a real user's password costs.
 */
export function decoyHashLike(hash: string): string {
  const check = checkHash(hash);
  if (!check.ok) return decoyBcryptHash(10);
  switch (check.scheme) {
    case 'bcrypt':
      return decoyBcryptHash(Number(hash.slice(4, 6)));
    case 'sha1':
      return `{SHA}${randomBytes(20).toString('base64')}`;
    case 'ssha':
      return `{SSHA}${randomBytes(28).toString('base64')}`;
    case 'plain':
      return `${plainPrefix}${randomBytes(24).toString('base64')}`;
    case 'apr1':
    case 'md5-crypt': {
      const prefix = check.scheme === 'apr1' ? '$apr1$' : '$1$';
      return `${prefix}${randomCryptText(8)}$${randomCryptText(22)}`;
    }
    case 'sha256-crypt':
    case 'sha512-crypt': {
      const id = check.scheme === 'sha256-crypt' ? '5' : '6';
      const rounds = /\$rounds=(\d+)\$/.exec(hash)?.[1];
      const setting = rounds === undefined ? `$${id}$` : `$${id}$rounds=${rounds}$`;
      return `${setting}${randomCryptText(16)}$${randomCryptText(shaDigestLength[id])}`;
    }
  }
}

/** A random bcrypt hash of the given cost that no password matches in practice. */
export function decoyBcryptHash(cost: number): string {
  return `$2b$${String(cost).padStart(2, '0')}$${randomCryptText(53)}`;
}
