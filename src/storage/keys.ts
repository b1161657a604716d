import { AppError } from '../core/index.js';
import type { ByteRange, PutOptions } from './types.js';

/** S3's own limit on a key (in bytes; our keys are ASCII, so characters). */
export const MAX_KEY_LENGTH = 1024;
/** One '/'-separated segment; leaves room under the 255-byte file-name limit for FsStorage's side files. */
export const MAX_SEGMENT_LENGTH = 200;
/** Content-Type and Cache-Control values become HTTP headers; bound them like one. */
export const MAX_HEADER_VALUE_LENGTH = 256;

/**
 * A segment is letters, digits and `. _ - =`, and does not start with a dot. The rule rules out `.` and
 * `..` (no way out of the root), hidden files, and clashes with FsStorage's temporary and metadata files,
 * which all start with a dot. The set needs no escaping in a URL, a shell or a file name.
 */
const SEGMENT = /^[A-Za-z0-9_=-][A-Za-z0-9._=-]*$/;

function invalid(what: string, value: string, why: string): AppError {
  const shown = value.length > 80 ? `${JSON.stringify(value.slice(0, 80))}...` : JSON.stringify(value);
  return new AppError('E_VALIDATION', `storage: ${what} ${shown} ${why}`);
}

function checkSegments(what: string, value: string, segments: readonly string[]): void {
  for (const seg of segments) {
    if (seg === '') throw invalid(what, value, "has an empty segment (a leading '/' or '//')");
    if (seg === '.' || seg === '..') throw invalid(what, value, "has a '.' or '..' segment");
    if (seg.length > MAX_SEGMENT_LENGTH) throw invalid(what, value, `has a segment longer than ${MAX_SEGMENT_LENGTH} characters`);
    if (!SEGMENT.test(seg)) {
      throw invalid(what, value, 'may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot');
    }
  }
}

function checkCommon(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') throw new AppError('E_VALIDATION', `storage: ${what} must be a string`);
  if (value.length > MAX_KEY_LENGTH) throw invalid(what, value, `is longer than ${MAX_KEY_LENGTH} characters`);
  // Named before the general character rule: these are the ones that would escape or confuse a path.
  if (value.includes('\0')) throw invalid(what, value, 'contains a NUL character');
  if (value.includes('\\')) throw invalid(what, value, "contains a backslash (use '/' between segments)");
  if (value.startsWith('/')) throw invalid(what, value, "is absolute (keys are relative: no leading '/')");
}

/**
 * Throws E_VALIDATION unless `key` is a relative, '/'-separated object key: at most 1024 characters,
 * no empty, '.' or '..' segment, no trailing '/', and only the characters SEGMENT allows.
 */
export function validateKey(key: unknown): string {
  checkCommon('key', key);
  if (key === '') throw new AppError('E_VALIDATION', 'storage: key is empty');
  if (key.endsWith('/')) throw invalid('key', key, "ends with '/' (that names a folder, not an object)");
  checkSegments('key', key, key.split('/'));
  return key;
}

/**
 * A prefix as list() and deletePrefix() take it: '' (everything), or the start of a key. Every complete
 * segment follows the key rules; the last one may be partial ("vod/ab" matches "vod/abc/x") or empty
 * ("vod/" matches everything under vod/).
 */
/** A prefix deletePrefix takes: valid, and not empty (deleting everything is not offered). */
export function validateDeletePrefix(prefix: unknown): string {
  const p = validatePrefix(prefix);
  if (p === '') throw new AppError('E_VALIDATION', 'storage: deletePrefix needs a non-empty prefix (deleting everything is not offered)');
  return p;
}

export function validatePrefix(prefix: unknown): string {
  checkCommon('prefix', prefix);
  if (prefix === '') return prefix;
  const segments = prefix.split('/');
  const last = segments.pop()!;
  checkSegments('prefix', prefix, segments);
  if (last !== '') checkSegments('prefix', prefix, [last]);
  return prefix;
}

/** Header values we pass on: printable ASCII only, so no header injection (CR, LF) and no encoding questions. */
function validateHeaderValue(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '' || value.length > MAX_HEADER_VALUE_LENGTH || !/^[\x20-\x7e]+$/.test(value)) {
    throw new AppError('E_VALIDATION', `storage: ${name} must be 1 to ${MAX_HEADER_VALUE_LENGTH} printable ASCII characters`);
  }
  return value;
}

export function validatePutOptions(opts: PutOptions | undefined): PutOptions {
  return {
    contentType: validateHeaderValue('contentType', opts?.contentType),
    cacheControl: validateHeaderValue('cacheControl', opts?.cacheControl),
  };
}

/** A range as asked: whole non-negative numbers, end (inclusive) not before start. */
export function validateRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0)
    throw new AppError('E_VALIDATION', `storage: range start ${start} must be a whole number >= 0`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new AppError('E_VALIDATION', `storage: range end ${end} must be a whole number >= start (${start})`);
  }
}

/**
 * The range clipped to an object of `size` bytes, as HTTP does: an end past the last byte means the last
 * byte. A start at or past the end of the object is not satisfiable (HTTP 416); the caller gets E_VALIDATION.
 */
export function clipRange(key: string, range: ByteRange, size: number): { start: number; end: number } {
  if (range.start >= size) {
    throw new AppError('E_VALIDATION', `storage: range start ${range.start} is not within ${key} (${size} bytes)`);
  }
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
}

/** getBuffer's limit: a whole number of bytes, at least 0. */
export function validateMaxBytes(maxBytes: number): number {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
    throw new AppError('E_VALIDATION', `storage: maxBytes ${maxBytes} must be a whole number >= 0`);
  return maxBytes;
}
