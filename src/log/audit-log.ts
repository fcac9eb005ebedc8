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
 */
import { closeSync, fdatasync, fdatasyncSync, openSync, writeSync } from 'node:fs';

export type AuditAction = 'create-repo' | 'write' | 'delete' | 'user-add' | 'user-passwd' | 'user-remove';

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
  /** The HTTP status answered, or 0 for a command-line change that succeeded. */
  readonly status: number;
  /** Why a change was refused (the message the client got). */
  readonly reason?: string | undefined;
}

const flushEveryMs = 1000;

export class AuditLog {
  private readonly target: string;
  private fd: number;
  private dirty = false;
  private flushing = false;
  private closeAfterFlush: number | undefined;
  private readonly timer: NodeJS.Timeout | undefined;

  private constructor(target: string) {
    this.target = target;
    this.fd = AuditLog.openTarget(target);
    this.timer =
      target === '-'
        ? undefined
        : setInterval(() => {
            this.flush();
          }, flushEveryMs);
    this.timer?.unref();
  }

  /** Opens (creates, 0600) the file for appending; `-` is standard error. */
  static open(target: string): AuditLog {
    return new AuditLog(target);
  }

  private static openTarget(target: string): number {
    return target === '-' ? 2 : openSync(target, 'a', 0o600);
  }

  /** Writes one line now (see the file comment for durability). */
  record(event: AuditEvent): void {
    const line = `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`;
    const bytes = Buffer.from(line);
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    this.dirty = true;
  }

  /** Closes and opens the file again (after logrotate moved it). */
  reopen(): void {
    if (this.target === '-') return;
    const next = AuditLog.openTarget(this.target);
    const previous = this.fd;
    this.fd = next;
    fdatasyncSync(previous);
    // A background flush may still hold the old descriptor: it closes it when done.
    if (this.flushing) this.closeAfterFlush = previous;
    else closeSync(previous);
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.target === '-') return;
    fdatasyncSync(this.fd);
    // A flush still running closes the descriptor itself when it ends.
    if (this.flushing) this.closeAfterFlush = this.fd;
    else closeSync(this.fd);
  }

  private flush(): void {
    if (!this.dirty || this.flushing) return;
    this.dirty = false;
    this.flushing = true;
    fdatasync(this.fd, () => {
      this.flushing = false;
      if (this.closeAfterFlush !== undefined) closeSync(this.closeAfterFlush);
      this.closeAfterFlush = undefined;
    });
  }
}
