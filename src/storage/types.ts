import type { Readable } from 'node:stream';

/** Stored with the object and given back by head() and get(). */
export interface PutOptions {
  /** Default application/octet-stream. */
  contentType?: string;
  /** Passed on to HTTP responses for the object (e.g. "public, max-age=31536000, immutable"). */
  cacheControl?: string;
}

export interface ObjectInfo {
  /** Bytes in the whole object. */
  size: number;
  contentType: string;
  cacheControl?: string;
}

/** Bytes `start` to `end`, both included, as in an HTTP Range header; no end means to the last byte. */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface ObjectBody extends ObjectInfo {
  /** The object's bytes, or the asked range of them. Read it to the end or destroy it: it holds a file or a socket. */
  body: Readable;
  /** Set when a range was asked: the bytes `body` carries, clipped to the object (end included). */
  range?: { start: number; end: number };
}

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/**
 * Where recordings and uploads keep their bytes. Keys are relative '/'-separated paths (see validateKey);
 * a bad key or range is E_VALIDATION, any other failure E_INTERNAL with the underlying error as `cause`,
 * and a call after close() E_CLOSED. A missing object is `undefined`, never an error.
 */
export interface ObjectStore {
  readonly kind: 'fs' | 's3';
  /**
   * Stores the object whole or not at all: until the returned promise resolves, readers see the old object
   * (or none). A stream that fails leaves nothing behind. Resolves with the bytes stored.
   */
  put(key: string, body: Buffer | Readable, opts?: PutOptions): Promise<{ size: number }>;
  /** The object's bytes with its metadata; a range start past the end of the object is E_VALIDATION (HTTP 416). */
  get(key: string, range?: ByteRange): Promise<ObjectBody | undefined>;
  /** The whole object in memory; an object larger than `maxBytes` (default 64 MiB) is E_LIMIT_EXCEEDED. */
  getBuffer(key: string, opts?: { maxBytes?: number }): Promise<Buffer | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Deletes every object whose key starts with `prefix` (which must not be empty); resolves with the count. */
  deletePrefix(prefix: string): Promise<number>;
  /** Every key that starts with `prefix` ('' for all), in byte order. */
  list(prefix: string): Promise<string[]>;
  /**
   * Whether storage answers now, for /healthz: S3 a HeadBucket abandoned after `timeoutMs` (default 1 s),
   * files an access(2) of the media folder (writable). Never throws.
   */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Waits for writes in flight, then releases the client. Idempotent. */
  close(): Promise<void>;
}
