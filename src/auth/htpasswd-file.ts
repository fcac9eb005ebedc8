/**
 * Editing the htpasswd file: set or remove one user's line and leave every other line as it was
 * (comments, other users, unsupported hashes, line endings), then replace the file atomically
 * (temporary file in the same folder, fsync, rename, folder fsync) so the server's watcher never
 * reads half a file. The file keeps its mode and owner; a new one gets 0600.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { fsyncPath } from '../storage/fs/durable.ts';
import { decodeHtpasswd, lineUser, parseHtpasswd, unusableFileError } from './htpasswd.ts';
import { bcryptHash } from './verifiers.ts';
import type { ParsedHtpasswd } from './htpasswd.ts';
import { errnoCode } from '../errors.ts';

/** bcrypt cost of new hashes: about 80 ms per check here, paid once per credential cache period. */
export const defaultBcryptCost = 10;
export const minBcryptCost = 4;
/** The user `ensureInitialAdmin` creates. */
export const initialAdminUser = 'admin';

/** A bcrypt hash of the password in htpasswd's `$2y$` form, which every htpasswd reader knows. */
export async function hashPassword(password: string, cost = defaultBcryptCost): Promise<string> {
  const hash = await bcryptHash(password, cost);
  return `$2y$${hash.slice(4)}`;
}

/** The current content of an htpasswd file. */
export interface HtpasswdFileState {
  /** The file text ('' when the file does not exist). */
  readonly text: string;
  readonly parsed: ParsedHtpasswd;
  /** The file's stats, undefined when it does not exist. */
  readonly stats: Stats | undefined;
}

/** Reads and parses an htpasswd file; a missing file reads as empty. Throws on unusable content. */
export async function readHtpasswdFile(file: string): Promise<HtpasswdFileState> {
  let bytes: Buffer;
  let stats: Stats;
  try {
    stats = await stat(file);
    bytes = await readFile(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { text: '', parsed: parseHtpasswd(''), stats: undefined };
    throw err;
  }
  const text = decodeHtpasswd(bytes);
  return { text, parsed: parseHtpasswd(text), stats };
}

function rawLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines;
}

function joinLines(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** True when some line of the text is for this user, usable or not. */
export function hasUserLine(text: string, user: string): boolean {
  return rawLines(text).some((line) => lineUser(line) === user);
}

/**
 * The text with the user's first line replaced by `user:hash` (later lines for the same user,
 * which were ignored anyway, are dropped), or the line appended when the user has none.
 */
export function setUserHash(text: string, user: string, hash: string): string {
  const lines = rawLines(text);
  const crlf = lines.length > 0 && lines.every((line) => line.endsWith('\r'));
  const entry = `${user}:${hash}`;
  const result: string[] = [];
  let replaced = false;
  for (const line of lines) {
    if (lineUser(line) !== user) result.push(line);
    else if (!replaced) {
      result.push(line.endsWith('\r') ? `${entry}\r` : entry);
      replaced = true;
    }
  }
  if (!replaced) result.push(crlf ? `${entry}\r` : entry);
  return joinLines(result);
}

/** The text without any line for the user. */
export function removeUserLines(text: string, user: string): string {
  return joinLines(rawLines(text).filter((line) => lineUser(line) !== user));
}

function signature(stats: Stats | undefined): string {
  return stats === undefined ? 'missing' : `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

async function currentSignature(file: string): Promise<string> {
  try {
    return signature(await stat(file));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing';
    throw err;
  }
}

/** Thrown when the file kept changing under a read-modify-write. */
export class ConcurrentUpdateError extends Error {
  constructor(file: string) {
    super(`${file} was changed by someone else while it was being updated; try again`);
    this.name = 'ConcurrentUpdateError';
  }
}

/**
 * Reads the file, lets `edit` compute the new text (undefined: leave the file alone), and replaces
 * the file atomically. If another writer changed the file meanwhile, starts over (a few times).
 * Returns whether the file was written.
 */
export async function updateHtpasswdFile(
  file: string,
  edit: (state: HtpasswdFileState) => Promise<string | undefined> | string | undefined,
): Promise<boolean> {
  // Write through a symlink to its target, so the link stays a link.
  const target = await realpath(file).catch(() => path.resolve(file));
  for (let attempt = 0; attempt < 5; attempt++) {
    const state = await readHtpasswdFile(target);
    const text = await edit(state);
    if (text === undefined) return false;
    if (await replaceFile(target, text, state.stats)) return true;
  }
  throw new ConcurrentUpdateError(file);
}

/** Writes text to a temporary file and renames it over the target unless the target changed. */
async function replaceFile(file: string, text: string, previous: Stats | undefined): Promise<boolean> {
  const dir = path.dirname(file);
  if (previous === undefined) await mkdir(dir, { recursive: true, mode: 0o700 });
  // A dot name: never a valid user or repo name, and the server's watcher ignores it.
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(text, 'utf8');
      if (previous !== undefined) {
        // Keep the owner when we can (root editing the server user's file); chown needs privilege.
        if (previous.uid !== process.getuid?.() || previous.gid !== process.getgid?.())
          await handle.chown(previous.uid, previous.gid).catch(() => undefined);
        await handle.chmod(previous.mode & 0o7777);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    if ((await currentSignature(file)) !== signature(previous)) {
      await rm(temp, { force: true });
      return false;
    }
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncPath(dir);
  return true;
}

export interface InitialAdminOptions {
  readonly user?: string;
  readonly cost?: number;
}

/**
 * On a first start: when the htpasswd file is missing or has no user lines, adds user `admin`
 * with a random password and returns that password, to be shown once (only its hash is stored).
 * Returns undefined when the file already has users. Throws, writing nothing, when the file cannot
 * be read or parsed, or has user lines of which none is usable.
 */
export async function ensureInitialAdmin(
  file: string,
  logger: Logger,
  options: InitialAdminOptions = {},
): Promise<string | undefined> {
  const user = options.user ?? initialAdminUser;
  const password = randomBytes(18).toString('base64url');
  let hash: string | undefined;
  const written = await updateHtpasswdFile(file, async (state) => {
    if (state.parsed.users.size > 0) return undefined;
    // Lines that yield no user are the operator's mistake to fix, not room for a new admin.
    const unusable = unusableFileError(state.parsed, file);
    if (unusable) throw unusable;
    hash ??= await hashPassword(password, options.cost ?? defaultBcryptCost);
    return setUserHash(state.text, user, hash);
  });
  if (!written) return undefined;
  logger.warn({ file, user }, `no users in the htpasswd file: created user "${user}" with a random password`);
  return password;
}
