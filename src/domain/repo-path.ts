/** Repository paths: validated components, and their text form used as a key. */
import { objectTypes } from './object-types.ts';

/** A repository path as validated components, e.g. ['alice', 'laptop']; [] is the root repo. */
export type RepoPath = readonly string[];

const reservedComponents = new Set<string>([...objectTypes, 'config']);
// Control characters and backslashes never belong in a repo name; they only serve to confuse.
// eslint-disable-next-line no-control-regex
const forbiddenCharacters = /[\u0000-\u001f\u007f\\/]/;
const maxComponentBytes = 255;

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

/** The repository path as text without leading or trailing slash ('' for the root repo). */
export function repoKey(repo: RepoPath): string {
  return repo.join('/');
}

/** The repository path of a repoKey (the root repository's key is ''). */
export function repoFromKey(key: string): RepoPath {
  return key === '' ? [] : key.split('/');
}

/** The repository path as people read it: `/host1/`, `/` for the root repository. */
export function repoDisplay(repo: RepoPath): string {
  return repo.length === 0 ? '/' : `/${repoKey(repo)}/`;
}
