/** Errors with stable codes; `status` is the HTTP status the code maps to where it crosses the API. */
export const ErrorCodes = {
  E_CONFIG_INVALID: 500,
  E_STREAM_KEY_INVALID: 403,
  E_STREAM_NOT_FOUND: 404,
  E_STREAM_NOT_LIVE: 409,
  E_NOT_FOUND: 404,
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_VALIDATION: 400,
  E_CONFLICT: 409,
  E_PLAYLIST_TOO_FAR_AHEAD: 400,
  E_PLAYLIST_BAD_REQUEST: 400,
  E_PROTOCOL: 400,
  E_LIMIT_EXCEEDED: 429,
  /** Too many failed token attempts from one source address (FailureLimiter); the answer carries Retry-After. */
  E_RATE_LIMITED: 429,
  /** A request body that is not well-formed JSON (bad syntax, or bytes that are not UTF-8). */
  E_BAD_JSON: 400,
  E_UNSUPPORTED_CODEC: 415,
  E_CLOSED: 503,
  /** A dependency (the catalog's PostgreSQL, storage) does not answer now; the answer carries Retry-After. */
  E_UNAVAILABLE: 503,
  E_TIMEOUT: 504,
  E_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.status = ErrorCodes[code];
  }
}

/** Raised to pending operations when their owner closes. */
export class ClosedError extends AppError {
  constructor(what: string) {
    super('E_CLOSED', `${what} closed`);
    this.name = 'ClosedError';
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Node's socket error codes that mean a service is down or unreachable (not that the request was wrong). */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
