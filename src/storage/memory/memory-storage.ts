/**
 * In-memory storage with the same semantics as the filesystem backend, for tests and for the
 * conformance suite that keeps backends honest.
 */
import { createHash } from 'node:crypto';
import { RatchetError } from '../../errors.ts';
import type { RangeSpec } from '../../protocol/range.ts';
import { applyRange } from '../../protocol/range.ts';
import type { ObjectType, RepoPath } from '../../protocol/route.ts';
import { repoFromKey, repoKey } from '../../protocol/route.ts';
import type {
  DeleteResult,
  ObjectEntry,
  ObjectRef,
  ReadResult,
  RepoSummary,
  Storage,
  WriteOptions,
  WriteResult,
} from '../storage.ts';

export class MemoryStorage implements Storage {
  private readonly repos = new Map<string, Map<string, Buffer>>();
  // When each object was stored, keyed by repo and object key, for summaries.
  private readonly storedAt = new Map<string, number>();

  createRepo(repo: RepoPath): Promise<void> {
    const key = repoKey(repo);
    if (!this.repos.has(key)) this.repos.set(key, new Map());
    return Promise.resolve();
  }

  repoExists(repo: RepoPath): Promise<boolean> {
    return Promise.resolve(this.repos.has(repoKey(repo)));
  }

  stat(ref: ObjectRef): Promise<number | undefined> {
    return Promise.resolve(this.find(ref)?.length);
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined): Promise<ReadResult> {
    const content = this.find(ref);
    if (content === undefined) throw new RatchetError('NOT_FOUND', 'no such object');
    await Promise.resolve();
    const resolved = applyRange(range, content.length);
    const slice = resolved ? content.subarray(resolved.start, resolved.end + 1) : content;
    return { size: content.length, range: resolved, data: slice };
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    const objects = this.repos.get(repoKey(ref.repo));
    if (objects === undefined) throw new RatchetError('NOT_FOUND', 'no such repository');
    const hash = createHash('sha256');
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of body) {
      options.signal?.throwIfAborted();
      hash.update(chunk);
      chunks.push(chunk);
      size += chunk.length;
    }
    if (options.contentLength !== undefined && size !== options.contentLength) {
      throw new RatchetError(
        'INCOMPLETE_BODY',
        `body has ${size} bytes, Content-Length said ${options.contentLength}`,
      );
    }
    const digest = hash.digest('hex');
    if (options.expectedSha256 !== undefined && digest !== options.expectedSha256) {
      throw new RatchetError('HASH_MISMATCH', 'content does not match its SHA-256 name');
    }
    const key = objectKey(ref);
    const existing = objects.get(key);
    if (existing !== undefined) {
      const same = createHash('sha256').update(existing).digest('hex') === digest;
      if (same) return { created: false, size };
      if (options.expectedSha256 === undefined) {
        throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
      }
    }
    objects.set(key, Buffer.concat(chunks));
    this.storedAt.set(`${repoKey(ref.repo)}\0${key}`, Date.now());
    return { created: true, size };
  }

  delete(ref: ObjectRef): Promise<DeleteResult> {
    const objects = this.repos.get(repoKey(ref.repo));
    const bytes = objects?.get(objectKey(ref))?.length;
    if (bytes === undefined) return Promise.resolve({ existed: false, bytes: 0 });
    objects?.delete(objectKey(ref));
    this.storedAt.delete(`${repoKey(ref.repo)}\0${objectKey(ref)}`);
    return Promise.resolve({ existed: true, bytes });
  }

  async *list(repo: RepoPath, type: ObjectType): AsyncIterable<ObjectEntry> {
    const objects = this.repos.get(repoKey(repo));
    if (objects === undefined) throw new RatchetError('NOT_FOUND', 'no such repository');
    const prefix = `${type}/`;
    for (const [key, content] of [...objects]) {
      if (!key.startsWith(prefix)) continue;
      const modifiedMs = this.storedAt.get(`${repoKey(repo)}\0${key}`);
      yield { name: key.slice(prefix.length), size: content.length, modifiedMs };
    }
    await Promise.resolve();
  }

  probe(): Promise<void> {
    return Promise.resolve();
  }

  async *listRepos(): AsyncIterable<RepoPath> {
    for (const key of [...this.repos.keys()]) yield repoFromKey(key);
    await Promise.resolve();
  }

  summarize(repo: RepoPath): Promise<RepoSummary> {
    const objects = this.repos.get(repoKey(repo));
    if (objects === undefined) return Promise.reject(new RatchetError('NOT_FOUND', 'no such repository'));
    const counts = { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 };
    let bytes = 0;
    let newestSnapshotMs: number | undefined;
    for (const [key, content] of objects) {
      bytes += content.length;
      const type = key.split('/')[0];
      if (type !== undefined && type in counts) counts[type as ObjectType]++;
      if (type === 'snapshots') {
        const at = this.storedAt.get(`${repoKey(repo)}\0${key}`) ?? 0;
        newestSnapshotMs = Math.max(newestSnapshotMs ?? 0, at);
      }
    }
    return Promise.resolve({ bytes, objects: counts, newestSnapshotMs });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private find(ref: ObjectRef): Buffer | undefined {
    return this.repos.get(repoKey(ref.repo))?.get(objectKey(ref));
  }
}

function objectKey(ref: ObjectRef): string {
  return ref.type === 'config' ? 'config' : `${ref.type}/${ref.name}`;
}
