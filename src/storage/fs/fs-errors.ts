/** Maps Node filesystem errors onto the error catalogue. */
import { errnoCode, RatchetError } from '../../errors.ts';

/** True for "the file or one of its folders is not there". */
export function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Turns disk-full errors into NO_SPACE; other errors pass through unchanged (they become 500). */
export function translateFsError(err: unknown): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new RatchetError('NO_SPACE', 'insufficient storage', { cause: err });
  }
  return err;
}
