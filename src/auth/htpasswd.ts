/**
 * Parses htpasswd files: one `user:hash` per line, as Apache's htpasswd writes them.
 *
 * - Lines are trimmed, then blank lines and lines starting with `#` are ignored (as Apache does).
 * - A line with an invalid user name, an unsupported hash scheme or unsupported parameters is
 *   skipped with a warning naming its line; the other users still load.
 * - A user listed twice keeps the first line (Apache's rule); later lines get a warning.
 * - A file with user lines of which none is usable is refused too (unusableFileError): it is a
 *   mistake, not "no users yet", so it neither locks everyone out nor gets a first admin added.
 * - The whole file is refused (HtpasswdParseError) when it cannot be an htpasswd file: not UTF-8,
 *   a NUL byte, or a line without a `:`. A reload then keeps the previous users, so a file caught
 *   half-written or mangled by an editor never locks everyone out.
 */
import { checkHash } from './verifiers.ts';

export interface HtpasswdWarning {
  /** 1-based line number. */
  readonly line: number;
  readonly message: string;
}

export interface ParsedHtpasswd {
  /** User name → hash, for the valid lines only. */
  readonly users: Map<string, string>;
  readonly warnings: readonly HtpasswdWarning[];
}

/** The file is not an htpasswd file at all; `line` is set when one line is to blame. */
export class HtpasswdParseError extends Error {
  readonly line: number | undefined;

  constructor(message: string, line?: number) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = 'HtpasswdParseError';
    this.line = line;
  }
}

export const maxUserNameBytes = 255;

// Names of a repository's own entries: a user named like this could not own `/<user>/`.
const reservedNames = new Set(['data', 'keys', 'locks', 'snapshots', 'index', 'config']);
// C0 and C1 control characters and DEL.
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Why a user name is invalid, or undefined when it is valid. A user name must also work as a repo
 * path component (private repos live at `/<user>/`): 1 to 255 UTF-8 bytes, no `:` (the htpasswd
 * separator), no `/` or `\`, no control characters, no leading dot (`.`, `..`, hidden files),
 * no leading or trailing white space, and not a name restic uses inside a repository
 * (data, keys, locks, snapshots, index, config).
 */
export function userNameProblem(name: string): string | undefined {
  if (name === '') return 'the user name is empty';
  if (Buffer.byteLength(name, 'utf8') > maxUserNameBytes)
    return `the user name is longer than ${maxUserNameBytes} bytes`;
  if (name.includes(':')) return 'the user name contains ":"';
  if (name.includes('/') || name.includes('\\')) return 'the user name contains a slash';
  if (controlCharacters.test(name)) return 'the user name contains a control character';
  if (name.startsWith('.')) return 'the user name starts with a dot';
  if (name.trim() !== name) return 'the user name starts or ends with white space';
  if (reservedNames.has(name)) return `"${name}" is reserved: restic uses it inside repositories`;
  return undefined;
}

/** Splits file text into lines without their line ending (LF or CRLF). */
export function splitLines(text: string): string[] {
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** True for lines that carry no user: blank or a `#` comment. */
export function isIgnorableLine(line: string): boolean {
  const content = line.trim();
  return content === '' || content.startsWith('#');
}

/** The user name a line is for (text before the first `:`), or undefined for other lines. */
export function lineUser(line: string): string | undefined {
  if (isIgnorableLine(line)) return undefined;
  const content = line.trim();
  const colon = content.indexOf(':');
  return colon < 0 ? undefined : content.slice(0, colon);
}

/** Decodes file bytes as UTF-8, refusing invalid sequences, NUL bytes and a leading BOM. */
export function decodeHtpasswd(bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new HtpasswdParseError('the file is not valid UTF-8');
  }
  const nul = text.indexOf('\u0000');
  if (nul >= 0) throw new HtpasswdParseError('the file contains a NUL byte', lineOf(text, nul));
  return text;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Parses htpasswd text (or raw file bytes) into users and per-line warnings. */
export function parseHtpasswd(input: string | Uint8Array): ParsedHtpasswd {
  const text = typeof input === 'string' ? input : decodeHtpasswd(input);
  const users = new Map<string, string>();
  const warnings: HtpasswdWarning[] = [];
  const lines = splitLines(text);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] ?? '').trim();
    const number = index + 1;
    if (isIgnorableLine(line)) continue;
    if (line.includes('\u0000')) throw new HtpasswdParseError('the line contains a NUL byte', number);
    const colon = line.indexOf(':');
    if (colon < 0) throw new HtpasswdParseError('the line has no ":" between user name and hash', number);
    const user = line.slice(0, colon);
    // Apache reads the hash up to the next ':', so `user:hash:comment` lines work there too.
    const hash = line.slice(colon + 1).split(':')[0] ?? '';
    const problem = userNameProblem(user);
    if (problem !== undefined) {
      warnings.push({ line: number, message: `${problem}; the line is skipped` });
      continue;
    }
    if (users.has(user)) {
      warnings.push({ line: number, message: `user "${user}" is listed again; the first line is used` });
      continue;
    }
    const check = checkHash(hash);
    if (!check.ok) {
      warnings.push({ line: number, message: `user "${user}": ${check.reason}; the line is skipped` });
      continue;
    }
    if (check.scheme === 'plain')
      warnings.push({
        line: number,
        message: `user "${user}": the password is stored in plain text ({PLAIN}); replace it with a hash (ratchet user passwd ${user})`,
      });
    users.set(user, hash);
  }
  return { users, warnings };
}

/**
 * The error for a file that has user lines but not one usable user (every line skipped), naming
 * the file and each line; undefined when some user is usable or the file has no user lines.
 */
export function unusableFileError(parsed: ParsedHtpasswd, file: string): HtpasswdParseError | undefined {
  if (parsed.users.size > 0 || parsed.warnings.length === 0) return undefined;
  const lines = parsed.warnings.map((warning) => `line ${warning.line}: ${warning.message}`);
  return new HtpasswdParseError(
    `${file} has user lines but no usable user; fix or remove them (${lines.join('; ')})`,
  );
}
