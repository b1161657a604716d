/** What FsStorage and S3Storage share: call bookkeeping, error wrapping, limits on what is read into memory. */
import { Readable } from 'node:stream';
import { AppError, ClosedError, isAppError, NETWORK_ERROR_CODES } from '../core/index.js';
import type { ObjectBody } from './types.js';

/** The most keys list() gathers in memory; past that the caller must narrow the prefix. */
export const MAX_LIST_KEYS = 100_000;

/** Largest object getBuffer() reads into memory unless told otherwise. */
export const DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024;

/**
 * Around each call: refuse work after close(), remember work in flight so close()
 * can wait for it, and turn any failure that is not already an AppError into E_INTERNAL that names the
 * operation and the key, with the original error as `cause`.
 */
export class Operations {
  readonly #name: string;
  #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(name: string) {
    this.#name = name;
  }

  run<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError(this.#name));
    const p = fn().catch((err: unknown) => {
      throw toStorageError(this.#name, op, key, err);
    });
    this.#inFlight.add(p);
    const forget = () => this.#inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Waits for everything in flight (failures included), then runs `release` once. */
  close(release: () => void | Promise<void>): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inFlight]);
      await release();
    })();
    return this.#closing;
  }
}

/** How long a client is told to wait (Retry-After) when storage does not answer or is full. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/**
 * Storage cannot serve now (E_UNAVAILABLE, HTTP 503): S3 unreachable or failing (5xx, throttled), or the
 * disk under DATA_DIR full. `retryAfterSeconds` is what the API puts in Retry-After; the message names the
 * operation and key, never the service's address (that stays in the cause).
 */
export class StorageUnavailableError extends AppError {
  readonly retryAfterSeconds = STORAGE_RETRY_AFTER_SECONDS;

  constructor(name: string, op: string, key: string, why: string, cause: unknown) {
    super('E_UNAVAILABLE', `${name}: ${op} ${JSON.stringify(key)} failed: ${why}; try again shortly`, { cause });
    this.name = 'StorageUnavailableError';
  }
}

/** The SDK's names for S3 being overloaded or timing out (it also answers 5xx for them). */
const S3_AWAY = new Set(['ServiceUnavailable', 'SlowDown', 'InternalError', 'RequestTimeout', 'TimeoutError', 'RequestTimeTooSkewed']);

/** Why `err` means storage is away for now (undefined: it is not that kind of failure). */
function unavailableReason(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return 'the disk is full';
  if (typeof e.code === 'string' && NETWORK_ERROR_CODES.has(e.code)) return 'the object store does not answer';
  if (typeof e.name === 'string' && S3_AWAY.has(e.name)) return `the object store is unavailable (${e.name})`;
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === 'number' && status >= 500) return `the object store is unavailable (HTTP ${status})`;
  return undefined;
}

export function toStorageError(name: string, op: string, key: string, err: unknown): AppError {
  if (isAppError(err)) return err;
  const why = unavailableReason(err);
  if (why) return new StorageUnavailableError(name, op, key, why, err);
  const msg = err instanceof Error ? err.message : String(err);
  return new AppError('E_INTERNAL', `${name}: ${op} ${JSON.stringify(key)} failed: ${msg}`, { cause: err });
}

/** Collects `keys` into a sorted array, refusing to hold more than MAX_LIST_KEYS. */
export async function collectKeys(prefix: string, keys: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const key of keys) {
    if (out.length === MAX_LIST_KEYS) {
      throw new AppError(
        'E_LIMIT_EXCEEDED',
        `storage: more than ${MAX_LIST_KEYS} keys under ${JSON.stringify(prefix)}; list a narrower prefix`,
      );
    }
    out.push(key);
  }
  // Plain code-unit order: for our ASCII keys the same as S3's UTF-8 byte order.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Reads `body` into one Buffer, failing as soon as it passes `maxBytes` (leaving the loop destroys the stream). */
export async function readAll(key: string, body: AsyncIterable<Buffer | Uint8Array | string>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    total += buf.length;
    if (total > maxBytes) {
      throw tooLarge(key, maxBytes);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** The whole of an opened object (or undefined for a missing one), refused up front when its size is over `maxBytes`. */
export async function bufferOf(key: string, obj: ObjectBody | undefined, maxBytes: number): Promise<Buffer | undefined> {
  if (!obj) return undefined;
  if (obj.size > maxBytes) {
    obj.body.destroy();
    throw tooLarge(key, maxBytes);
  }
  return readAll(key, obj.body, maxBytes);
}

export function tooLarge(key: string, maxBytes: number): AppError {
  return new AppError('E_LIMIT_EXCEEDED', `storage: ${JSON.stringify(key)} is larger than ${maxBytes} bytes; read it as a stream`);
}

/**
 * put() owns a body stream from the call on: an error the stream raises before put() starts reading it
 * (while a folder is made, or a multipart upload is created) must reach put()'s promise, not crash the
 * process as an unhandled 'error' event. Reading a stream that has already failed reports its error, so a
 * no-op listener loses nothing. release() lets the stream go again; after a failure it also destroys the
 * stream, so its producer does not wait forever.
 */
export function adoptBody(body: unknown): { release(failed: boolean): void } {
  if (!(body instanceof Readable)) return { release: () => {} };
  const ignore = () => {};
  body.on('error', ignore);
  return {
    release(failed) {
      if (failed && !body.destroyed) body.destroy();
      body.off('error', ignore);
    },
  };
}
