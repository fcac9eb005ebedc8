/** Which operation an HTTP method performs on a route, and which methods a route allows. */
import { RatchetError } from '../errors.ts';
import type { Operation, Resource } from '../access/policy.ts';
import type { Route } from './route.ts';

const fileMethods: Readonly<Record<string, Operation>> = {
  HEAD: 'read',
  GET: 'read',
  POST: 'write',
  PUT: 'write',
  DELETE: 'delete',
};
const listMethods: Readonly<Record<string, Operation>> = { HEAD: 'list', GET: 'list' };
const repoMethods: Readonly<Record<string, Operation>> = { POST: 'create-repo' };

const methodTables: Readonly<Record<Route['kind'], Readonly<Record<string, Operation>>>> = {
  repo: repoMethods,
  config: fileMethods,
  list: listMethods,
  object: fileMethods,
};

/** The operation the method performs on the route; METHOD_NOT_ALLOWED (with Allow) otherwise. */
export function operationFor(method: string, route: Route): Operation {
  const table = methodTables[route.kind];
  const operation = Object.hasOwn(table, method) ? table[method] : undefined;
  if (operation === undefined) {
    throw new RatchetError('METHOD_NOT_ALLOWED', `method ${method} not allowed here`, {
      headers: { Allow: Object.keys(table).join(', ') },
    });
  }
  return operation;
}

/** What the route touches, for the access policy. */
export function resourceOf(route: Route): Resource {
  if (route.kind === 'repo') return 'repo';
  if (route.kind === 'config') return 'config';
  return route.type;
}
