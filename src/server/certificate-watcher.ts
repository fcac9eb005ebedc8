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
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/server-config.ts';
import { loadTlsMaterial } from './tls-material.ts';
import type { TlsMaterial } from './tls-material.ts';

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
  readonly #files: readonly string[];
  readonly #logger: Logger;
  readonly #watchers: FSWatcher[] = [];
  #current: TlsMaterial;
  #poller: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<CertificateReloadOutcome> | undefined;
  #queued: Promise<CertificateReloadOutcome> | undefined;
  #signature: string | undefined;
  #closed = false;

  private constructor(options: CertificateWatcherOptions) {
    this.#options = options;
    const { cert, key, clientCa } = options.config;
    this.#files = [cert, key, ...(clientCa === undefined ? [] : [clientCa])].map((file) =>
      path.resolve(file),
    );
    this.#logger = options.logger.child({ tlsCert: this.#files[0] });
    this.#current = options.current;
  }

  /** Starts watching; the files were loaded once already (their material is options.current). */
  static async start(options: CertificateWatcherOptions): Promise<CertificateWatcher> {
    const watcher = new CertificateWatcher(options);
    watcher.#signature = await watcher.#stat();
    if (options.watch !== false) watcher.#watchFolders();
    const interval = options.pollIntervalMs ?? 5000;
    if (interval > 0) {
      watcher.#poller = setInterval(() => void watcher.#poll(), interval);
      watcher.#poller.unref();
    }
    return watcher;
  }

  /** The material being served. */
  get current(): TlsMaterial {
    return this.#current;
  }

  /** Reads the files again now; concurrent calls share one reload that starts after the call. */
  reload(): Promise<CertificateReloadOutcome> {
    if (this.#queued) return this.#queued;
    if (!this.#running) return this.#begin();
    this.#queued = this.#running.then(() => {
      this.#queued = undefined;
      return this.#begin();
    });
    return this.#queued;
  }

  /** Stops watching. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.splice(0)) watcher.close();
    clearInterval(this.#poller);
    clearTimeout(this.#debounce);
  }

  #begin(): Promise<CertificateReloadOutcome> {
    const running = this.#load().finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  async #load(): Promise<CertificateReloadOutcome> {
    let material: TlsMaterial;
    try {
      material = await loadTlsMaterial(this.#options.config);
    } catch (err) {
      this.#logger.error(
        { error: err instanceof Error ? err.message : String(err), serving: this.#current.fingerprint },
        'refusing the new TLS certificate/key; the previous certificate keeps serving',
      );
      return 'failed';
    }
    if (this.#closed || material.digest === this.#current.digest) return 'unchanged';
    try {
      this.#options.onMaterial(material);
    } catch (err) {
      this.#logger.error(
        { error: err instanceof Error ? err.message : String(err), serving: this.#current.fingerprint },
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

  /** A cheap change detector over all files: identity, size and times, or 'missing'. */
  async #stat(): Promise<string> {
    const parts = await Promise.all(
      this.#files.map(async (file) => {
        try {
          const info = await stat(file, { bigint: true });
          return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
        } catch {
          return 'missing';
        }
      }),
    );
    return parts.join('|');
  }

  async #poll(): Promise<void> {
    if (this.#closed) return;
    if (this.#options.watch !== false && this.#watchers.length === 0) this.#watchFolders();
    const signature = await this.#stat();
    if (signature === this.#signature || this.#closed) return;
    this.#signature = signature;
    this.#schedule();
  }

  #watchFolders(): void {
    const byFolder = new Map<string, Set<string>>();
    for (const file of this.#files) {
      const folder = path.dirname(file);
      const names = byFolder.get(folder) ?? new Set<string>();
      names.add(path.basename(file));
      byFolder.set(folder, names);
    }
    for (const [folder, names] of byFolder) {
      try {
        const watcher = watch(folder, { persistent: false }, (_event, name) => {
          if (name === null || names.has(name)) this.#schedule();
        });
        watcher.on('error', (err) => {
          this.#logger.debug({ err, folder }, 'watching a TLS folder failed; polling continues');
          watcher.close();
          const at = this.#watchers.indexOf(watcher);
          if (at >= 0) this.#watchers.splice(at, 1);
        });
        this.#watchers.push(watcher);
      } catch (err) {
        // A missing folder, or no inotify watches left: the poll still sees changes.
        this.#logger.debug({ err, folder }, 'cannot watch a TLS folder; polling only');
      }
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.reload()
        .then(async () => {
          this.#signature = await this.#stat();
        })
        .catch((err: unknown) => this.#logger.error({ err }, 'reloading the TLS certificate failed'));
    }, this.#options.debounceMs ?? 250);
    this.#debounce.unref();
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
