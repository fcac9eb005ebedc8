/**
 * Folders made on the upload path (data fan-out folders), whose names become durable in the
 * background: the parent's flush runs while the first upload's body is written instead of
 * before it. Every upload into such a folder, the first and any that found it already made,
 * waits for that flush before it is answered, so no object is reported stored in a folder
 * whose own name a crash could still lose.
 */
import path from 'node:path';
import type { DirSyncer } from './dir-sync.ts';
import { makeFolder } from './fs-repos.ts';

export class NewFolders {
  private readonly syncer: DirSyncer;
  private readonly dirMode: number;
  /** Folders made here whose parent's flush has not succeeded yet: that flush (or its failure). */
  private readonly unflushed = new Map<string, Promise<void>>();

  constructor(syncer: DirSyncer, dirMode: number) {
    this.syncer = syncer;
    this.dirMode = dirMode;
  }

  /** mkdir(2) of `dir` (its parent exists) and, when it was made here, a flush of the parent started. */
  async make(dir: string): Promise<void> {
    if (await makeFolder(dir, this.dirMode)) void this.flushParent(dir);
  }

  /**
   * Resolves once the name of `dir` is durable as far as this process made it (at once for
   * folders it did not make, or whose flush is done). A failed flush is tried again here, so
   * that a disk error fails the uploads it concerns and not every later one.
   */
  durable(dir: string): Promise<void> | undefined {
    const flush = this.unflushed.get(dir);
    return flush?.catch(() => {
      // The first waiter to see the failure starts the retry; the others wait for it.
      const now = this.unflushed.get(dir);
      return now !== undefined && now !== flush ? now : this.flushParent(dir);
    });
  }

  private flushParent(dir: string): Promise<void> {
    const flush: Promise<void> = this.syncer.sync(path.dirname(dir)).then(() => {
      if (this.unflushed.get(dir) === flush) this.unflushed.delete(dir);
    });
    // A failed flush stays, so that later uploads into the folder retry it; it reaches only
    // the uploads that wait and must not count as unhandled meanwhile.
    flush.catch(() => undefined);
    this.unflushed.set(dir, flush);
    return flush;
  }
}
