/**
 * What keeps a failed login from telling which users exist: unknown users are checked against a
 * decoy of the most common scheme and cost, and every failed check is answered no sooner than
 * the slowest hash in the users file takes, so a user with a costlier hash than the rest does not
 * stand out. The padding is a timer after the check: it costs no CPU and holds no check slot.
 */
import { checkHash, decoyBcryptHash, decoyHashLike } from './verifiers.ts';
import type { HashInfo } from './verifiers.ts';

/** The decoy's cost when there are no users. */
const defaultDecoyBcryptCost = 10;

/** A decoy hash like the most common scheme and cost among the users (bcrypt 10 when none). */
export function decoyFor(users: ReadonlyMap<string, string>): string {
  const counts = new Map<string, { count: number; hash: string }>();
  for (const hash of users.values()) {
    const check = checkHash(hash);
    if (!check.ok) continue;
    const group = counts.get(check.costKey);
    if (group) group.count++;
    else counts.set(check.costKey, { count: 1, hash });
  }
  let best: { count: number; hash: string } | undefined;
  for (const group of counts.values()) if (!best || group.count > best.count) best = group;
  return best ? decoyHashLike(best.hash) : decoyBcryptHash(defaultDecoyBcryptCost);
}

/**
 * A rough figure for the work one check of the hash takes, in microseconds on this class of
 * machine; only used to find the slowest hash, whose real duration is then measured.
 */
export function estimatedWork(info: HashInfo): number {
  const [, parameter = ''] = info.costKey.split(':');
  switch (info.scheme) {
    case 'bcrypt':
      return 80_000 * 2 ** (Number(parameter) - 10);
    case 'sha256-crypt':
    case 'sha512-crypt':
      return 4 * Number(parameter);
    case 'apr1':
    case 'md5-crypt':
      return 2000;
    case 'sha1':
    case 'ssha':
    case 'plain':
      return 1;
  }
}

/** The hash among the users whose check takes longest (by estimatedWork), or undefined without users. */
export function slowestHash(
  users: ReadonlyMap<string, string>,
): { hash: string; costKey: string } | undefined {
  let slowest: { hash: string; costKey: string; work: number } | undefined;
  for (const hash of users.values()) {
    const check = checkHash(hash);
    if (!check.ok) continue;
    const work = estimatedWork(check);
    if (!slowest || work > slowest.work) slowest = { hash, costKey: check.costKey, work };
  }
  return slowest && { hash: slowest.hash, costKey: slowest.costKey };
}

/**
 * How much longer a failed login that has taken `elapsedMs` must wait so it is answered no sooner
 * than `slowestMs`, the measured duration of the slowest hash's check (undefined: not known).
 */
export function failurePaddingMs(slowestMs: number | undefined, elapsedMs: number): number {
  return slowestMs === undefined ? 0 : Math.max(0, Math.ceil(slowestMs - elapsedMs));
}
