/**
 * The Storage interface every backend implements (local filesystem, memory, later S3).
 * Shaped for object stores too: exclusive create instead of rename, ranged reads that report
 * the object size, listings as async iterables that a backend may page through.
 */
import type { ObjectType, RepoPath } from '../protocol/route.ts';
import type { RangeSpec, ResolvedRange } from '../protocol/range.ts';

/** One stored file of a repository: its config, or an object of a type. */
export type ObjectRef =
  | { readonly repo: RepoPath; readonly type: 'config' }
  | { readonly repo: RepoPath; readonly type: ObjectType; readonly name: string };

export interface ObjectEntry {
  readonly name: string;
  readonly size: number;
  /** When the object was stored (ms since the epoch), where the backend knows it cheaply. */
  readonly modifiedMs?: number;
}

/** What a delete did: whether the object was there, and the bytes it held (0 when absent). */
export interface DeleteResult {
  readonly existed: boolean;
  readonly bytes: number;
}

/** What a repository holds, for quotas and metrics. */
export interface RepoSummary {
  /** Bytes of all objects and the config. */
  readonly bytes: number;
  readonly objects: Readonly<Record<ObjectType, number>>;
  /** When the newest snapshot object was stored (ms since the epoch), if there is one. */
  readonly newestSnapshotMs: number | undefined;
}

export interface WriteOptions {
  /** Hex SHA-256 the content must have; undefined skips verification (config, --no-verify-upload). */
  readonly expectedSha256: string | undefined;
  /** Declared body length; a body that ends short is an incomplete upload. */
  readonly contentLength: number | undefined;
  readonly signal?: AbortSignal;
}

export interface WriteResult {
  /** False when an object with identical content was already there and nothing was written. */
  readonly created: boolean;
  readonly size: number;
}

interface ReadCommon {
  readonly size: number;
  /** The bytes served: the whole object when no range was asked for. */
  readonly range: ResolvedRange | undefined;
}

/** Small reads come whole in memory, so the server can answer them without a stream. */
export interface ReadInMemory extends ReadCommon {
  readonly data: Uint8Array;
  readonly body?: undefined;
}

/** Large reads come as a stream; destroying it releases what the backend holds open. */
export interface ReadStreamed extends ReadCommon {
  readonly body: NodeJS.ReadableStream & AsyncIterable<Uint8Array>;
  readonly data?: undefined;
}

export type ReadResult = ReadInMemory | ReadStreamed;

/**
 * Errors are RatchetErrors: NOT_FOUND, CONFLICT (same name, other content), HASH_MISMATCH,
 * INCOMPLETE_BODY, RANGE_NOT_SATISFIABLE (with the size), NO_SPACE, UNAVAILABLE.
 */
export interface Storage {
  /** Creates the repository's folders; succeeds when it exists already. */
  createRepo(repo: RepoPath): Promise<void>;
  /** True when a repository exists at this path. */
  repoExists(repo: RepoPath): Promise<boolean>;
  /** The object's size, or undefined when it does not exist. */
  stat(ref: ObjectRef): Promise<number | undefined>;
  /** Opens the object, or the part of it named by the range, for reading. */
  read(ref: ObjectRef, range: RangeSpec | undefined): Promise<ReadResult>;
  /** Stores the body atomically and exclusively: the whole verified object appears, or nothing. */
  write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult>;
  /** Removes the object; idempotent: an absent object reports { existed: false, bytes: 0 }. */
  delete(ref: ObjectRef): Promise<DeleteResult>;
  /** Every valid object of a type; sizes are exact. NOT_FOUND when the repository does not exist. */
  list(repo: RepoPath, type: ObjectType): AsyncIterable<ObjectEntry>;
  /** Checks that the store accepts a durable write now (readiness); throws UNAVAILABLE if not. */
  probe(): Promise<void>;
  /** Every repository in the store, nested ones included. */
  listRepos(): AsyncIterable<RepoPath>;
  /** Totals for the repository; NOT_FOUND when it does not exist. */
  summarize(repo: RepoPath): Promise<RepoSummary>;
  /** Releases resources (file handles, clients) and saves state. */
  close(): Promise<void>;
}
