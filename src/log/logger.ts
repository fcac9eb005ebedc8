/** The operator's log: structured JSON lines on standard error. */
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger };

// Whatever an error or request object carries, these never reach the log (see also redact.ts).
const secretPaths = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'password',
  'err.rawPacket',
  'cause.rawPacket',
  'err.cause.rawPacket',
];

/**
 * A logger at debug level when asked, info otherwise, writing to standard error (or the given
 * destination); credentials are never logged.
 */
export function createLogger(debug: boolean, destination?: DestinationStream): Logger {
  return pino(
    {
      level: debug ? 'debug' : 'info',
      base: { service: 'ratchet' },
      redact: {
        paths: secretPaths,
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
