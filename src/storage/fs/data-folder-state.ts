/**
 * The file backend's own state in `<path>/.ratchet/`, opened on start and closed on shutdown:
 * the lock that keeps a second server off the data folder (data-lock.ts), the folder's identity
 * and generation (data-identity.ts) and the saved directory index (index-file.ts).
 *
 * Start: take the lock (unless the disk is full or read-only), read the identity, load the saved index if it proves itself, then
 * advance the generation durably, so that no index saved before this point can be used again.
 * Shutdown: save the index (only if the generation was advanced), then release the lock.
 * Failures to save are logged and the temporary file removed: the next start reads the folders.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { errnoCode } from '../../errors.ts';
import { advanceGeneration, readDataIdentity } from './data-identity.ts';
import type { DataIdentity } from './data-identity.ts';
import { acquireDataLock } from './data-lock.ts';
import { makeFolder } from './fs-repos.ts';
import type { DataLock } from './data-lock.ts';
import type { DirectoryIndex } from './dir-index.ts';
import { loadIndex, saveIndex } from './index-file.ts';
import type { ProcessIdentity } from './process-identity.ts';

export class DataFolderState {
  private readonly root: string;
  private readonly stateDir: string;
  /** Undefined in the primary of several workers: it takes the lock and serves no listings. */
  private readonly index: DirectoryIndex | undefined;
  private readonly logger: Logger | undefined;
  readonly dirMode: number;
  private lock: DataLock | undefined;
  /** Set once this run's generation is recorded: only then may the index be saved. */
  private identity: DataIdentity | undefined;

  constructor(options: {
    root: string;
    index: DirectoryIndex | undefined;
    logger?: Logger;
    dirMode: number;
  }) {
    this.root = options.root;
    this.stateDir = path.join(options.root, '.ratchet');
    this.index = options.index;
    this.logger = options.logger;
    this.dirMode = options.dirMode;
  }

  /**
   * Takes the lock (throws UNAVAILABLE when another live process holds it) and loads the saved
   * index if it proves itself.
   */
  async open(self: ProcessIdentity): Promise<void> {
    try {
      // One mkdir(2): a recursive one reports ENOENT for a read-only or full file system.
      await makeFolder(this.stateDir, this.dirMode);
      this.lock = await acquireDataLock(this.stateDir, this.root, self);
    } catch (err) {
      // A full or read-only disk must not stop a restore: serve without the lock (nothing can
      // be written anyway), and say so.
      const code = errnoCode(err);
      if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EROFS') throw err;
      this.logger?.warn({ err }, 'the data folder takes no writes: starting without its lock');
    }
    const { identity, problem } = await readDataIdentity(this.stateDir, this.root);
    if (problem !== undefined) this.logger?.warn({ problem }, 'the data folder state was reset');
    try {
      const outcome =
        this.index === undefined
          ? undefined
          : await loadIndex(this.stateDir, this.root, identity, this.index);
      if (outcome?.kind === 'loaded')
        this.logger?.info({ folders: outcome.folders }, 'loaded the object index');
      if (outcome?.kind === 'refused')
        this.logger?.warn(
          { reason: outcome.reason },
          'the saved object index was discarded; folders will be read from disk',
        );
    } catch (err) {
      this.logger?.warn({ err }, 'the saved object index could not be read; folders will be read from disk');
    }
    try {
      this.identity = await advanceGeneration(this.stateDir, identity, 0o600);
    } catch (err) {
      this.logger?.warn({ err }, 'the data folder state could not be updated; the index will not be saved');
    }
  }

  /** Saves the index (logging a failure) and releases the lock. */
  async close(): Promise<void> {
    try {
      if (this.identity !== undefined && this.index !== undefined)
        await saveIndex(this.stateDir, this.root, this.identity, this.index);
    } catch (err) {
      this.logger?.warn(
        { err },
        'saving the object index failed; the folders will be read at the next start',
      );
    }
    this.identity = undefined;
    await this.lock?.release();
    this.lock = undefined;
  }
}
