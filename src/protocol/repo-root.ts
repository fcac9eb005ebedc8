/**
 * A listener's repository root: the folder that `/` names on that listener, e.g. `/{user}`, so
 * that each host keeps the URL it had with the nginx recipe (`root /backups/$remote_user`) and
 * cannot name anything outside its own folder. Access is still decided on the full path.
 */
import type { RepoPath } from '../domain/repo-path.ts';
import { isRepoComponent } from '../domain/repo-path.ts';
import { RatchetError } from '../errors.ts';
import type { Route } from './route.ts';

/** The root's components: literal folder names and the logged-in user's name. */
export type RepoRoot = readonly ({ readonly literal: string } | { readonly user: true })[];

const userPlaceholder = '{user}';

/** Parses `/{user}`, `/hosts/{user}` or `/shared`; a problem is thrown as an Error naming it. */
export function parseRepoRoot(text: string): RepoRoot {
  if (!text.startsWith('/'))
    throw new Error(`root ${JSON.stringify(text)} must start with "/" (e.g. /{user})`);
  const parts = text.split('/').filter((part) => part !== '');
  return parts.map((part) => {
    if (part === userPlaceholder) return { user: true as const };
    if (part.includes('{') || part.includes('}'))
      throw new Error(`root ${JSON.stringify(text)}: the only placeholder is ${userPlaceholder}`);
    if (!isRepoComponent(part))
      throw new Error(
        `root ${JSON.stringify(text)}: ${JSON.stringify(part)} cannot name a repository folder`,
      );
    return { literal: part };
  });
}

/** The root as text, as it was given (for logs). */
export function formatRepoRoot(root: RepoRoot): string {
  return `/${root.map((part) => ('user' in part ? userPlaceholder : part.literal)).join('/')}`;
}

export function rootNeedsUser(root: RepoRoot): boolean {
  return root.some((part) => 'user' in part);
}

/** The route with its repository placed below the root, for this user. */
export function placeUnderRoot(root: RepoRoot, user: string | undefined, route: Route): Route {
  const prefix: string[] = [];
  for (const part of root) {
    if ('literal' in part) {
      prefix.push(part.literal);
    } else if (user === undefined) {
      throw new RatchetError('UNAUTHORIZED', 'this listener serves each user their own folder: log in');
    } else if (!isRepoComponent(user)) {
      throw new RatchetError('FORBIDDEN', 'this user name cannot name a repository folder');
    } else {
      prefix.push(user);
    }
  }
  return { ...route, repo: [...prefix, ...route.repo] };
}

/** Refuses a repository deeper than --max-repo-depth, saying so (it cannot exist here). */
export function checkRepoDepth(repo: RepoPath, maxRepoDepth: number): void {
  if (repo.length > maxRepoDepth)
    throw new RatchetError(
      'NOT_FOUND',
      `the repository path has ${repo.length} folders; --max-repo-depth allows ${maxRepoDepth}`,
    );
}
