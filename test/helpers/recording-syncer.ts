/**
 * A real DirSyncer whose fsyncs are recorded (the inode flushed, start and end events), can be
 * held until released, and can be made to fail (EIO) a number of times: for the tests of the
 * group-commit syncer and of what builds on it.
 */
import { fstatSync } from 'node:fs';
import { DirSyncer } from '../../src/storage/fs/dir-sync.ts';
import { fsyncFd, SyncGuard } from '../../src/storage/fs/fast-fs.ts';

export interface RecordingSyncer {
  readonly syncer: DirSyncer;
  readonly inodes: number[];
  readonly events: string[];
  /** Holds every fsync that starts from now on until the returned function is called. */
  readonly hold: () => () => void;
  /** The next `count` fsyncs fail with EIO (after any hold). */
  readonly failNext: (count: number) => void;
}

export function recordingSyncer(): RecordingSyncer {
  const inodes: number[] = [];
  const events: string[] = [];
  let gate: Promise<void> | undefined;
  let failing = 0;
  const syncer = new DirSyncer(new SyncGuard({ enabled: true }), async (fd) => {
    inodes.push(fstatSync(fd).ino);
    events.push(`fsync ${inodes.length} starts`);
    await gate;
    if (failing > 0) {
      failing--;
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    }
    await fsyncFd(fd);
    events.push(`fsync ${inodes.length} ends`);
  });
  return {
    syncer,
    inodes,
    events,
    hold: () => {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
    failNext: (count) => {
      failing = count;
    },
  };
}
