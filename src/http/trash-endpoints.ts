/**
 * The trash (--delete-grace) under `/.ratchet/trash`, for scripts: the operations of
 * `ratchet trash`, answered in JSON.
 *
 *   GET  /.ratchet/trash[?repo=/host1/]                          the entries, oldest deletion first
 *   POST /.ratchet/trash/restore?repo=/host1/[&since=2h][&name=N]...   put objects back
 *   POST /.ratchet/trash/purge[?repo=/host1/][&older-than=7d]    remove objects for good
 *
 * Every one asks for the right to delete in the repository (the root `/` when none is named),
 * which only the admin role has, capped by the listener's ceiling: never through an append-only
 * listener. `repo` is a path as on this listener (below its root, e.g. /{user}). Unknown
 * parameters are refused: a mistyped `older_than` must not purge the whole trash.
 */
import { errorStatus, RatchetError } from '../errors.ts';
import type { AuditLog } from '../log/audit-log.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoDisplay } from '../domain/repo-path.ts';
import { checkRepoDepth, placeUnderRoot } from '../protocol/repo-root.ts';
import type { RepoRoot } from '../protocol/repo-root.ts';
import { parseRepoText } from '../protocol/route.ts';
import type { Storage, TrashEntry } from '../storage/storage.ts';
import type { TrashKeeper } from '../trash/trash-keeper.ts';
import { restoreSucceeded } from '../trash/trash-operations.ts';
import { parseDuration, parseSince } from '../util/durations.ts';
import type { HttpRequest } from '../util/http-types.ts';
import type { ClientAddress } from './client-address.ts';
import { authorizeEndpoint } from './endpoint-access.ts';
import type { AccessOptions } from './endpoint-access.ts';

export const trashPath = '/.ratchet/trash';

export interface TrashEndpointOptions extends AccessOptions {
  readonly trash: TrashKeeper | undefined;
  readonly storage: Storage;
  readonly root: RepoRoot | undefined;
  readonly maxRepoDepth: number;
  readonly listenerName: () => string;
  /** Refused restores and purges are recorded too (--audit-log). */
  readonly audit: AuditLog | undefined;
}

interface Action {
  readonly method: 'GET' | 'POST';
  readonly params: readonly string[];
  readonly repoRequired: boolean;
}

const actions: Readonly<Record<string, Action>> = {
  [trashPath]: { method: 'GET', params: ['repo'], repoRequired: false },
  [`${trashPath}/restore`]: { method: 'POST', params: ['repo', 'since', 'name'], repoRequired: true },
  [`${trashPath}/purge`]: { method: 'POST', params: ['repo', 'older-than'], repoRequired: false },
};

/** True for the paths this module answers. */
export function isTrashEndpoint(path: string): boolean {
  return path === trashPath || path.startsWith(`${trashPath}/`);
}

/** Answers a trash request with the JSON document to send. */
export async function serveTrash(
  path: string,
  req: HttpRequest,
  query: URLSearchParams,
  options: TrashEndpointOptions,
  client: ClientAddress,
  onUser: (user: string | undefined) => void,
): Promise<unknown> {
  const action = actions[path];
  if (action === undefined) throw new RatchetError('NOT_FOUND', 'not found');
  const method = req.method === 'HEAD' ? 'GET' : (req.method ?? '');
  if (method !== action.method) {
    throw new RatchetError('METHOD_NOT_ALLOWED', `method ${req.method ?? ''} not allowed here`, {
      headers: { Allow: action.method === 'GET' ? 'GET, HEAD' : 'POST' },
    });
  }
  for (const name of query.keys()) {
    if (!action.params.includes(name))
      throw new RatchetError(
        'BAD_REQUEST',
        `unknown parameter "${name}" (known: ${action.params.join(', ')})`,
      );
  }
  const repoText = single(query, 'repo');
  // Below a listener root (/{user}), "every repository" is not defined: name one.
  if ((action.repoRequired || options.root !== undefined) && repoText === undefined)
    throw new RatchetError('BAD_REQUEST', 'name the repository: ?repo=/host1/');
  const named = repoText === undefined ? [] : repoParam(repoText);
  const repoFor = (user: string | undefined): RepoPath =>
    options.root === undefined
      ? named
      : placeUnderRoot(options.root, user, { kind: 'repo', repo: named }).repo;
  let asked: string | undefined;
  const user = await authorizeEndpoint(
    { kind: 'operation', operation: 'delete', resource: 'data', repo: repoFor },
    req,
    client,
    options,
    (who) => {
      asked = who;
      onUser(who);
    },
  ).catch((err: unknown) => {
    if (method === 'POST' && err instanceof RatchetError && err.code === 'FORBIDDEN') {
      options.audit?.record({
        action: path === `${trashPath}/purge` ? 'trash-purge' : 'trash-restore',
        user: asked,
        client: client.address,
        listener: options.listenerName(),
        method,
        repo: repoText,
        status: errorStatus.FORBIDDEN,
        reason: err.message,
      });
    }
    throw err;
  });
  const trash = options.trash;
  if (trash === undefined)
    throw new RatchetError('NOT_FOUND', 'the trash is off (start the server with --delete-grace)');
  // Without a repository, the whole data folder: every repository's trash.
  const repo = repoText === undefined ? undefined : repoFor(user);
  if (repo !== undefined) {
    checkRepoDepth(repo, options.maxRepoDepth);
    if (!(await options.storage.repoExists(repo)))
      throw new RatchetError('NOT_FOUND', `repository ${repoDisplay(repo)} does not exist`);
  }
  const repos = repo === undefined ? undefined : [repo];
  const by = { user, client: client.address, listener: options.listenerName(), method: req.method };

  if (path === trashPath) return { entries: (await trash.list(repos)).map(entryJson) };
  if (path === `${trashPath}/purge`) {
    const olderThan = single(query, 'older-than');
    const before = Date.now() - (olderThan === undefined ? 0 : parsed(parseDuration, olderThan));
    return await trash.purge(before, repos, by);
  }
  const sinceText = single(query, 'since');
  const since = sinceText === undefined ? 0 : parsed(parseSince, sinceText);
  const names = new Set(query.getAll('name'));
  const entries = (await trash.list(repos)).filter(
    (entry) => entry.deletedMs >= since && (names.size === 0 || names.has(entry.name)),
  );
  const reports = await trash.restore(entries, by);
  const problems = reports.filter((report) => !restoreSucceeded(report)).length;
  return {
    restored: reports.length - problems,
    problems,
    results: reports.map((report) => ({
      ...entryJson(report.entry),
      outcome: report.outcome,
      ...(report.error === undefined ? {} : { error: report.error }),
    })),
  };
}

function entryJson(entry: TrashEntry): Record<string, unknown> {
  return {
    repo: repoDisplay(entry.repo),
    type: entry.type,
    name: entry.name,
    size: entry.size,
    deleted: new Date(entry.deletedMs).toISOString(),
  };
}

/** A parameter given at most once. */
function single(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw new RatchetError('BAD_REQUEST', `give "${name}" once`);
  return values[0];
}

function repoParam(text: string): RepoPath {
  const repo = parseRepoText(text);
  if (repo === undefined) throw new RatchetError('BAD_REQUEST', `"${text}" is no repository path`);
  return repo;
}

function parsed<T>(parse: (text: string) => T, text: string): T {
  try {
    return parse(text);
  } catch (err) {
    throw new RatchetError('BAD_REQUEST', err instanceof Error ? err.message : String(err));
  }
}
