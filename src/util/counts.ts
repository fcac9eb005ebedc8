/** Counts per key, for limits that count what is in flight or open per client. */

/** Counts per key that drop the key at zero, so the map holds only live counts. */
export class Counts {
  readonly #counts = new Map<string, number>();

  /** The key's count (0 when absent). */
  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Adds `by` (which may be negative) to the key's count. */
  add(key: string, by: number): void {
    const count = this.get(key) + by;
    if (count > 0) this.#counts.set(key, count);
    else this.#counts.delete(key);
  }
}
