/** One handler per restic REST resource operation; each answers with exactly 200/206 on success. */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RatchetError } from '../errors.ts';
import type { HttpRequest, HttpResponse } from '../util/http-types.ts';
import { listFormat, sendListing } from './list-response.ts';
import type { Storage } from '../storage/storage.ts';
import { writeChecked } from '../storage/upload-check.ts';
import type { ObjectRef } from '../domain/object-ref.ts';
import type { Operation } from '../access/policy.ts';
import { parseRange } from './range.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import type { Route } from './route.ts';
import { repoKey } from '../domain/repo-path.ts';
import type { QuotaManager } from '../quota/quota-manager.ts';
import type { TrashKeeper } from '../trash/trash-keeper.ts';
import type { UserLimits } from '../limits/user-limits.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { continueUpload } from '../util/http-types.ts';

export interface HandlerContext {
  readonly storage: Storage;
  /** Where deleted objects (but locks) go with --delete-grace; undefined: deletes are final. */
  readonly trash: TrashKeeper | undefined;
  readonly verifyUploads: boolean;
  readonly quota: QuotaManager;
  readonly limits: UserLimits<boolean>;
  readonly metrics: Metrics | undefined;
}

export interface Exchange {
  readonly req: HttpRequest;
  readonly res: HttpResponse;
  readonly route: Route;
  readonly query: URLSearchParams;
  readonly signal: AbortSignal;
  /** The authenticated user; undefined without authentication. */
  readonly user: string | undefined;
  /** Bytes a change stored or removed, once known (for the audit trail). */
  changedBytes?: number;
}

/** Runs the operation on the route and writes the response. */
export async function handleOperation(
  ctx: HandlerContext,
  operation: Operation,
  exchange: Exchange,
): Promise<void> {
  const { route } = exchange;
  if (route.kind === 'repo') return createRepo(ctx, route.repo, exchange);
  if (route.kind === 'list') {
    const format = listFormat(exchange.req.headers.accept);
    return sendListing(
      exchange.res,
      ctx.storage.list(route.repo, route.type, exchange.signal),
      format,
      exchange.req.method === 'HEAD',
    );
  }
  const ref: ObjectRef = route.kind === 'config' ? { repo: route.repo, type: 'config' } : route;
  switch (operation) {
    case 'read':
      return exchange.req.method === 'HEAD' ? statObject(ctx, ref, exchange) : readObject(ctx, ref, exchange);
    case 'write':
      return writeObject(ctx, ref, exchange);
    case 'delete':
      return deleteObject(ctx, ref, exchange);
    default:
      throw new RatchetError('METHOD_NOT_ALLOWED', 'operation not supported here');
  }
}

async function createRepo(
  ctx: HandlerContext,
  repo: RepoPath,
  { query, res, signal, user }: Exchange,
): Promise<void> {
  if (query.get('create') !== 'true')
    throw new RatchetError('BAD_REQUEST', 'repository POST needs ?create=true');
  const admission = await ctx.quota.admitRepo(repo, user, () => ctx.storage.repoExists(repo, signal));
  try {
    await ctx.storage.createRepo(repo, signal);
  } catch (err) {
    await admission.release();
    throw err;
  }
  await admission.commit();
  ok(res);
}

async function statObject(ctx: HandlerContext, ref: ObjectRef, { res }: Exchange): Promise<void> {
  const size = await ctx.storage.stat(ref);
  if (size === undefined) throw new RatchetError('NOT_FOUND', 'no such object');
  // One writeHead with every header: cheaper than a setHeader each on this hot path.
  res.writeHead(200, objectHeaders(size));
  res.end();
}

async function readObject(ctx: HandlerContext, ref: ObjectRef, { req, res, user }: Exchange): Promise<void> {
  const read = await ctx.storage.read(ref, parseRange(req.headers.range));
  const { size, range } = read;
  const length = range ? range.end - range.start + 1 : size;
  res.statusCode = range ? 206 : 200;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Length', length);
  if (range) res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  if (read.data !== undefined && !ctx.limits.active) {
    // In memory already: one write, without a stream pipeline's per-request set-up.
    res.end(read.data);
  } else {
    const body = read.body ?? Readable.from([read.data]);
    await pipeline(ctx.limits.active ? ctx.limits.paceDownload(user, body) : body, res);
  }
  ctx.metrics?.blob('read', user, repoKey(ref.repo), ref.type, length);
}

async function writeObject(ctx: HandlerContext, ref: ObjectRef, exchange: Exchange): Promise<void> {
  const { req, res, signal, user } = exchange;
  const contentLength = declaredLength(req);
  const reservation = await ctx.quota.reserve(ref, user, contentLength);
  // Accepted (identity, access, quota): a client waiting on `Expect: 100-continue` may send now.
  continueUpload(res);
  let body = requestBody(req);
  if (ctx.limits.active) body = ctx.limits.paceUpload(user, body);
  const uploaded = ctx.metrics?.startUpload();
  try {
    const expected = {
      sha256: ctx.verifyUploads && ref.type !== 'config' ? ref.name : undefined,
      length: contentLength,
    };
    const result = await writeChecked(ctx.storage, ref, reservation.limit(body), expected, signal);
    await reservation.commit(result.created ? result.size : 0);
    exchange.changedBytes = result.size;
    ctx.metrics?.blob('write', user, repoKey(ref.repo), ref.type, result.size);
  } catch (err) {
    await reservation.release();
    // A full disk: old trash makes room for restic's retry (this upload's body is spent).
    if (ctx.trash !== undefined && err instanceof RatchetError && err.code === 'NO_SPACE')
      await ctx.trash.reclaim(Math.max(contentLength ?? 0, roomAfterFullDisk));
    throw err;
  } finally {
    uploaded?.();
  }
  ok(res);
}

/** Least room an early purge of the trash makes after a full disk (restic's packs are ~16 MiB). */
const roomAfterFullDisk = 64 * 1024 * 1024;

async function deleteObject(ctx: HandlerContext, ref: ObjectRef, exchange: Exchange): Promise<void> {
  const { res, user } = exchange;
  // Locks come and go with every restic command: they are never kept.
  const trash = ref.type === 'locks' ? undefined : ctx.trash;
  const { existed, bytes } = trash === undefined ? await ctx.storage.delete(ref) : await trash.discard(ref);
  exchange.changedBytes = bytes;
  if (existed) {
    // The keeper counts what it moves into the trash.
    if (trash === undefined) await ctx.quota.deleted(ref, bytes);
    ctx.metrics?.blob('delete', user, repoKey(ref.repo), ref.type, bytes);
  }
  ok(res);
}

/** The Content-Length of the request; undefined for a chunked body. */
function declaredLength(req: HttpRequest): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header)) throw new RatchetError('BAD_REQUEST', 'invalid Content-Length');
  return Number(header);
}

/** The request body; a connection lost mid-body becomes INCOMPLETE_BODY. */
async function* requestBody(req: HttpRequest): AsyncIterable<Uint8Array> {
  try {
    // A consumer that stops early (quota exceeded mid-stream, disk full) must not destroy the
    // request: that destroys the socket before the 507 is sent. sendError then drains a small
    // body, or closes the connection (resets the HTTP/2 stream) after answering.
    for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
  } catch (err) {
    throw new RatchetError('INCOMPLETE_BODY', 'the upload ended early', { cause: err });
  }
  if (!req.complete) throw new RatchetError('INCOMPLETE_BODY', 'the upload ended early');
}

function ok(res: HttpResponse): void {
  res.writeHead(200, emptyBody);
  res.end();
}

const emptyBody = { 'Content-Length': 0 } as const;

/** The headers of an object's (HEAD) answer. */
function objectHeaders(length: number): Record<string, string | number> {
  return { 'Content-Type': 'application/octet-stream', 'Content-Length': length, 'Accept-Ranges': 'bytes' };
}
