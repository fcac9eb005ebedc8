/** Byte ranges of objects: what a reader asks for, resolved against the object's size. */
import { RatchetError } from '../errors.ts';

/** RANGE_NOT_SATISFIABLE, with the object's size (HTTP answers it as `Content-Range: bytes *\/size`). */
export class RangeNotSatisfiable extends RatchetError {
  readonly size: number;

  constructor(size: number) {
    super('RANGE_NOT_SATISFIABLE', 'range not satisfiable');
    this.size = size;
  }
}

/** A requested range, before the object size is known (HTTP `Range` maps onto it). */
export type RangeSpec =
  | { readonly kind: 'from'; readonly start: number; readonly end?: number }
  | { readonly kind: 'suffix'; readonly length: number };

/** A range resolved against an object's size: inclusive byte offsets. */
export interface ResolvedRange {
  readonly start: number;
  readonly end: number;
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
    throw new RangeNotSatisfiable(size);
  }
  return resolved;
}
