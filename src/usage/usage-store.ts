/**
 * Where usage and quota reservations live: per repository its bytes, objects per type, newest
 * snapshot time and trash, sums per owner (the first path component: everything below /<user>/)
 * and in total, and the room uploads and creations hold while in flight. The trash is on disk, so
 * it counts in the total; it is not charged to the owner or the repository (a host does not pay
 * for what the admin deleted). An interface with an in-memory
 * implementation, and one in Redis that several instances share (--state).
 *
 * Every change made by this server stamps its repository from one increasing clock, so a
 * measurement from a listing that began before the change can tell it raced and must not replace
 * the numbers (see UsageLedger).
 */
import type { ObjectType } from '../domain/object-types.ts';
import type { Awaitable } from '../state/awaitable.ts';
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

/** The first scope without room for an amount, and what it has left. */
export interface Full {
  readonly scope: ScopeKey;
  readonly left: number;
}

/** What reserve answers: the hold's id (give it back with release or settle), or the full scope. */
export type Reserved =
  { readonly id: string; readonly full?: undefined } | { readonly id?: undefined; readonly full: Full };

/**
 * Reports (get, repos, used) answer at once: a shared store answers them from a copy it refreshes
 * every few seconds, which is fine for metrics and the web view but never used for a decision.
 * Decisions and changes answer through Awaitable: at once in memory, by a promise from a shared
 * store (Redis), where each is one atomic step.
 */
export interface UsageStore {
  /** A repository's numbers, or undefined when the repository is not known (report). */
  get(repo: string): RepoUsage | undefined;
  /** Every known repository with its numbers (report). */
  repos(): Iterable<[string, RepoUsage]>;
  /** How much a scope holds, not counting what is reserved (report). */
  used(scope: ScopeKey): number;
  /** Throws UNAVAILABLE while a shared store is known to be out of reach (the connection's state: no round trip). */
  assertReachable(): void;
  /** True when the store holds a complete count (the start-up count is done, and was not lost). */
  counted(): Awaitable<boolean>;
  /** A count begins: the token names the store it is made in (a shared store's process). */
  startCount(): Awaitable<string>;
  /**
   * The complete count begun with `token` is in: decisions may be made from the store. A shared
   * store that is no longer the one the count began in throws (the count is made again).
   */
  markCounted(token: string): Awaitable<void>;
  /** The current value of the change clock; a measurement begun now is stamped with it. */
  clock(): Awaitable<number>;
  /** True when the repository is known (decision). */
  knows(repo: string): Awaitable<boolean>;
  /** Applies a change this server made (creating the repository's entry if needed). */
  add(repo: string, change: UsageChange): Awaitable<void>;
  /** Sets a repository's numbers from a listing begun at `since`; false (nothing changed) if it raced. */
  replace(repo: string, usage: RepoUsage, since: number): Awaitable<boolean>;
  /** Forgets a repository found gone by a listing begun at `since`; false if it raced. */
  forget(repo: string, since: number): Awaitable<boolean>;
  /**
   * The first scope that has no room for `amount` (used + held + amount > limit), undefined when
   * every one has room; holds nothing. UNAVAILABLE while the store holds no complete count.
   */
  full(holds: readonly Hold[], amount: number): Awaitable<Full | undefined>;
  /**
   * Holds `amount` against every scope if each has room, all or none (the same check as full).
   * A hold lives until released or settled, or until its process stops renewing it (a shared
   * store lets the holds of a dead instance expire).
   */
  reserve(holds: readonly Hold[], amount: number): Awaitable<Reserved>;
  /** Gives back holds (unknown ids are ignored). */
  release(ids: readonly string[]): Awaitable<void>;
  /** Gives back holds and applies a change, as one step: the room becomes the bytes it counted. */
  settle(ids: readonly string[], repo: string, change: UsageChange | undefined): Awaitable<void>;
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
  private readonly heldBy = new Counts();
  private readonly holds = new Map<string, { scopes: readonly ScopeKey[]; amount: number }>();
  private nextHold = 0;
  private total = 0;
  private ticks = 0;
  private complete = false;

  assertReachable(): void {
    // In this process: always.
  }

  counted(): boolean {
    return this.complete;
  }

  startCount(): string {
    return '';
  }

  markCounted(): void {
    this.complete = true;
  }

  clock(): number {
    return this.ticks;
  }

  get(repo: string): RepoUsage | undefined {
    return this.entries.get(repo)?.usage;
  }

  knows(repo: string): boolean {
    return this.entries.has(repo);
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

  add(repo: string, change: UsageChange): void {
    this.put(repo, applyChange(this.entries.get(repo)?.usage ?? emptyUsage, change));
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

  full(holds: readonly Hold[], amount: number): Full | undefined {
    for (const { scope, limit } of holds) {
      const taken = this.used(scope) + this.heldBy.get(scope);
      if (taken + amount > limit) return { scope, left: Math.max(0, limit - taken) };
    }
    return undefined;
  }

  reserve(holds: readonly Hold[], amount: number): Reserved {
    const full = this.full(holds, amount);
    if (full !== undefined) return { full };
    const id = String(++this.nextHold);
    const scopes = holds.map((hold) => hold.scope);
    this.holds.set(id, { scopes, amount });
    for (const scope of scopes) this.heldBy.add(scope, amount);
    return { id };
  }

  release(ids: readonly string[]): void {
    for (const id of ids) {
      const hold = this.holds.get(id);
      if (hold === undefined) continue;
      this.holds.delete(id);
      for (const scope of hold.scopes) this.heldBy.add(scope, -hold.amount);
    }
  }

  settle(ids: readonly string[], repo: string, change: UsageChange | undefined): void {
    this.release(ids);
    if (change !== undefined) this.add(repo, change);
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

/** A repository's numbers after a change (counts never below zero). */
export function applyChange(before: RepoUsage, change: UsageChange): RepoUsage {
  const objects = { ...before.objects };
  if (change.type !== undefined)
    objects[change.type] = Math.max(0, objects[change.type] + (change.objects ?? 0));
  const newest = Math.max(before.newestSnapshotMs ?? -Infinity, change.snapshotMs ?? -Infinity);
  return {
    bytes: Math.max(0, before.bytes + change.bytes),
    objects,
    newestSnapshotMs: Number.isFinite(newest) ? newest : undefined,
    trashBytes: Math.max(0, before.trashBytes + (change.trashBytes ?? 0)),
    trashObjects: Math.max(0, before.trashObjects + (change.trashObjects ?? 0)),
  };
}
