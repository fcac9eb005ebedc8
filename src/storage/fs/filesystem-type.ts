/**
 * Recognises data folders on network and FUSE filesystems, where a stat or an open can take
 * milliseconds or hang with the server: there the read paths' filesystem calls go through the
 * thread pool instead of running on the event loop (see SyncGuard in fast-fs.ts).
 */
import { statfs } from 'node:fs/promises';
import { errnoCode } from '../../errors.ts';
import path from 'node:path';
import { isMissing } from './fs-errors.ts';

// f_type magic numbers from Linux's statfs(2) and include/uapi/linux/magic.h.
const remoteFilesystems = new Map<number, string>([
  [0x6969, 'nfs'],
  [0x517b, 'smb'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x65735546, 'fuse'],
  [0x00c36400, 'ceph'],
  [0x5346414f, 'afs'],
  [0x73757245, 'coda'],
  [0x01021997, '9p'],
  [0x01161970, 'gfs2'],
  [0x7461636f, 'ocfs2'],
  [0x0bd00bd0, 'lustre'],
  [0x47504653, 'gpfs'],
]);

/** The name of a network or FUSE filesystem type, or undefined for a local one. */
export function remoteFilesystemName(type: number): string | undefined {
  // statfs reports f_type as a signed 32-bit value on some platforms.
  return remoteFilesystems.get(type >>> 0);
}

/**
 * The network or FUSE filesystem that holds `dir` (or, when it does not exist yet, its nearest
 * existing parent); undefined for a local filesystem.
 */
export async function remoteFilesystemOf(dir: string): Promise<string | undefined> {
  let at = path.resolve(dir);
  for (;;) {
    try {
      return remoteFilesystemName((await statfs(at)).type);
    } catch (err) {
      const parent = path.dirname(at);
      // A folder this user may not enter is judged by its parent; starting then says what is wrong.
      if ((!isMissing(err) && errnoCode(err) !== 'EACCES') || parent === at) throw err;
      at = parent;
    }
  }
}
