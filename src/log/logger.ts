/** The operator's log: structured JSON lines on standard error. */
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** A logger at debug level when asked, info otherwise; Authorization headers are never logged. */
export function createLogger(debug: boolean): Logger {
  return pino(
    {
      level: debug ? 'debug' : 'info',
      base: { service: 'ratchet' },
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', 'password'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
