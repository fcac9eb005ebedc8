/** A real pino logger whose lines a test can read. */
import { pino } from 'pino';
import type { Logger } from 'pino';

/** One parsed log line: its level (pino's numbers: 30 info, 40 warn, 50 error), message and fields. */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly line?: number;
  readonly error?: string;
  readonly reason?: string;
  readonly [field: string]: unknown;
}

/** A debug-level logger that keeps every line it writes, parsed, in `lines`. */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (text: string) => lines.push(JSON.parse(text) as LogLine) },
  );
  return { logger, lines };
}
