/**
 * Publishing a finished upload under its object name without ever replacing a good object:
 * link(2) fails instead of overwriting; identical content already there is a no-op; a stored
 * copy that does not match its name is replaced only by content verified against that name.
 */
import { rename } from 'node:fs/promises';
import type { Logger } from 'pino';
import { errnoCode, RatchetError } from '../../errors.ts';
import type { ApprovedUpload } from '../storage.ts';
import type { DirSyncer } from './dir-sync.ts';
import { sha256OfFile } from './durable.ts';
import { linkPath, lstatOrUndefined, unlinkPath } from './fast-fs.ts';

/** A fsynced, approved temp file waiting to be published under its object name. */
export interface StagedObject {
  readonly temp: string;
  /** The object's folder and path. */
  readonly dir: string;
  readonly target: string;
  readonly approved: ApprovedUpload;
  /** Called once the temporary name no longer exists. */
  readonly tempGone: () => void;
}

export class Publisher {
  private readonly syncer: DirSyncer;
  private readonly logger: Logger | undefined;

  constructor(syncer: DirSyncer, logger: Logger | undefined) {
    this.syncer = syncer;
    this.logger = logger;
  }

  /** Moves the staged file into place without replacing anything; false when identical content was there. */
  async publish(staged: StagedObject): Promise<boolean> {
    const { temp, dir, target, tempGone } = staged;
    try {
      await linkPath(temp, target);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return this.resolveExisting(staged);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: check, then rename (not atomic against a racing writer).
      if ((await lstatOrUndefined(target)) !== undefined) return this.resolveExisting(staged);
      return this.replaceTarget(staged);
    }
    // The temporary name is removed while the folder is flushed; either order is durable, since
    // the object's own name was created (by link) before the flush started.
    tempGone();
    await Promise.all([this.syncer.sync(dir), unlinkPath(temp).catch(() => undefined)]);
    return true;
  }

  private async resolveExisting(staged: StagedObject): Promise<boolean> {
    const { dir, target, approved } = staged;
    // A symbolic link under the name is not an object: never read through, replaced like a damaged copy.
    const existing = (await lstatOrUndefined(target))?.isFile() ? await sha256OfFile(target) : undefined;
    if (existing === approved.sha256) {
      // The name may come from an upload whose folder flush is still running (or failed): this
      // client is answered only once a flush that started now has made the name durable.
      await this.syncer.sync(dir);
      return false;
    }
    if (!approved.verified)
      throw new RatchetError('CONFLICT', 'an object with different content exists under this name');
    // The new content matches the name and the stored one does not: the stored copy is damaged.
    this.logger?.warn({ file: target }, 'replacing a stored object whose content did not match its name');
    return this.replaceTarget(staged);
  }

  /** Renames the temp file over the target (replacing it) and makes the new name durable. */
  private async replaceTarget({ temp, dir, target, tempGone }: StagedObject): Promise<boolean> {
    await rename(temp, target);
    tempGone();
    await this.syncer.sync(dir);
    return true;
  }
}
