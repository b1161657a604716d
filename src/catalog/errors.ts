import { AppError, isAppError, NETWORK_ERROR_CODES } from '../core/index.js';
import type { ErrorCode } from '../core/index.js';

/** SQLSTATE classes we turn into stable codes (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
const SQLSTATE_CODES: Readonly<Record<string, { code: ErrorCode; what: string }>> = {
  '23505': { code: 'E_CONFLICT', what: 'already exists' },
  '23503': { code: 'E_CONFLICT', what: 'refers to a row that does not exist' },
  '23514': { code: 'E_VALIDATION', what: 'violates a check' },
  '23502': { code: 'E_VALIDATION', what: 'misses a required value' },
  '22001': { code: 'E_VALIDATION', what: 'has a value too long' },
  '22P02': { code: 'E_VALIDATION', what: 'has a malformed value' },
  '22007': { code: 'E_VALIDATION', what: 'has a malformed date' },
  '22008': { code: 'E_VALIDATION', what: 'has a date out of range' },
};

interface PgLikeError {
  code?: unknown;
  constraint?: unknown;
  table?: unknown;
}

/** How long a client is told to wait (Retry-After) when the catalog's server does not answer. */
export const CATALOG_RETRY_AFTER_SECONDS = 5;

/**
 * The catalog's server cannot be reached now (E_UNAVAILABLE, HTTP 503). `retryAfterSeconds` is what the
 * API puts in Retry-After. The message names no address: the driver's (host, port) stays in the cause.
 */
export class CatalogUnavailableError extends AppError {
  readonly retryAfterSeconds = CATALOG_RETRY_AFTER_SECONDS;

  constructor(cause: unknown) {
    super('E_UNAVAILABLE', 'the catalog (PostgreSQL) is unavailable; try again shortly', { cause });
    this.name = 'CatalogUnavailableError';
  }
}

/**
 * pg's own errors for a connection lost or never made carry no code, only these messages (pg 8:
 * client.js, pg-pool's index.js).
 */
const LOST_CONNECTION =
  /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Connection closed|Query read timeout/i;

/**
 * Codes and messages of a server that cannot be reached now: a connection refused or not opened in time, an
 * answer that never came (pg's query_timeout), a server not accepting connections yet (57P03) or full
 * (53300). One connection lost (reset, terminated: an idle one a firewall or the server closed) is not:
 * the pool opens another. What db.ts's fail-fast starts on.
 */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', '57P03', '53300']);
const UNREACHABLE_MESSAGES = /timeout exceeded when trying to connect|due to connection timeout|Query read timeout/i;

/** Whether a driver error (the cause of an E_UNAVAILABLE) says the server cannot be reached now. */
export function isUnreachable(cause: unknown): boolean {
  if (typeof cause !== 'object' || cause === null) return false;
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
  return cause instanceof Error && UNREACHABLE_MESSAGES.test(cause.message);
}

/**
 * Whether `sqlstate` or the error says the server is away: SQLSTATE class 08 (connection exception),
 * 57P01-57P03 (the server shutting down or not accepting connections yet), 53300 (too many connections),
 * 57014 (a statement cancelled by statement_timeout: the server is too slow to answer now; see db.ts).
 */
function isUnavailable(e: PgLikeError, sqlstate: string | undefined, err: unknown): boolean {
  if (sqlstate !== undefined && (sqlstate.startsWith('08') || /^57P0[123]$/.test(sqlstate) || sqlstate === '53300' || sqlstate === '57014'))
    return true;
  if (sqlstate !== undefined && NETWORK_ERROR_CODES.has(sqlstate)) return true;
  return err instanceof Error && LOST_CONNECTION.test(err.message);
}

/**
 * Turns a driver error (pg's DatabaseError or PGlite's, both carry `code` = SQLSTATE) into an AppError with
 * the original as `cause`. AppErrors pass through untouched.
 */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as PgLikeError;
  const sqlstate = typeof e.code === 'string' ? e.code : undefined;
  const mapped = sqlstate !== undefined ? SQLSTATE_CODES[sqlstate] : undefined;
  if (mapped) {
    const where = typeof e.constraint === 'string' ? ` (${e.constraint})` : typeof e.table === 'string' ? ` (${e.table})` : '';
    return new AppError(mapped.code, `catalog: row ${mapped.what}${where}`, { cause: err });
  }
  if (isUnavailable(e, sqlstate, err)) return new CatalogUnavailableError(err);
  const msg = err instanceof Error ? err.message : String(err);
  return new AppError('E_INTERNAL', `catalog: ${msg}`, { cause: err });
}
