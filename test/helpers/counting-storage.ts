/** A Storage that forwards every call to a real backend and counts the walks (listRepos, list). */
import type { ObjectType } from '../../src/domain/object-types.ts';
import type { RepoPath } from '../../src/domain/repo-path.ts';
import type { ObjectEntry } from '../../src/domain/object-ref.ts';
import type { Storage } from '../../src/storage/storage.ts';

export interface CountingStorage extends Storage {
  /** Calls of listRepos and list since the last reset. */
  readonly walks: { listRepos: number; list: number };
  resetWalks(): void;
  /** While set, list() of this repository reads, then waits for the promise before it answers. */
  holdListing(repo: string, until: Promise<void>): void;
}

/** Wraps a real backend; every other verb goes straight through. */
export function countingStorage(inner: Storage): CountingStorage {
  const walks = { listRepos: 0, list: 0 };
  const holds = new Map<string, Promise<void>>();
  const wrapper: Partial<CountingStorage> = {
    walks,
    resetWalks: () => {
      walks.listRepos = 0;
      walks.list = 0;
    },
    holdListing: (repo, until) => holds.set(repo, until),
    listRepos: () => {
      walks.listRepos++;
      return inner.listRepos();
    },
    list: async function* (repo: RepoPath, type: ObjectType): AsyncIterable<ObjectEntry> {
      walks.list++;
      const entries: ObjectEntry[] = [];
      for await (const entry of inner.list(repo, type)) entries.push(entry);
      await holds.get(repo.join('/'));
      yield* entries;
    },
  };
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (Object.hasOwn(wrapper, property)) return wrapper[property as keyof CountingStorage];
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as CountingStorage;
}
