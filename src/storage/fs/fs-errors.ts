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

/**
 * The start-up error for a data folder that cannot be made or written, saying which folder and
 * what to do, instead of the errno text of whichever file was touched first.
 */
export function dataFolderError(root: string, err: unknown): Error {
  const code = errnoCode(err);
  const user = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
  const advice =
    code === 'EACCES' || code === 'EPERM'
      ? `cannot be created or written by this user${user}: give that user write access to it (chown -R) or choose another --path`
      : code === 'EROFS'
        ? 'is on a read-only file system: remount it read-write or choose another --path'
        : code === 'ENOTDIR' || code === 'EEXIST'
          ? 'is not a folder (or a part of its path is a file): choose another --path'
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'cannot be created: the disk is full'
            : `cannot be used: ${err instanceof Error ? err.message : String(err)}`;
  return new Error(`the data folder ${root} ${advice}`, { cause: err });
}
