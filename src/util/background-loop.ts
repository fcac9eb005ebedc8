/**
 * A loop that runs in the background until stopped (the scrub, the trash purge): started once,
 * stopped by aborting its signal, and stop() resolves when the loop has finished what it was
 * doing. A failure that was not the stop is handed to `onFailure`.
 */
export class BackgroundLoop {
  private readonly body: (signal: AbortSignal) => Promise<void>;
  private readonly onFailure: (err: unknown) => void;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(body: (signal: AbortSignal) => Promise<void>, onFailure: (err: unknown) => void) {
    this.body = body;
    this.onFailure = onFailure;
  }

  start(): void {
    this.running ??= this.body(this.abort.signal).catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.onFailure(err);
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }
}
