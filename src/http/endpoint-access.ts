/**
 * What the server's own endpoints ask of the requester, and the one function that decides it as
 * the protocol decides: the user's grants, capped by the listener's ceiling, and the per-user
 * limits. An endpoint that changes a repository (the trash) declares the operation it amounts
 * to, so an append-only listener can never be used to empty a trash.
 */
import type { AccessControl } from '../access/access-control.ts';
import type { Operation, Resource, Role } from '../access/policy.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { UserLimits } from '../limits/user-limits.ts';
import type { HttpRequest } from '../util/http-types.ts';
import { authorize } from './authorize.ts';
import type { ClientAddress } from './client-address.ts';
import type { Identify } from './identify.ts';

export interface AccessOptions {
  readonly identify: Identify;
  readonly access: AccessControl;
  /** The listener's ceiling: the most any request on it may do. */
  readonly maxRole: Role;
  readonly limits: UserLimits<boolean>;
}

/**
 * What an endpoint asks of the requester: nothing (it says nothing about users or
 * repositories), or the right to perform an operation on a resource of the repository at
 * `repo` (the root `[]` for server-wide views: only users whose grants reach the root).
 */
export type EndpointAccess =
  | { readonly kind: 'anyone' }
  | {
      readonly kind: 'operation';
      readonly operation: Operation;
      readonly resource: Resource;
      /** The repository, or how to find it for the user (a listener root such as /{user}). */
      readonly repo: RepoPath | ((user: string | undefined) => RepoPath);
    };

/** Who the requester is, once the endpoint's access is granted (undefined: anyone, or no-auth). */
export async function authorizeEndpoint(
  access: EndpointAccess,
  req: HttpRequest,
  client: ClientAddress,
  options: AccessOptions,
  onUser: (user: string | undefined) => void,
): Promise<string | undefined> {
  if (access.kind === 'anyone') return undefined;
  const user = await options.identify(req, client);
  onUser(user);
  if (options.limits.active) await options.limits.admit(user);
  const repo = typeof access.repo === 'function' ? access.repo(user) : access.repo;
  authorize(options, user, repo, access.operation, access.resource, 'this endpoint');
  return user;
}
