/**
 * The error catalogue. Every failure that reaches a client is a RatchetError with one of these
 * codes; src/http/error-response.ts is the only place that turns a code into an HTTP status.
 */
export const errorStatus = {
  BAD_REQUEST: 400,
  HASH_MISMATCH: 400,
  INCOMPLETE_BODY: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  CONFLICT: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  LENGTH_REQUIRED: 411,
  TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  QUOTA_EXCEEDED: 507,
  NO_SPACE: 507,
} as const;

export type ErrorCode = keyof typeof errorStatus;

/** A failure with a catalogue code, a client-safe message and optional response headers. */
export class RatchetError extends Error {
  readonly code: ErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RatchetError';
    this.code = code;
    this.headers = options?.headers ?? {};
  }
}

/** True when the value is a RatchetError carrying the given code. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof RatchetError && err.code === code;
}

/** The errno code of a Node system error (ENOENT, EPIPE, ...), if it is one. */
export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** An error's message, for logs and messages that must not carry a stack trace. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
