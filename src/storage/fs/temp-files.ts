/**
 * Names of in-progress uploads, and when a leftover one may be removed. A temporary name carries
 * its process's identity (pid, start time, boot: process-identity.ts), so the start-up sweep
 * removes only uploads of processes that are gone, never one another live process is writing.
 * A name without an identity (an older version's, a probe) or of another host (a shared network
 * filesystem) is removed only once it has not been written to for `unownedTempMaxAgeMs`, far longer than an upload may stall before the server
 * cuts its connection (5 minutes).
 */
import { tempPrefix } from './layout.ts';
import { formatIdentity, isLocal, isRunning, parseIdentity } from './process-identity.ts';
import type { ProcessIdentity } from './process-identity.ts';

const unownedTempMaxAgeMs = 60 * 60_000;

/** The start of every temporary name this process makes; a counter follows. */
export function tempStem(self: ProcessIdentity): string {
  return `${tempPrefix}${formatIdentity(self)}-`;
}

/** True when a file name is a temporary upload whose writer is provably gone. */
export function isAbandonedTemp(name: string, mtimeMs: number, now: number): boolean {
  if (!name.startsWith(tempPrefix)) return false;
  const rest = name.slice(tempPrefix.length);
  const owner = parseIdentity(rest.slice(0, Math.max(0, rest.lastIndexOf('-'))));
  if (owner === undefined || !isLocal(owner)) return now - mtimeMs > unownedTempMaxAgeMs;
  return !isRunning(owner);
}
