/**
 * Parses a request path into the restic REST resource it names. This is the only place where
 * client-supplied path text becomes repository components; storage backends trust its output.
 */

import type { ObjectType } from '../domain/object-types.ts';
import { isObjectName, isObjectType } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { isRepoComponent } from '../domain/repo-path.ts';

export type Route =
  | { readonly kind: 'repo'; readonly repo: RepoPath }
  | { readonly kind: 'config'; readonly repo: RepoPath }
  | { readonly kind: 'list'; readonly repo: RepoPath; readonly type: ObjectType }
  | { readonly kind: 'object'; readonly repo: RepoPath; readonly type: ObjectType; readonly name: string };

function decodeComponent(raw: string): string | undefined {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** A repository path as operators write it (`/host1/`, `host1`, `/` for the root); undefined if none. */
export function parseRepoText(text: string): RepoPath | undefined {
  const trimmed = text.replace(/^\/+|\/+$/g, '');
  const route = parseRoute(trimmed === '' ? '/' : `/${encodeURI(trimmed)}/`);
  return route?.kind === 'repo' ? route.repo : undefined;
}

/**
 * Parses the path part of a request URL (no query) into a Route, or undefined for any other
 * shape. The repository's depth is checked by the caller, once a listener's root is in front.
 */
export function parseRoute(path: string): Route | undefined {
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

  for (let i = 0; i < repoLength; i++) {
    if (!isRepoComponent(parts[i] ?? '')) return undefined;
  }
  return route;
}
