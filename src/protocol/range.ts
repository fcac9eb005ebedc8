/** HTTP Range handling for object reads: one byte range or the whole object. */
import { RatchetError } from '../errors.ts';

/** A parsed `Range` header, before the object size is known. */
export type RangeSpec =
  | { readonly kind: 'from'; readonly start: number; readonly end?: number }
  | { readonly kind: 'suffix'; readonly length: number };

/** A range resolved against an object's size: inclusive byte offsets. */
export interface ResolvedRange {
  readonly start: number;
  readonly end: number;
}

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

/**
 * Resolves a range against the object size: an end past the object is cut at the end; undefined
 * means unsatisfiable (start at or past the end, or an empty suffix).
 */
export function resolveRange(spec: RangeSpec, size: number): ResolvedRange | undefined {
  if (spec.kind === 'suffix') {
    if (spec.length === 0 || size === 0) return undefined;
    return { start: Math.max(0, size - spec.length), end: size - 1 };
  }
  if (spec.start >= size) return undefined;
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1) };
}

/**
 * The part of an object of this size that a request for the range gets: undefined for the
 * whole object. An empty object ignores the range (as Go's net/http does, so rest-server too);
 * otherwise an unsatisfiable range is RANGE_NOT_SATISFIABLE with a Content-Range giving the size.
 */
export function applyRange(spec: RangeSpec | undefined, size: number): ResolvedRange | undefined {
  if (spec === undefined || size === 0) return undefined;
  const resolved = resolveRange(spec, size);
  if (resolved === undefined) {
    throw new RatchetError('RANGE_NOT_SATISFIABLE', 'range not satisfiable', {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  return resolved;
}
