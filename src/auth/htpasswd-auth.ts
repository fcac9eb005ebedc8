/** Authentication from an htpasswd file: the authenticator fed by a watcher, behind one object. */
import { Authenticator } from './authenticator.ts';
import type { AuthenticatorOptions, AuthenticatorStats } from './authenticator.ts';
import { HtpasswdWatcher } from './htpasswd-watcher.ts';
import type { ReloadOutcome } from './htpasswd-watcher.ts';
import { preloadBcrypt } from './verifiers.ts';

export interface HtpasswdAuthOptions extends AuthenticatorOptions {
  /** The htpasswd file (the server's default is `<path>/.htpasswd`). */
  readonly file: string;
  /** Stat poll interval in ms (default 5000; 0 turns it off). */
  readonly pollIntervalMs?: number;
  /** Watch the file's folder for immediate reloads (default true). */
  readonly watch?: boolean;
  /** Delay between a change event and the reload, in ms (default 100). */
  readonly debounceMs?: number;
}

/** Checks Basic credentials against an htpasswd file that is reloaded when it changes. */
export class HtpasswdAuth {
  readonly authenticator: Authenticator;
  readonly #watcher: HtpasswdWatcher;

  private constructor(authenticator: Authenticator, watcher: HtpasswdWatcher) {
    this.authenticator = authenticator;
    this.#watcher = watcher;
  }

  /** Loads the file and starts watching it; throws when the file exists but cannot be used. */
  static async start(options: HtpasswdAuthOptions): Promise<HtpasswdAuth> {
    await preloadBcrypt();
    const authenticator = new Authenticator(options);
    try {
      const watcher = await HtpasswdWatcher.start({
        file: options.file,
        logger: options.logger,
        onUsers: (users) => authenticator.setUsers(users),
        pollIntervalMs: options.pollIntervalMs,
        watch: options.watch,
        debounceMs: options.debounceMs,
      });
      return new HtpasswdAuth(authenticator, watcher);
    } catch (err) {
      await authenticator.close();
      throw err;
    }
  }

  /**
   * The user name that the Authorization header proves; throws RatchetError UNAUTHORIZED (with
   * WWW-Authenticate) or TOO_MANY_REQUESTS (with Retry-After). `remoteAddress` is the client's
   * address ('' or undefined for a unix socket).
   */
  authenticate(authorization: string | undefined, remoteAddress: string | undefined): Promise<string> {
    return this.authenticator.authenticate(authorization, remoteAddress);
  }

  /** Reads the htpasswd file again now (for SIGHUP); a broken file keeps the current users. */
  reload(): Promise<ReloadOutcome> {
    return this.#watcher.reload();
  }

  /** Counters for metrics. */
  stats(): AuthenticatorStats {
    return this.authenticator.stats();
  }

  /** Stops watching the file and stops the crypt worker. */
  async close(): Promise<void> {
    this.#watcher.close();
    await this.authenticator.close();
  }
}

/** Starts htpasswd authentication (see HtpasswdAuth.start). */
export function startHtpasswdAuth(options: HtpasswdAuthOptions): Promise<HtpasswdAuth> {
  return HtpasswdAuth.start(options);
}
