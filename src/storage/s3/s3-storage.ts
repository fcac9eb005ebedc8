/**
 * Repositories in an S3-compatible bucket (Ceph RGW, MinIO, AWS), with the file backend's
 * guarantees: verified uploads (s3-upload.ts), exclusive create, nothing partial, exact listings
 * read from the store on every call (no listing cache: a listing is what prune deletes from).
 * Layout and keys: s3-layout.ts. Store errors become RatchetErrors in s3-errors.ts.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { RatchetError, hasCode } from '../../errors.ts';
import { applyRange, resolveRange, type RangeSpec } from '../../domain/byte-range.ts';
import type { ObjectEntry, ObjectRef } from '../../domain/object-ref.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import { repoKey, type RepoPath } from '../../domain/repo-path.ts';
import type {
  DeleteResult,
  ReadResult,
  RestoreOutcome,
  Storage,
  TrashEntry,
  WriteOptions,
  WriteResult,
} from '../storage.ts';
import { writeChecked } from '../upload-check.ts';
import { createS3Client, type S3ClientSettings } from './s3-client.ts';
import { InstanceRegistry, type InstanceFacts, type LiveInstance } from './s3-instances.ts';
import { fromS3Error, isNameTaken, isNotFound, s3Status } from './s3-errors.ts';
import { S3Layout, type S3Location } from './s3-layout.ts';
import { putObject } from './s3-upload.ts';

/** Uploads up to this size skip the HEAD before the PUT. */
const sendWithoutHeadBytes = 1024 * 1024;

export interface S3StorageOptions extends S3ClientSettings {
  readonly location: S3Location;
  readonly logger?: Logger;
}

/** What a HEAD says of a stored object. */
interface Head {
  readonly size: number;
  /** The content's SHA-256 as Ratchet stored it (metadata); restic's own uploads have none. */
  readonly sha256: string | undefined;
}

export class S3Storage implements Storage {
  private readonly client: S3Client;
  private readonly layout: S3Layout;
  private readonly bucket: string;
  private readonly logger: Logger | undefined;
  /** Repositories seen to exist; Ratchet never removes one, so a positive answer stays true. */
  private readonly knownRepos = new Set<string>();
  /** The store honours If-None-Match: * on PutObject (checked by init()). */
  private exclusiveCreate = true;
  /** This server's heartbeat on the prefix, once it has joined (servers only, not commands). */
  private instances: InstanceRegistry | undefined;

  constructor(options: S3StorageOptions) {
    this.client = createS3Client(options);
    this.layout = new S3Layout(options.location);
    this.bucket = options.location.bucket;
    this.logger = options.logger;
  }

  /**
   * Checks that the bucket answers, and whether the store honours a conditional create: a probe key
   * is created twice with If-None-Match: *. Where the second one succeeds the condition is ignored
   * (Garage): writes go on without it, with a warning (content-addressed names make a racing
   * duplicate harmless; config is compared by its stored hash before it is written).
   */
  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw new Error(`bucket ${this.bucket}: ${describe(err)}`, { cause: err });
    }
    const key = this.layout.conditionProbeKey(randomUUID());
    const create = () => this.client.send(smallPut(this.bucket, key, 'probe', { IfNoneMatch: '*' }));
    await create();
    try {
      await create();
      this.exclusiveCreate = false;
      this.logger?.warn(
        { bucket: this.bucket },
        'the object store ignores If-None-Match on PutObject: concurrent uploads of one name are not exclusive',
      );
    } catch (err) {
      if (!isNameTaken(err)) throw new Error(`bucket ${this.bucket}: ${describe(err)}`, { cause: err });
      this.exclusiveCreate = true;
    } finally {
      await this.client
        .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))
        .catch(() => undefined);
    }
  }

  /** True when the store honours If-None-Match (after init()). */
  get conditionalCreate(): boolean {
    return this.exclusiveCreate;
  }

  async createRepo(repo: RepoPath, signal?: AbortSignal): Promise<void> {
    const key = this.layout.markerKey(repo);
    await this.call('create repository', signal, () =>
      this.client.send(smallPut(this.bucket, key, ''), { abortSignal: signal }),
    );
    this.knownRepos.add(repoKey(repo));
  }

  /** A marker says so; so does a config (a repository restic's s3 backend created directly). */
  async repoExists(repo: RepoPath, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    if (this.knownRepos.has(repoKey(repo))) return true;
    let marker: string;
    try {
      marker = this.layout.markerKey(repo);
    } catch {
      return false;
    }
    const exists =
      (await this.head(marker, signal)) !== undefined ||
      (await this.head(this.layout.objectKey({ repo, type: 'config' }), signal)) !== undefined;
    if (exists) this.knownRepos.add(repoKey(repo));
    return exists;
  }

  async stat(ref: ObjectRef, signal?: AbortSignal): Promise<number | undefined> {
    return (await this.head(this.layout.objectKey(ref), signal))?.size;
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined, signal?: AbortSignal): Promise<ReadResult> {
    const key = this.layout.objectKey(ref);
    if (range === undefined) {
      const { body, length } = await this.get(key, undefined, signal);
      return { size: length, range: undefined, body };
    }
    return (await this.readRange(key, range, signal)) ?? this.readRangeAfterHead(key, range, signal);
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    const { signal, check } = options;
    const key = this.layout.objectKey(ref);
    if (!(await this.repoExists(ref.repo, signal))) throw new RatchetError('NOT_FOUND', 'no such repository');
    // A HEAD first, so that a retried upload of a stored object is not sent to the store again;
    // a small one is sent straight away (one request instead of two), the exclusive create
    // deciding. A store that ignores the condition always gets the HEAD.
    const length = check.expected?.length;
    const headFirst = !this.exclusiveCreate || length === undefined || length > sendWithoutHeadBytes;
    const existing = headFirst ? await this.head(key, signal) : undefined;
    if (existing !== undefined) {
      for await (const chunk of body) void chunk;
      signal?.throwIfAborted();
      return this.settleExisting(key, existing, check.approve());
    }
    const outcome = await putObject({
      client: this.client,
      bucket: this.bucket,
      key,
      body,
      check,
      exclusive: this.exclusiveCreate,
      signal,
      mapError: (err) => fromS3Error(err, 'upload', signal),
      isNameTaken,
    });
    if (outcome.stored) return { created: true, size: outcome.approved.size };
    const winner = await this.head(key, signal);
    if (winner === undefined)
      throw new RatchetError('UNAVAILABLE', 'the object store refused and lost the object');
    return this.settleExisting(key, winner, outcome.approved);
  }

  async delete(ref: ObjectRef, signal?: AbortSignal): Promise<DeleteResult> {
    const key = this.layout.objectKey(ref);
    const head = await this.head(key, signal);
    if (head === undefined) return { existed: false, bytes: 0 };
    await this.remove(key, signal);
    return { existed: true, bytes: head.size };
  }

  async *list(repo: RepoPath, type: ObjectType, signal?: AbortSignal): AsyncIterable<ObjectEntry> {
    if (!(await this.repoExists(repo, signal))) throw new RatchetError('NOT_FOUND', 'no such repository');
    const prefix = this.layout.typePrefix(repo, type);
    for await (const item of this.listKeys(prefix, signal)) {
      const name = this.layout.nameOf(type, item.key.slice(prefix.length));
      if (name === undefined) continue;
      yield type === 'snapshots'
        ? { name, size: item.size, modifiedMs: item.modifiedMs }
        : { name, size: item.size };
    }
  }

  async *listRepos(signal?: AbortSignal): AsyncIterable<RepoPath> {
    for await (const item of this.listKeys(this.layout.markersPrefix(), signal)) {
      const repo = this.layout.repoOfMarker(item.key);
      if (repo !== undefined) yield repo;
    }
  }

  async moveToTrash(ref: ObjectRef, deletedMs: number, signal?: AbortSignal): Promise<DeleteResult> {
    const key = this.layout.objectKey(ref);
    const head = await this.head(key, signal);
    if (head === undefined) return { existed: false, bytes: 0 };
    const name = ref.type === 'config' ? 'config' : ref.name;
    const trashKey = this.layout.trashKey({ repo: ref.repo, type: ref.type, name, deletedMs });
    await this.call('move to trash', signal, () =>
      this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: trashKey, CopySource: this.copySource(key) }),
        { abortSignal: signal },
      ),
    );
    await this.remove(key, signal);
    return { existed: true, bytes: head.size };
  }

  async *listTrash(repo: RepoPath, signal?: AbortSignal): AsyncIterable<TrashEntry> {
    for await (const item of this.listKeys(this.layout.trashPrefix(repo), signal)) {
      const entry = this.layout.trashEntryOf(repo, item.key, item.size);
      if (entry !== undefined) yield entry;
    }
  }

  /** Put back through the upload path: verified against the name, exclusive, never over another. */
  async restoreFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<RestoreOutcome> {
    const trashKey = this.layout.trashKey(entry);
    let source: Awaited<ReturnType<S3Storage['get']>>;
    try {
      source = await this.get(trashKey, undefined, signal);
    } catch (err) {
      if (hasCode(err, 'NOT_FOUND')) return 'gone';
      throw err;
    }
    const ref: ObjectRef =
      entry.type === 'config'
        ? { repo: entry.repo, type: 'config' }
        : { repo: entry.repo, type: entry.type, name: entry.name };
    if (!(await this.repoExists(entry.repo, signal))) await this.createRepo(entry.repo, signal);
    let outcome: RestoreOutcome;
    try {
      const sha256 = entry.type === 'config' ? undefined : entry.name;
      const result = await writeChecked(this, ref, source.body, { sha256, length: source.length }, signal);
      outcome = result.created ? 'restored' : 'already-there';
    } catch (err) {
      source.body.destroy();
      if (hasCode(err, 'CONFLICT')) return 'conflict';
      if (hasCode(err, 'HASH_MISMATCH')) return 'damaged';
      throw err;
    }
    await this.remove(trashKey, signal);
    return outcome;
  }

  async purgeFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<number> {
    const key = this.layout.trashKey(entry);
    const head = await this.head(key, signal);
    if (head === undefined) return 0;
    await this.remove(key, signal);
    return head.size;
  }

  /** A small durable write: the store accepts writes now. */
  async probe(signal?: AbortSignal): Promise<void> {
    const key = this.layout.probeKey();
    await this.call('readiness probe', signal, () =>
      this.client.send(smallPut(this.bucket, key, String(Date.now())), { abortSignal: signal }),
    );
  }

  /**
   * Announces this server on the prefix (a heartbeat until close) and answers the other servers
   * that are alive on it; the caller decides whether that is allowed (it needs --state).
   */
  joinInstances(id: string, facts: InstanceFacts): Promise<LiveInstance[]> {
    this.instances ??= new InstanceRegistry(id, this.client, this.bucket, this.layout, this.logger);
    return this.instances.join(facts);
  }

  async close(): Promise<void> {
    await this.instances?.stop();
    this.client.destroy();
  }

  /**
   * One ranged GET: the store's Content-Range gives the size. Undefined where that cannot decide
   * alone (416, an empty object, a store that sent something else): then HEAD first.
   */
  private async readRange(
    key: string,
    range: RangeSpec,
    signal: AbortSignal | undefined,
  ): Promise<ReadResult | undefined> {
    if (range.kind === 'suffix' && range.length === 0) return undefined;
    const header =
      range.kind === 'suffix' ? `bytes=-${range.length}` : `bytes=${range.start}-${range.end ?? ''}`;
    let answer;
    try {
      answer = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: header }),
        {
          abortSignal: signal,
        },
      );
    } catch (err) {
      if (signal?.aborted !== true && s3Status(err) === 416) return undefined;
      throw fromS3Error(err, 'GET', signal);
    }
    const body = answer.Body;
    if (!(body instanceof Readable)) throw new RatchetError('INTERNAL', 'the object store sent no body');
    const parsed = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(answer.ContentRange ?? '');
    const size = Number(parsed?.[3]);
    const resolved = parsed === null ? undefined : resolveRange(range, size);
    if (resolved?.start !== Number(parsed?.[1]) || resolved.end !== Number(parsed?.[2])) {
      body.destroy();
      return undefined;
    }
    return { size, range: resolved, body };
  }

  /** A range resolved against the size a HEAD gives, exactly as on every backend (416 with the size). */
  private async readRangeAfterHead(
    key: string,
    range: RangeSpec,
    signal: AbortSignal | undefined,
  ): Promise<ReadResult> {
    const head = await this.head(key, signal);
    if (head === undefined) throw new RatchetError('NOT_FOUND', 'no such object');
    const resolved = applyRange(range, head.size);
    const { body } = await this.get(key, resolved && `bytes=${resolved.start}-${resolved.end}`, signal);
    return { size: head.size, range: resolved, body };
  }

  /** An object already under the key: the same content (no write) or a CONFLICT. */
  private async settleExisting(
    key: string,
    existing: Head,
    approved: { sha256: string; size: number; verified: boolean },
  ): Promise<WriteResult> {
    // restic's own uploads carry no hash: a verified name is its content's hash by definition.
    const storedHash = existing.sha256 ?? (approved.verified ? approved.sha256 : await this.hashOf(key));
    if (storedHash !== approved.sha256) {
      throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
    }
    return { created: false, size: approved.size };
  }

  private async hashOf(key: string): Promise<string> {
    const { body } = await this.get(key, undefined, undefined);
    const hash = createHash('sha256');
    for await (const chunk of body) hash.update(chunk as Uint8Array);
    return hash.digest('hex');
  }

  private async head(key: string, signal: AbortSignal | undefined): Promise<Head | undefined> {
    try {
      const answer = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      return { size: answer.ContentLength ?? 0, sha256: answer.Metadata?.['sha256'] };
    } catch (err) {
      if (signal?.aborted !== true && isNotFound(err)) return undefined;
      throw fromS3Error(err, 'HEAD', signal);
    }
  }

  private async get(
    key: string,
    range: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ body: Readable; length: number }> {
    const answer = await this.call('GET', signal, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }), {
        abortSignal: signal,
      }),
    );
    if (!(answer.Body instanceof Readable))
      throw new RatchetError('INTERNAL', 'the object store sent no body');
    return { body: answer.Body, length: answer.ContentLength ?? 0 };
  }

  private async remove(key: string, signal: AbortSignal | undefined): Promise<void> {
    await this.call('DELETE', signal, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal }),
    );
  }

  /** Every key under the prefix, page by page as the store sends them. */
  private async *listKeys(
    prefix: string,
    signal: AbortSignal | undefined,
  ): AsyncIterable<{ key: string; size: number; modifiedMs: number }> {
    let token: string | undefined;
    do {
      const page = await this.call('LIST', signal, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
          { abortSignal: signal },
        ),
      );
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        yield { key: item.Key, size: item.Size ?? 0, modifiedMs: item.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** CopySource names bucket and key URL-encoded, segment by segment. */
  private copySource(key: string): string {
    return `${this.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Runs a store call; its failure as a RatchetError. */
  private async call<T>(what: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    signal?.throwIfAborted();
    try {
      return await run();
    } catch (err) {
      throw fromS3Error(err, what, signal);
    }
  }
}

/** A PutObject of a few bytes of Ratchet's own (markers, probes), with its length declared. */
function smallPut(
  bucket: string,
  key: string,
  text: string,
  extra: { IfNoneMatch?: string } = {},
): PutObjectCommand {
  const body = Buffer.from(text);
  return new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ...extra });
}

function describe(err: unknown): string {
  const unavailable = fromS3Error(err, 'start');
  return unavailable instanceof Error ? unavailable.message : String(err);
}
