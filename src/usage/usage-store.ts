/**
 * Where usage and quota reservations live: per repository its bytes, objects per type, newest
 * snapshot time and trash, sums per owner (the first path component: everything below /<user>/)
 * and in total, and the room uploads and creations hold while in flight. The trash is on disk, so
 * it counts in the total; it is not charged to the owner or the repository (a host does not pay
 * for what the admin deleted). An interface with an in-memory
 * implementation, so that several processes can later share one (Redis).
 *
 * Every change made by this server stamps its repository from one increasing clock, so a
 * measurement from a listing that began before the change can tell it raced and must not replace
 * the numbers (see UsageLedger).
 */
import type { ObjectType } from '../domain/object-types.ts';
import { Counts } from '../util/counts.ts';

export interface RepoUsage {
  /** Bytes of all objects and the config. */
  readonly bytes: number;
  readonly objects: Readonly<Record<ObjectType, number>>;
  /** When the newest snapshot object was stored (ms since the epoch), if there is one. */
  readonly newestSnapshotMs: number | undefined;
  /** Bytes and objects in the repository's trash (--delete-grace). */
  readonly trashBytes: number;
  readonly trashObjects: number;
}

/** A change this server made to one repository. */
export interface UsageChange {
  readonly bytes: number;
  /** The object type whose count moves by `objects` (none for the config). */
  readonly type?: ObjectType;
  readonly objects?: number;
  /** A snapshot stored at this time. */
  readonly snapshotMs?: number;
  /** Moves of the trash's bytes and objects. */
  readonly trashBytes?: number;
  readonly trashObjects?: number;
}

/**
 * What a limit counts: `total` (bytes of everything, trash included), `user:<owner>` (bytes below /<owner>/),
 * `repo:<key>` (bytes of one repository), `repos:<owner>` (repositories below /<owner>/),
 * `locks:<key>` (lock objects in one repository).
 */
export type ScopeKey = 'total' | `user:${string}` | `repo:${string}` | `repos:${string}` | `locks:${string}`;

export interface Hold {
  readonly scope: ScopeKey;
  readonly limit: number;
}

export interface UsageStore {
  /** The current value of the change clock; a measurement begun now is stamped with it. */
  clock(): number;
  /** A repository's numbers, or undefined when the repository is not known. */
  get(repo: string): RepoUsage | undefined;
  /** Every known repository with its numbers. */
  repos(): Iterable<[string, RepoUsage]>;
  /** How much a scope holds now, not counting what is reserved. */
  used(scope: ScopeKey): number;
  /** How much is reserved against a scope by work in flight. */
  held(scope: ScopeKey): number;
  /** Applies a change this server made (creating the repository's entry if needed). */
  add(repo: string, change: UsageChange): void;
  /** Sets a repository's numbers from a listing begun at `since`; false (nothing changed) if it raced. */
  replace(repo: string, usage: RepoUsage, since: number): boolean;
  /** Forgets a repository found gone by a listing begun at `since`; false if it raced. */
  forget(repo: string, since: number): boolean;
  /**
   * Holds `amount` against every scope if each has room (used + held + amount <= limit), all or
   * none; otherwise holds nothing and returns the first scope without room and what it has left.
   */
  reserve(holds: readonly Hold[], amount: number): { scope: ScopeKey; left: number } | undefined;
  /** Gives back what reserve held. */
  release(holds: readonly Hold[], amount: number): void;
}

export const emptyUsage: RepoUsage = {
  bytes: 0,
  objects: { data: 0, keys: 0, locks: 0, snapshots: 0, index: 0 },
  newestSnapshotMs: undefined,
  trashBytes: 0,
  trashObjects: 0,
};

interface Entry {
  usage: RepoUsage;
  stamp: number;
}

/** The owner a repository's bytes and count are charged to: its first path component. */
export function ownerOf(repo: string): string {
  const slash = repo.indexOf('/');
  return slash === -1 ? repo : repo.slice(0, slash);
}

/** Keeps everything in this process's memory. */
export class MemoryUsageStore implements UsageStore {
  private readonly entries = new Map<string, Entry>();
  private readonly owners = new Map<string, { bytes: number; repos: number }>();
  // Dropped at zero: a scope nothing is held against takes no memory.
  private readonly holds = new Counts();
  private total = 0;
  private ticks = 0;

  clock(): number {
    return this.ticks;
  }

  get(repo: string): RepoUsage | undefined {
    return this.entries.get(repo)?.usage;
  }

  *repos(): Iterable<[string, RepoUsage]> {
    for (const [key, entry] of this.entries) yield [key, entry.usage];
  }

  used(scope: ScopeKey): number {
    if (scope === 'total') return this.total;
    const colon = scope.indexOf(':');
    const kind = scope.slice(0, colon);
    const name = scope.slice(colon + 1);
    if (kind === 'repo') return this.entries.get(name)?.usage.bytes ?? 0;
    if (kind === 'locks') return this.entries.get(name)?.usage.objects.locks ?? 0;
    const owner = this.owners.get(name);
    return (kind === 'user' ? owner?.bytes : owner?.repos) ?? 0;
  }

  held(scope: ScopeKey): number {
    return this.holds.get(scope);
  }

  add(repo: string, change: UsageChange): void {
    const before = this.entries.get(repo)?.usage ?? emptyUsage;
    const objects = { ...before.objects };
    if (change.type !== undefined)
      objects[change.type] = Math.max(0, objects[change.type] + (change.objects ?? 0));
    const newest = Math.max(before.newestSnapshotMs ?? -Infinity, change.snapshotMs ?? -Infinity);
    this.put(repo, {
      bytes: Math.max(0, before.bytes + change.bytes),
      objects,
      newestSnapshotMs: Number.isFinite(newest) ? newest : undefined,
      trashBytes: Math.max(0, before.trashBytes + (change.trashBytes ?? 0)),
      trashObjects: Math.max(0, before.trashObjects + (change.trashObjects ?? 0)),
    });
    const entry = this.entries.get(repo);
    if (entry !== undefined) entry.stamp = ++this.ticks;
  }

  replace(repo: string, usage: RepoUsage, since: number): boolean {
    if ((this.entries.get(repo)?.stamp ?? 0) > since) return false;
    this.put(repo, usage);
    return true;
  }

  forget(repo: string, since: number): boolean {
    const entry = this.entries.get(repo);
    if (entry === undefined) return true;
    if (entry.stamp > since) return false;
    this.entries.delete(repo);
    this.charge(repo, -entry.usage.bytes, -entry.usage.trashBytes, -1);
    return true;
  }

  reserve(holds: readonly Hold[], amount: number): { scope: ScopeKey; left: number } | undefined {
    for (const { scope, limit } of holds) {
      const taken = this.used(scope) + this.held(scope);
      if (taken + amount > limit) return { scope, left: Math.max(0, limit - taken) };
    }
    this.release(holds, -amount);
    return undefined;
  }

  release(holds: readonly Hold[], amount: number): void {
    for (const { scope } of holds) this.holds.add(scope, -amount);
  }

  /** Sets a repository's numbers and moves the owner and total sums by the difference. */
  private put(repo: string, usage: RepoUsage): void {
    const entry = this.entries.get(repo);
    this.charge(
      repo,
      usage.bytes - (entry?.usage.bytes ?? 0),
      usage.trashBytes - (entry?.usage.trashBytes ?? 0),
      entry === undefined ? 1 : 0,
    );
    if (entry === undefined) this.entries.set(repo, { usage, stamp: 0 });
    else entry.usage = usage;
  }

  /** Live bytes go to the owner and the total, trash bytes to the total only. */
  private charge(repo: string, bytes: number, trashBytes: number, repos: number): void {
    this.total += bytes + trashBytes;
    const owner = ownerOf(repo);
    const sums = this.owners.get(owner) ?? { bytes: 0, repos: 0 };
    sums.bytes += bytes;
    sums.repos += repos;
    if (sums.repos === 0) this.owners.delete(owner);
    else this.owners.set(owner, sums);
  }
}
