/** Byte sizes as operators write them: 1073741824, 500M, 20GiB, 1.5TB. */

// A Map, not an object: a unit such as "constructor" or "__proto__" must not find anything.
const units: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1024],
  ['kb', 1000],
  ['kib', 1024],
  ['m', 1024 ** 2],
  ['mb', 1000 ** 2],
  ['mib', 1024 ** 2],
  ['g', 1024 ** 3],
  ['gb', 1000 ** 3],
  ['gib', 1024 ** 3],
  ['t', 1024 ** 4],
  ['tb', 1000 ** 4],
  ['tib', 1024 ** 4],
]);

/** Parses a size (a number of bytes, or a number with a unit); throws on anything else. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new Error(`invalid size ${text}`);
    return text;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const factor = match ? units.get((match[2] ?? '').toLowerCase()) : undefined;
  const bytes = match && factor !== undefined ? Math.floor(Number(match[1]) * factor) : Number.NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new Error(
      `invalid size "${text}": expected bytes or a number with KiB, MiB, GiB, TiB (or KB, MB, GB, TB)`,
    );
  }
  return bytes;
}
