/**
 * Single-runner background jobs (the trash purge): with several instances only the one holding a
 * job's lease runs a pass. A lease is held for `ttlMs` from its last renewal, so when its holder
 * dies another instance takes the job over once that time has passed. In one process there is
 * no one to share with: every job is always held.
 */

export interface JobLease {
  /**
   * True when this instance holds the job's lease now: taken when free, renewed when already
   * ours; false while another instance holds it (or the store cannot answer: skip the pass).
   */
  holds(job: string, ttlMs: number): Promise<boolean>;
  /** Gives up every lease this instance holds (a clean stop: others take over at once). */
  releaseAll(): Promise<void>;
}

/** One process: always the holder. */
export const soleInstance: JobLease = {
  holds: () => Promise.resolve(true),
  releaseAll: () => Promise.resolve(),
};
