import { AppError, isAppError } from '../core/index.js';
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
  const msg = err instanceof Error ? err.message : String(err);
  return new AppError('E_INTERNAL', `catalog: ${msg}`, { cause: err });
}
