/**
 * Who may do what: a pure decision over a role and an operation on a resource. Lock files are
 * the exception every role below admin gets: restic creates and deletes its own locks in every
 * command, so read-only and append-only users must be able to.
 */
import type { ObjectType } from '../domain/object-types.ts';

export const roles = ['read-only', 'append-only', 'admin'] as const;
export type Role = (typeof roles)[number];

export type Operation = 'create-repo' | 'read' | 'list' | 'write' | 'delete';

/** What an operation touches: the repository itself, its config, or objects of a type. */
export type Resource = 'repo' | 'config' | ObjectType;

export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

const allow: Decision = { allowed: true };

/** Decides whether a role may perform the operation on the resource. */
export function decide(role: Role, operation: Operation, resource: Resource): Decision {
  if (operation === 'read' || operation === 'list') return allow;
  if (resource === 'locks') return allow;
  if (role === 'admin') return allow;
  if (role === 'read-only') return { allowed: false, reason: 'read-only access' };
  if (operation === 'delete')
    return { allowed: false, reason: 'append-only access: deleting is not allowed' };
  return allow;
}

/** The smaller of two roles, for ceilings such as process-wide append-only mode. */
export function capRole(role: Role, ceiling: Role): Role {
  return roles.indexOf(role) <= roles.indexOf(ceiling) ? role : ceiling;
}
