/** Durations as operators write them: 90 (seconds), 45s, 30m, 36h, 7d, 2w. */

// A Map, not an object: a unit such as "constructor" must not find anything.
const units: ReadonlyMap<string, number> = new Map([
  ['', 1000],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
  ['w', 7 * 86_400_000],
]);

/** Parses a duration into milliseconds; throws on anything else. */
export function parseDuration(text: string | number): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]?)\s*$/.exec(String(text));
  const factor = match ? units.get(match[2] ?? '') : undefined;
  const ms = match && factor !== undefined ? Math.round(Number(match[1]) * factor) : Number.NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new Error(
      `invalid duration "${text}": expected seconds or a number with s, m, h, d or w (e.g. 7d)`,
    );
  }
  return ms;
}

/**
 * A point in time as operators write it: an ISO date or time (2026-11-30, 2026-11-30T08:00Z), or
 * a duration ago (2h); milliseconds since the epoch. Throws on anything else.
 */
export function parseSince(text: string, now = Date.now()): number {
  const at = Date.parse(text);
  if (!Number.isNaN(at) && /^\d{4}-\d\d-\d\d/.test(text.trim())) return at;
  try {
    return now - parseDuration(text);
  } catch {
    throw new Error(
      `invalid time "${text}": expected an ISO time (2026-11-30T08:00Z) or a duration ago (2h)`,
    );
  }
}
