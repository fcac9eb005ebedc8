/** A pino logger whose lines the test can read. */
import { pino } from 'pino';
import type { Logger } from 'pino';

export interface LogLine {
  level: number;
  msg: string;
  error?: string;
  line?: number;
  reason?: string;
  [field: string]: unknown;
}

/** A debug-level logger that keeps every line, parsed. */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (text: string) => lines.push(JSON.parse(text) as LogLine) },
  );
  return { logger, lines };
}
