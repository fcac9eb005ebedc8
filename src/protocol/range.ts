/** HTTP Range headers for object reads: one byte range or the whole object. */
import type { RangeSpec } from '../domain/byte-range.ts';

const singleRange = /^bytes=(\d*)-(\d*)$/;

/**
 * Parses a Range header. Returns undefined when there is none or it is malformed or multi-range:
 * those are answered with the whole object, as HTTP allows.
 */
export function parseRange(header: string | undefined): RangeSpec | undefined {
  if (header === undefined) return undefined;
  const match = singleRange.exec(header.trim());
  if (!match) return undefined;
  const [, first = '', second = ''] = match;
  if (first === '') {
    if (second === '') return undefined;
    const length = Number(second);
    return Number.isSafeInteger(length) ? { kind: 'suffix', length } : undefined;
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start)) return undefined;
  if (second === '') return { kind: 'from', start };
  const end = Number(second);
  if (!Number.isSafeInteger(end) || end < start) return undefined;
  return { kind: 'from', start, end };
}
