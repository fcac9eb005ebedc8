/**
 * Access grants: which role a user has on which repositories. A grant names users (or `*` for
 * every authenticated user) and repository path patterns; a user's role on a repository is the
 * highest role of all grants that match. Patterns are slash-separated components where
 * `{user}` stands for the authenticated user's name, `*` for any one component and `**` for any
 * number of components (zero included): `/{user}/**` is the user's own repo and everything below.
 */
import type { RepoPath } from '../domain/repo-path.ts';
import { roles } from './policy.ts';
import type { Role } from './policy.ts';

export interface Grant {
  /** User names, or ['*'] for every authenticated user. */
  readonly users: readonly string[];
  readonly repos: readonly string[];
  readonly role: Role;
}

type Segment =
  { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'user' | 'one' | 'any' };

interface CompiledGrant {
  readonly anyUser: boolean;
  readonly users: ReadonlySet<string>;
  readonly patterns: readonly (readonly Segment[])[];
  readonly rank: number;
}

/** Parses one repository pattern; throws with a readable message when it is malformed. */
export function compilePattern(pattern: string): readonly Segment[] {
  if (!pattern.startsWith('/')) throw new Error(`repository pattern "${pattern}" must start with /`);
  const body = pattern.replace(/^\/+|\/+$/g, '');
  if (body === '') return [];
  return body.split('/').map((part): Segment => {
    if (part === '{user}') return { kind: 'user' };
    if (part === '*') return { kind: 'one' };
    if (part === '**') return { kind: 'any' };
    if (part === '' || part.includes('*') || part.includes('{') || part.includes('}')) {
      throw new Error(`repository pattern "${pattern}" has an invalid component "${part}"`);
    }
    return { kind: 'literal', text: part };
  });
}

function matches(
  segments: readonly Segment[],
  repo: RepoPath,
  user: string | undefined,
  from = 0,
  at = 0,
): boolean {
  if (from === segments.length) return at === repo.length;
  const segment = segments[from];
  if (segment === undefined) return false;
  if (segment.kind === 'any') {
    for (let skip = at; skip <= repo.length; skip++) {
      if (matches(segments, repo, user, from + 1, skip)) return true;
    }
    return false;
  }
  const component = repo[at];
  if (component === undefined) return false;
  const ok =
    segment.kind === 'one' ||
    (segment.kind === 'literal' && segment.text === component) ||
    (segment.kind === 'user' && user !== undefined && user === component);
  return ok && matches(segments, repo, user, from + 1, at + 1);
}

/** Answers "what role does this user have on this repository" for a fixed list of grants. */
export class GrantTable {
  private readonly grants: readonly CompiledGrant[];

  constructor(grants: readonly Grant[]) {
    this.grants = grants.map((grant) => ({
      anyUser: grant.users.includes('*'),
      users: new Set(grant.users),
      patterns: grant.repos.map(compilePattern),
      rank: roles.indexOf(grant.role),
    }));
  }

  /** The highest role any matching grant gives, or undefined when none matches. */
  roleFor(user: string | undefined, repo: RepoPath): Role | undefined {
    let best = -1;
    for (const grant of this.grants) {
      if (grant.rank <= best) continue;
      if (!grant.anyUser && (user === undefined || !grant.users.has(user))) continue;
      if (grant.patterns.some((segments) => matches(segments, repo, user))) best = grant.rank;
    }
    return best < 0 ? undefined : roles[best];
  }

  /**
   * The user a `{user}` pattern gives the repository to (its first component, as in
   * `/{user}/**`), or undefined when no such pattern covers it.
   */
  ownerOf(repo: RepoPath): string | undefined {
    const candidate = repo[0];
    if (candidate === undefined) return undefined;
    const owned = this.grants.some((grant) =>
      grant.patterns.some((segments) => segments[0]?.kind === 'user' && matches(segments, repo, candidate)),
    );
    return owned ? candidate : undefined;
  }
}

/**
 * The grants without an `access` list. rest-server's behaviour: every user is admin everywhere,
 * or only below /<user>/. With an `admin` user (private repositories in append-only mode), the
 * README's append-only scenario instead: every user append-only below /<user>/, so no host can
 * delete its backups on any listener, and that user admin on every repository, which the
 * listeners' ceilings leave to the admin listeners.
 */
export function defaultGrants(privateRepos: boolean, admin?: string): Grant[] {
  if (admin !== undefined)
    return [
      { users: ['*'], repos: ['/{user}/**'], role: 'append-only' },
      { users: [admin], repos: ['/**'], role: 'admin' },
      metricsScraper,
    ];
  if (privateRepos) return [{ users: ['*'], repos: ['/{user}/**'], role: 'admin' }, metricsScraper];
  return [{ users: ['*'], repos: ['/**'], role: 'admin' }];
}

/**
 * rest-server with --private-repos serves its metrics to the user named `metrics` only. Metrics
 * need a role on the root (they name every repository), so that user gets read-only on the root
 * path itself, which reaches no other repository.
 */
const metricsScraper: Grant = { users: ['metrics'], repos: ['/'], role: 'read-only' };
