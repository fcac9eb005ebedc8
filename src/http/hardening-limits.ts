/**
 * Resource bounds against hostile or careless clients (issue 11). They are constants until the
 * option table grows matching options; tests pass their own through ServerDependencies.
 */

export interface HardeningLimits {
  /** Open TCP connections one peer address may hold; unix-socket connections are not counted. */
  readonly maxConnectionsPerAddress: number;
  /**
   * An upload body from which no byte arrived for this long, while the server was waiting for
   * one (not while it held data back for a bandwidth limit or a slow disk), is cut off.
   */
  readonly bodyIdleTimeoutMs: number;
  /** The unread rest of a refused upload up to this size is read and discarded; larger, the connection closes. */
  readonly drainLimitBytes: number;
  /** A refused upload's rest that is being discarded must have arrived within this time. */
  readonly drainDeadlineMs: number;
  /** How long one readiness probe's answer is reused. */
  readonly readyCacheMs: number;
  /** HTTP/2 streams one session may have open at once. */
  readonly maxConcurrentStreams: number;
  /** Streams an HTTP/2 client may reset within resetWindowMs before its session is closed (GOAWAY). */
  readonly maxStreamResets: number;
  readonly resetWindowMs: number;
}

/** The documented defaults (docs/operations.md, "Limits and hardening"). */
export const defaultHardeningLimits: HardeningLimits = {
  maxConnectionsPerAddress: 64,
  bodyIdleTimeoutMs: 60_000,
  drainLimitBytes: 1 << 20,
  drainDeadlineMs: 30_000,
  readyCacheMs: 1000,
  // restic opens 5 streams by default (-o rest.connections); leave room, but not unbounded.
  maxConcurrentStreams: 128,
  maxStreamResets: 200,
  resetWindowMs: 10_000,
};
