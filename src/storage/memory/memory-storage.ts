/**
 * In-memory storage with the same semantics as the filesystem backend, for tests and for the
 * conformance suite that keeps backends honest.
 */
import { createHash } from 'node:crypto';
import { RatchetError } from '../../errors.ts';
import type { RangeSpec } from '../../domain/byte-range.ts';
import { applyRange } from '../../domain/byte-range.ts';
import type { ObjectEntry, ObjectRef } from '../../domain/object-ref.ts';
import type { ObjectType } from '../../domain/object-types.ts';
import type { RepoPath } from '../../domain/repo-path.ts';
import { repoFromKey, repoKey } from '../../domain/repo-path.ts';
import type {
  DeleteResult,
  ReadResult,
  RestoreOutcome,
  Storage,
  TrashEntry,
  WriteOptions,
  WriteResult,
} from '../storage.ts';

interface StoredObject {
  readonly content: Buffer;
  readonly storedAt: number;
}

export class MemoryStorage implements Storage {
  private readonly repos = new Map<string, Map<string, StoredObject>>();
  /** Each repository's trash: `<type>/<name>/<deleted ms>` → content. */
  private readonly trash = new Map<string, Map<string, Buffer>>();

  async createRepo(repo: RepoPath, signal?: AbortSignal): Promise<void> {
    await settle(signal);
    const key = repoKey(repo);
    if (!this.repos.has(key)) this.repos.set(key, new Map());
  }

  async repoExists(repo: RepoPath, signal?: AbortSignal): Promise<boolean> {
    await settle(signal);
    return this.repos.has(repoKey(repo));
  }

  async stat(ref: ObjectRef, signal?: AbortSignal): Promise<number | undefined> {
    await settle(signal);
    return this.find(ref)?.content.length;
  }

  async read(ref: ObjectRef, range: RangeSpec | undefined, signal?: AbortSignal): Promise<ReadResult> {
    await settle(signal);
    const content = this.find(ref)?.content;
    if (content === undefined) throw new RatchetError('NOT_FOUND', 'no such object');
    const resolved = applyRange(range, content.length);
    const slice = resolved ? content.subarray(resolved.start, resolved.end + 1) : content;
    return { size: content.length, range: resolved, data: slice };
  }

  async write(ref: ObjectRef, body: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<WriteResult> {
    await settle(options.signal);
    const objects = this.repos.get(repoKey(ref.repo));
    if (objects === undefined) throw new RatchetError('NOT_FOUND', 'no such repository');
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) {
      options.signal?.throwIfAborted();
      chunks.push(chunk);
    }
    const approved = options.check.approve();
    const key = objectKey(ref);
    const existing = objects.get(key);
    if (existing !== undefined) {
      const same = createHash('sha256').update(existing.content).digest('hex') === approved.sha256;
      if (same) return { created: false, size: approved.size };
      if (!approved.verified) {
        throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
      }
    }
    objects.set(key, { content: Buffer.concat(chunks), storedAt: Date.now() });
    return { created: true, size: approved.size };
  }

  async delete(ref: ObjectRef, signal?: AbortSignal): Promise<DeleteResult> {
    await settle(signal);
    const objects = this.repos.get(repoKey(ref.repo));
    const existing = objects?.get(objectKey(ref));
    if (existing === undefined) return { existed: false, bytes: 0 };
    objects?.delete(objectKey(ref));
    return { existed: true, bytes: existing.content.length };
  }

  async moveToTrash(ref: ObjectRef, deletedMs: number, signal?: AbortSignal): Promise<DeleteResult> {
    await settle(signal);
    const objects = this.repos.get(repoKey(ref.repo));
    const existing = objects?.get(objectKey(ref));
    if (existing === undefined) return { existed: false, bytes: 0 };
    objects?.delete(objectKey(ref));
    const trash = this.trash.get(repoKey(ref.repo)) ?? new Map<string, Buffer>();
    this.trash.set(repoKey(ref.repo), trash);
    const name = ref.type === 'config' ? 'config' : ref.name;
    trash.set(trashKey({ repo: ref.repo, type: ref.type, name, size: 0, deletedMs }), existing.content);
    return { existed: true, bytes: existing.content.length };
  }

  async *listTrash(repo: RepoPath, signal?: AbortSignal): AsyncIterable<TrashEntry> {
    await settle(signal);
    for (const [key, content] of [...(this.trash.get(repoKey(repo)) ?? [])]) {
      const [type = '', name = '', deleted = ''] = key.split('/');
      const entryType = type === 'config' ? 'config' : (type as ObjectType);
      yield { repo, type: entryType, name, size: content.length, deletedMs: Number(deleted) };
    }
  }

  async restoreFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<RestoreOutcome> {
    await settle(signal);
    const trash = this.trash.get(repoKey(entry.repo));
    const key = trashKey(entry);
    const content = trash?.get(key);
    if (content === undefined) return 'gone';
    const hash = createHash('sha256').update(content).digest('hex');
    if (entry.type !== 'config' && hash !== entry.name) return 'damaged';
    const objects = this.repos.get(repoKey(entry.repo)) ?? new Map<string, StoredObject>();
    this.repos.set(repoKey(entry.repo), objects);
    const ref = refOf(entry);
    const existing = objects.get(objectKey(ref));
    if (existing !== undefined) {
      if (createHash('sha256').update(existing.content).digest('hex') !== hash) return 'conflict';
      trash?.delete(key);
      return 'already-there';
    }
    objects.set(objectKey(ref), { content, storedAt: Date.now() });
    trash?.delete(key);
    return 'restored';
  }

  async purgeFromTrash(entry: TrashEntry, signal?: AbortSignal): Promise<number> {
    await settle(signal);
    const trash = this.trash.get(repoKey(entry.repo));
    const content = trash?.get(trashKey(entry));
    trash?.delete(trashKey(entry));
    return content?.length ?? 0;
  }

  async *list(repo: RepoPath, type: ObjectType, signal?: AbortSignal): AsyncIterable<ObjectEntry> {
    await settle(signal);
    const objects = this.repos.get(repoKey(repo));
    if (objects === undefined) throw new RatchetError('NOT_FOUND', 'no such repository');
    const prefix = `${type}/`;
    for (const [key, { content, storedAt }] of [...objects]) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length);
      // As the file backend: the stored time only where it is needed (the newest backup).
      yield type === 'snapshots'
        ? { name, size: content.length, modifiedMs: storedAt }
        : { name, size: content.length };
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    await settle(signal);
  }

  async *listRepos(signal?: AbortSignal): AsyncIterable<RepoPath> {
    await settle(signal);
    for (const key of [...this.repos.keys()]) yield repoFromKey(key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private find(ref: ObjectRef): StoredObject | undefined {
    return this.repos.get(repoKey(ref.repo))?.get(objectKey(ref));
  }
}

/** One turn of the event loop, as a real backend takes, then the signal's verdict. */
async function settle(signal: AbortSignal | undefined): Promise<void> {
  await Promise.resolve();
  signal?.throwIfAborted();
}

function objectKey(ref: ObjectRef): string {
  return ref.type === 'config' ? 'config' : `${ref.type}/${ref.name}`;
}

function refOf(entry: TrashEntry): ObjectRef {
  return entry.type === 'config'
    ? { repo: entry.repo, type: 'config' }
    : { repo: entry.repo, type: entry.type, name: entry.name };
}

/** `<type>/<name>/<deleted ms>`, the config as `config/config/<ms>`. */
function trashKey(entry: TrashEntry): string {
  return `${entry.type}/${entry.name}/${entry.deletedMs}`;
}
