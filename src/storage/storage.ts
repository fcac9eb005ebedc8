/**
 * The Storage interface every backend implements (local filesystem, memory, later S3): the verbs
 * of an object store and nothing more. Exclusive create instead of rename, ranged reads that
 * report the object size, listings as async iterables a backend may page through, deletes that
 * say what they removed. Every verb takes an AbortSignal: a client that leaves cancels the work.
 * No HTTP here: the protocol layer turns results and RatchetErrors into responses.
 */
import type { RangeSpec, ResolvedRange } from '../domain/byte-range.ts';
import type { ObjectEntry, ObjectRef } from '../domain/object-ref.ts';
import type { ObjectType } from '../domain/object-types.ts';
import type { RepoPath } from '../domain/repo-path.ts';

/** How a listing will be used. */
export interface ListHints {
  /** False: do not keep what this listing reads (default true). */
  readonly cache?: boolean;
}

/** What an approved upload turned out to be. */
export interface ApprovedUpload {
  /** Hex SHA-256 of the content. */
  readonly sha256: string;
  readonly size: number;
  /** The content was checked against an expected hash (its name). */
  readonly verified: boolean;
}

/** The veto a backend honours: `approve()` after the last byte, before publishing. */
export interface UploadCheck {
  /**
   * What the body must be, when known before it arrives: an object store signs the expected hash
   * as the payload hash and sends the declared length, so the store itself refuses a mismatch.
   */
  readonly expected?: { readonly sha256: string | undefined; readonly length: number | undefined };
  /** Throws HASH_MISMATCH or INCOMPLETE_BODY unless the consumed body may be stored. */
  approve(): ApprovedUpload;
}

export interface WriteOptions {
  /**
   * The veto over the upload: the backend consumes the whole body, then calls `approve()` before
   * the object becomes visible, and publishes nothing when it throws.
   */
  readonly check: UploadCheck;
  readonly signal?: AbortSignal;
}

export interface WriteResult {
  /** False when an object with identical content was already there and nothing was written. */
  readonly created: boolean;
  readonly size: number;
}

export interface DeleteResult {
  /** False when there was nothing to delete (a delete is idempotent). */
  readonly existed: boolean;
  /** Bytes removed; 0 when nothing existed. */
  readonly bytes: number;
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

/** An object in a repository's trash. */
export interface TrashEntry {
  readonly repo: RepoPath;
  readonly type: ObjectType | 'config';
  /** The object's name ('config' for the config). */
  readonly name: string;
  readonly size: number;
  /** When it was deleted (ms since the epoch). */
  readonly deletedMs: number;
}

/**
 * restored: back under its name. already-there: an identical object is under the name (the trash
 * copy is dropped). conflict: a different object is under the name (nothing changed). damaged:
 * the trash copy does not match its name (nothing changed). gone: purged meanwhile.
 */
export type RestoreOutcome = 'restored' | 'already-there' | 'conflict' | 'damaged' | 'gone';

/**
 * Errors are RatchetErrors: NOT_FOUND, CONFLICT (same name, other content), HASH_MISMATCH,
 * INCOMPLETE_BODY (from the upload check), RANGE_NOT_SATISFIABLE (with the size), NO_SPACE,
 * UNAVAILABLE; an aborted signal rejects with its reason.
 */
export interface Storage {
  /** Creates the repository; succeeds when it exists already. */
  createRepo(repo: RepoPath, signal?: AbortSignal): Promise<void>;
  /** True when a repository exists at this path. */
  repoExists(repo: RepoPath, signal?: AbortSignal): Promise<boolean>;
  /** The object's size, or undefined when it does not exist. */
  stat(ref: ObjectRef, signal?: AbortSignal): Promise<number | undefined>;
  /** Opens the object, or the part of it named by the range, for reading. */
  read(ref: ObjectRef, range: RangeSpec | undefined, signal?: AbortSignal): Promise<ReadResult>;
  /** Stores the body atomically and exclusively: the whole approved object appears, or nothing. */
  write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult>;
  /** Removes the object if it is there, and says what was removed. */
  delete(ref: ObjectRef, signal?: AbortSignal): Promise<DeleteResult>;
  /**
   * Every valid object of a type; sizes are exact. NOT_FOUND when the repository does not exist.
   * A background walk (the usage count) passes `{ cache: false }`: a backend that caches listings
   * answers from its cache where that is current but does not fill it, so folders no client has
   * listed stay out of memory.
   */
  list(repo: RepoPath, type: ObjectType, signal?: AbortSignal, hints?: ListHints): AsyncIterable<ObjectEntry>;
  /** Every repository in the store, nested ones included. */
  listRepos(signal?: AbortSignal): AsyncIterable<RepoPath>;
  /**
   * Moves the object into its repository's trash instead of removing it (--delete-grace):
   * listings, stat and read then behave as after a delete; reports what a delete would.
   */
  moveToTrash(ref: ObjectRef, deletedMs: number, signal?: AbortSignal): Promise<DeleteResult>;
  /** The repository's trash; none when it has none or the repository is gone. */
  listTrash(repo: RepoPath, signal?: AbortSignal): AsyncIterable<TrashEntry>;
  /** Puts a trashed object back under its name (see RestoreOutcome). */
  restoreFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<RestoreOutcome>;
  /** Removes a trashed object for good; the bytes freed (0 when it was gone already). */
  purgeFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<number>;
  /** Checks that the store accepts a durable write now (readiness); throws UNAVAILABLE if not. */
  probe(signal?: AbortSignal): Promise<void>;
  /** Releases resources (file handles, clients) and saves state. */
  close(): Promise<void>;
}
