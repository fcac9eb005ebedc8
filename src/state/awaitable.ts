/**
 * Answers from state stores. An in-memory store answers at once and a shared one (Redis, a
 * store in the primary process) with a promise; callers chain on either without making a
 * promise when the answer is already there, so the in-memory path stays synchronous.
 */

/** A value now, or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/**
 * What a store answers: `T` when `Sync` is true (in-memory stores), a promise of `T` when it is
 * false, either when it is `boolean` (code that works with any store).
 */
export type Answer<Sync extends boolean, T> = Sync extends true ? T : Promise<T>;

/** Applies `next` to the value at once, or when the promise settles; a throw in `next` stays synchronous for a value. */
export function andThen<T, U>(value: Awaitable<T>, next: (value: T) => Awaitable<U>): Awaitable<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Applies `next` to all the values once every one is there (at once when none is a promise). */
export function whenAll<T, U>(
  values: readonly Awaitable<T>[],
  next: (values: T[]) => Awaitable<U>,
): Awaitable<U> {
  return values.some((value) => value instanceof Promise)
    ? Promise.all(values).then(next)
    : next(values as T[]);
}
