/**
 * The one access decision of every request, protocol and server endpoints alike: the user's
 * grants on the repository, capped by the listener's ceiling, then the policy.
 */
import type { AccessControl } from '../access/access-control.ts';
import { capRole, decide } from '../access/policy.ts';
import type { Operation, Resource, Role } from '../access/policy.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { RatchetError } from '../errors.ts';

export interface AuthorizeOptions {
  readonly access: AccessControl;
  /** The listener's ceiling: the most any request on it may do. */
  readonly maxRole: Role;
}

/** Throws FORBIDDEN unless the user may perform the operation; `what` names the target for the message. */
export function authorize(
  options: AuthorizeOptions,
  user: string | undefined,
  repo: RepoPath,
  operation: Operation,
  resource: Resource,
  what: string,
): void {
  const granted = options.access.roleFor(user, repo);
  if (granted === undefined) throw new RatchetError('FORBIDDEN', `no access to ${what}`);
  const decision = decide(capRole(granted, options.maxRole), operation, resource);
  if (!decision.allowed) throw new RatchetError('FORBIDDEN', decision.reason);
}
