/**
 * The audit trail (`--audit-log FILE`, or `-` for standard error): one JSON line per change and
 * per refused change — repository creation, uploads, deletes, and the `ratchet user` changes —
 * with who, from where, through which listener, what, and the outcome.
 *
 * Durability: a line is written (write(2) on an O_APPEND descriptor) before the response that
 * acknowledges the change leaves the server, so a crash of the server never loses a line for an
 * answered request; the file is flushed to disk (fdatasync) within a second, so a power loss can
 * lose at most the last second of lines. A flush per line would double the disk flushes of every
 * upload (the objects themselves are flushed before they are acknowledged) for a trail that is
 * about who did what, not about the data. Reopened on SIGHUP, for logrotate.
 *
 * Writing never throws into a request: a line that cannot be written (a full disk) is reported
 * through `onError`, and the request is answered as it would be without the trail.
 */
import { closeSync, fdatasync, fdatasyncSync, openSync, writeSync } from 'node:fs';

export type AuditAction =
  | 'create-repo'
  | 'write'
  | 'delete'
  | 'user-add'
  | 'user-passwd'
  | 'user-remove'
  | 'trash-restore'
  | 'trash-purge';

export interface AuditEvent {
  readonly action: AuditAction;
  readonly user?: string | undefined;
  /** The client's address (after --trusted-proxy), '' for a unix socket. */
  readonly client?: string | undefined;
  readonly listener?: string | undefined;
  readonly method?: string | undefined;
  /** The repository path, as `/host1/`. */
  readonly repo?: string | undefined;
  readonly type?: string | undefined;
  readonly name?: string | undefined;
  /** The user name a `ratchet user` change concerns. */
  readonly subject?: string | undefined;
  /** The users file a `ratchet user` change wrote. */
  readonly file?: string | undefined;
  /** Bytes uploaded or deleted, when known. */
  readonly size?: number | undefined;
  /** The HTTP status answered (499: the client went away first), or 0 for a command. */
  readonly status: number;
  /** Why a change was refused (the message the client got). */
  readonly reason?: string | undefined;
}

const flushEveryMs = 1000;
// Standard error may be a non-blocking pipe (journald): a full pipe is waited out this often.
const busyRetries = 200;

export class AuditLog {
  private readonly target: string;
  private readonly onError: (err: unknown) => void;
  private fd: number;
  private dirty = false;
  private flushing = false;
  private closed = false;
  /** Descriptors replaced (SIGHUP) or closed while a background flush still used them. */
  private readonly closeAfterFlush: number[] = [];
  private readonly timer: NodeJS.Timeout | undefined;

  private constructor(target: string, onError: (err: unknown) => void) {
    this.target = target;
    this.onError = onError;
    this.fd = AuditLog.openTarget(target);
    this.timer =
      target === '-'
        ? undefined
        : setInterval(() => {
            this.flush();
          }, flushEveryMs);
    this.timer?.unref();
  }

  /** Opens (creates, 0600) the file for appending; `-` is standard error. Throws when it cannot. */
  static open(target: string, onError: (err: unknown) => void): AuditLog {
    return new AuditLog(target, onError);
  }

  private static openTarget(target: string): number {
    return target === '-' ? 2 : openSync(target, 'a', 0o600);
  }

  /** Writes one line now (see the file comment); never throws. */
  record(event: AuditEvent): void {
    if (this.closed) {
      this.onError(new Error('a change after the audit trail was closed (shutdown) is not recorded'));
      return;
    }
    const bytes = Buffer.from(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    try {
      let written = 0;
      let busy = 0;
      while (written < bytes.length) {
        try {
          written += writeSync(this.fd, bytes, written);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++busy > busyRetries) throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        }
      }
      this.dirty = true;
    } catch (err) {
      this.onError(err);
    }
  }

  /** Closes and opens the file again (after logrotate moved it); throws when it cannot reopen. */
  reopen(): void {
    if (this.target === '-' || this.closed) return;
    const next = AuditLog.openTarget(this.target);
    const previous = this.fd;
    this.fd = next;
    this.release(previous);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.target !== '-') this.release(this.fd);
  }

  /** Flushes and closes a descriptor no longer written to (later, if a flush still uses it). */
  private release(fd: number): void {
    try {
      fdatasyncSync(fd);
    } catch (err) {
      // Not a file that can be flushed (a FIFO, a terminal) or a failing disk: close it anyway.
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') this.onError(err);
    }
    if (this.flushing) this.closeAfterFlush.push(fd);
    else closeQuietly(fd);
  }

  private flush(): void {
    if (!this.dirty || this.flushing || this.closed) return;
    this.dirty = false;
    this.flushing = true;
    fdatasync(this.fd, (err) => {
      this.flushing = false;
      if (err !== null && err.code !== 'EINVAL') this.onError(err);
      for (const fd of this.closeAfterFlush.splice(0)) closeQuietly(fd);
    });
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closing a descriptor that was only appended to and already flushed cannot lose a line.
  }
}
