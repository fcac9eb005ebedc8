/** Keeping credentials out of every log: what a request may carry that must not be written down. */

// `scheme://user:password@host`: an absolute-form request target or a URL in an error message.
const userInfo = /(\/\/)[^/@\s]*@/g;

/** The URL (or text holding URLs) with any user:password@ part replaced. */
export function redactUrl(url: string): string {
  return url.replace(userInfo, '$1[redacted]@');
}

export interface LoggableError {
  readonly type: string;
  readonly code?: string;
  readonly message: string;
  readonly stack?: string;
  readonly cause?: LoggableError;
}

/**
 * An error as it may be logged: its name, code, message, stack and cause (URLs redacted), none of
 * its other properties (a parse error's rawPacket holds the raw request, Authorization included).
 */
export function loggableError(err: unknown, depth = 0): LoggableError {
  if (!(err instanceof Error)) return { type: typeof err, message: redactUrl(String(err)) };
  const code = (err as { code?: unknown }).code;
  return {
    type: err.name,
    ...(typeof code === 'string' ? { code } : {}),
    message: redactUrl(err.message),
    ...(err.stack === undefined ? {} : { stack: redactUrl(err.stack) }),
    ...(err.cause === undefined || depth >= 3 ? {} : { cause: loggableError(err.cause, depth + 1) }),
  };
}
