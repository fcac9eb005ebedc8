/**
 * Keeps the TLS certificate in step with its files without a restart: reloads when the
 * certificate, key or client CA changes (also when replaced by a rename, as certbot and
 * Kubernetes secret updates do) and on demand (SIGHUP). A new set is applied only after it
 * passed every check; a broken or mismatched one is refused with a log line and the old
 * certificate keeps serving (rest-server issue 94).
 *
 * `fs.watch(file)` follows the inode and goes quiet after a rename-replace, so the folders are
 * watched instead, backed by a stat poll (network file systems, symlink swaps, folders that
 * appear later).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/server-config.ts';
import { ChangeWatcher } from '../util/change-watcher.ts';
import { loadTlsMaterial } from './tls-material.ts';
import type { TlsMaterial } from './tls-material.ts';
import { errorMessage } from '../errors.ts';

export type CertificateReloadOutcome = 'loaded' | 'unchanged' | 'failed';

export interface CertificateWatcherOptions {
  readonly config: TlsConfig;
  readonly logger: Logger;
  /** The material in use now (loaded and checked at startup). */
  readonly current: TlsMaterial;
  /** Receives every new material that passed the checks. */
  readonly onMaterial: (material: TlsMaterial) => void;
  /** How often the files are stat'ed for changes, in ms (default 5000; 0 turns polling off). */
  readonly pollIntervalMs?: number;
  /** Watch the files' folders for immediate reloads (default true). */
  readonly watch?: boolean;
  /**
   * Wait this long after a change event before reading (default 250 ms), so that a certificate
   * and key written one after the other are usually read as a pair.
   */
  readonly debounceMs?: number;
}

/** Reloads the TLS certificate, key and client CA when their files change or on request. */
export class CertificateWatcher {
  readonly #options: CertificateWatcherOptions;
  readonly #logger: Logger;
  readonly #changes: ChangeWatcher<CertificateReloadOutcome>;
  #current: TlsMaterial;

  private constructor(options: CertificateWatcherOptions) {
    this.#options = options;
    const { cert, key, clientCa } = options.config;
    const files = [cert, key, ...(clientCa === undefined ? [] : [clientCa])].map((file) =>
      path.resolve(file),
    );
    this.#logger = options.logger.child({ tlsCert: files[0] });
    this.#current = options.current;
    this.#changes = new ChangeWatcher({
      files,
      reload: () => this.#load(),
      debounceMs: options.debounceMs ?? 250,
      pollIntervalMs: options.pollIntervalMs,
      watch: options.watch,
      onWatchError: (err, folder, lost) =>
        this.#logger.debug(
          { err, folder },
          lost
            ? 'watching a TLS folder failed; polling continues'
            : 'cannot watch a TLS folder; polling only',
        ),
      onReloadError: (err) => this.#logger.error({ err }, 'reloading the TLS certificate failed'),
    });
  }

  /** Starts watching; the files were loaded once already (their material is options.current). */
  static async start(options: CertificateWatcherOptions): Promise<CertificateWatcher> {
    const watcher = new CertificateWatcher(options);
    await watcher.#changes.snapshot();
    watcher.#changes.start();
    return watcher;
  }

  /** The material being served. */
  get current(): TlsMaterial {
    return this.#current;
  }

  /** Reads the files again now; concurrent calls share one reload that starts after the call. */
  reload(): Promise<CertificateReloadOutcome> {
    return this.#changes.reload();
  }

  /** Stops watching. */
  close(): void {
    this.#changes.close();
  }

  async #load(): Promise<CertificateReloadOutcome> {
    let material: TlsMaterial;
    try {
      material = await loadTlsMaterial(this.#options.config);
    } catch (err) {
      this.#logger.error(
        { error: errorMessage(err), serving: this.#current.fingerprint },
        'refusing the new TLS certificate/key; the previous certificate keeps serving',
      );
      return 'failed';
    }
    if (this.#changes.closed || material.digest === this.#current.digest) return 'unchanged';
    try {
      this.#options.onMaterial(material);
    } catch (err) {
      this.#logger.error(
        { error: errorMessage(err), serving: this.#current.fingerprint },
        'the TLS server refused the new certificate/key; the previous certificate keeps serving',
      );
      return 'failed';
    }
    const previous = this.#current.fingerprint;
    this.#current = material;
    this.#logger.info(
      { fingerprint: material.fingerprint, previous, subject: material.subject, validTo: material.validTo },
      'TLS certificate reloaded; new connections use it',
    );
    warnIfExpired(material, this.#logger);
    return 'loaded';
  }
}

/** Logs a warning when the certificate is past its end date (it is still served: better than none). */
export function warnIfExpired(material: TlsMaterial, logger: Logger): void {
  if (material.validTo.getTime() < Date.now()) {
    logger.warn(
      { fingerprint: material.fingerprint, validTo: material.validTo },
      'the TLS certificate has expired; clients will refuse it',
    );
  }
}
