/**
 * Parses a request path into the restic REST resource it names. This is the only place where
 * client-supplied path text becomes repository components; storage backends trust its output.
 */

export const objectTypes = ['data', 'keys', 'locks', 'snapshots', 'index'] as const;
export type ObjectType = (typeof objectTypes)[number];

/** A repository path as validated components, e.g. ['alice', 'laptop']; [] is the root repo. */
export type RepoPath = readonly string[];

export type Route =
  | { readonly kind: 'repo'; readonly repo: RepoPath }
  | { readonly kind: 'config'; readonly repo: RepoPath }
  | { readonly kind: 'list'; readonly repo: RepoPath; readonly type: ObjectType }
  | { readonly kind: 'object'; readonly repo: RepoPath; readonly type: ObjectType; readonly name: string };

const reservedComponents = new Set<string>([...objectTypes, 'config']);
const objectNamePattern = /^[0-9a-f]{64}$/;
// Control characters and backslashes never belong in a repo name; they only serve to confuse.
// eslint-disable-next-line no-control-regex
const forbiddenCharacters = /[\u0000-\u001f\u007f\\/]/;
const maxComponentBytes = 255;

/** True when the text is a valid object name: 64 lowercase hex characters. */
export function isObjectName(text: string): boolean {
  return text.length === 64 && objectNamePattern.test(text);
}

/** True when the text names one of the five object types. */
export function isObjectType(text: string): text is ObjectType {
  return (objectTypes as readonly string[]).includes(text);
}

/**
 * True when a decoded component may name (part of) a repository. Names starting with a dot are
 * refused: they would reach `.htpasswd`, temporary uploads, and the `/.ratchet/` server endpoints.
 */
export function isRepoComponent(text: string): boolean {
  return (
    text.length > 0 &&
    !text.startsWith('.') &&
    !reservedComponents.has(text) &&
    !forbiddenCharacters.test(text) &&
    Buffer.byteLength(text) <= maxComponentBytes
  );
}

function decodeComponent(raw: string): string | undefined {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** Parses the path part of a request URL (no query) into a Route, or undefined for any other shape. */
export function parseRoute(path: string, maxRepoDepth: number): Route | undefined {
  if (!path.startsWith('/') || path.includes('//')) return undefined;
  const trailingSlash = path.length > 1 && path.endsWith('/');
  const body = path.slice(1, trailingSlash ? -1 : undefined);
  const raw = body === '' ? [] : body.split('/');
  const parts: string[] = [];
  for (const piece of raw) {
    const decoded = decodeComponent(piece);
    if (decoded === undefined) return undefined;
    parts.push(decoded);
  }

  const last = parts.at(-1);
  let route: Route;
  let repoLength: number;
  if (last === undefined) {
    route = { kind: 'repo', repo: [] };
    repoLength = 0;
  } else if (!trailingSlash && last === 'config') {
    repoLength = parts.length - 1;
    route = { kind: 'config', repo: parts.slice(0, repoLength) };
  } else if (trailingSlash && isObjectType(last)) {
    repoLength = parts.length - 1;
    route = { kind: 'list', repo: parts.slice(0, repoLength), type: last };
  } else if (!trailingSlash && parts.length >= 2 && isObjectName(last)) {
    const type = parts[parts.length - 2] ?? '';
    if (!isObjectType(type)) return undefined;
    repoLength = parts.length - 2;
    route = { kind: 'object', repo: parts.slice(0, repoLength), type, name: last };
  } else {
    repoLength = parts.length;
    route = { kind: 'repo', repo: parts };
  }

  if (repoLength > maxRepoDepth) return undefined;
  for (let i = 0; i < repoLength; i++) {
    if (!isRepoComponent(parts[i] ?? '')) return undefined;
  }
  return route;
}

/** The repository path as text without leading or trailing slash ('' for the root repo). */
export function repoKey(repo: RepoPath): string {
  return repo.join('/');
}

/** The repository path of a repoKey (the root repository's key is ''). */
export function repoFromKey(key: string): RepoPath {
  return key === '' ? [] : key.split('/');
}
