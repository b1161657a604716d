import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import type { GetObjectCommandOutput, S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AppError } from '../core/index.js';
import {
  MAX_KEY_LENGTH,
  validateDeletePrefix,
  validateKey,
  validatePrefix,
  validateMaxBytes,
  validatePutOptions,
  validateRange,
} from './keys.js';
import { adoptBody, bufferOf, collectKeys, DEFAULT_MAX_BUFFER_BYTES, Operations } from './shared.js';
import { DEFAULT_CONTENT_TYPE } from './types.js';
import type { ByteRange, ObjectBody, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** S3's smallest part (all but the last) in a multipart upload. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** S3 lists and deletes at most 1000 keys a request. */
const MAX_PAGE_SIZE = 1000;
/** Parts of one multipart upload sent at once. */
const UPLOAD_CONCURRENCY = 4;
/** Longest a TCP (and TLS) connection to S3 may take to open. */
export const S3_CONNECT_TIMEOUT_MS = 3000;
/** Default of requestTimeoutMs: S3 silent this long (no byte either way) on a request is given up. */
export const DEFAULT_S3_REQUEST_TIMEOUT_MS = 10_000;
/**
 * Tries of one request by the SDK (its standard retry strategy: throttling, 5xx, timeouts), so a request
 * that times out costs at most about 2 x requestTimeoutMs. Callers that must not lose a write (the
 * recorder) retry on their own, with their own backoff and bounds.
 */
const SDK_MAX_ATTEMPTS = 2;

export interface S3StorageOptions {
  bucket: string;
  region: string;
  /** An S3-compatible service (MinIO, s3rver...); unset for AWS itself. */
  endpoint?: string;
  /** Bucket in the path (http://host/bucket/key) rather than the host name; MinIO and s3rver need it. */
  forcePathStyle?: boolean;
  /** Put before every key, so several deployments can share a bucket; a '/' is added if missing. */
  prefix?: string;
  /** Default: the SDK's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles...). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Keys per list request and per batch delete, 1 to 1000 (default 1000); small values are for tests. */
  pageSize?: number;
  /** Streams and buffers larger than this go up as a multipart upload in parts of this size (>= 5 MiB, default 8 MiB). */
  partSize?: number;
  /**
   * A request whose connection carries no byte either way for this long fails with TimeoutError
   * (E_UNAVAILABLE): a service that accepts connections and never answers cannot hold a caller. Default
   * 10 s; opening a connection may take S3_CONNECT_TIMEOUT_MS.
   */
  requestTimeoutMs?: number;
}

/** The S3 error names that mean "no such object"; HeadObject has no body, so the SDK names its 404 NotFound. */
const MISSING = new Set(['NoSuchKey', 'NotFound']);

function errorName(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { name?: unknown }).name === 'string'
    ? (err as { name: string }).name
    : '';
}

/** The object store on S3 or an S3-compatible service; the bucket must exist. */
export class S3Storage implements ObjectStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly #client: S3Client;
  readonly #prefix: string;
  readonly #pageSize: number;
  readonly #partSize: number;
  readonly #ops = new Operations('storage');

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    this.#prefix = normalisePrefix(opts.prefix);
    this.#pageSize = checkWhole('pageSize', opts.pageSize ?? MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE);
    this.#partSize = checkWhole('partSize', opts.partSize ?? DEFAULT_PART_SIZE, MIN_PART_SIZE, 5 * 1024 * 1024 * 1024);
    const config: S3ClientConfig = {
      region: opts.region,
      forcePathStyle: opts.forcePathStyle ?? false,
      maxAttempts: SDK_MAX_ATTEMPTS,
      // socketTimeout is the inactivity bound (it also covers a body that stops half way); the handler's
      // requestTimeout would bound the whole of an upload, which a large part on a slow link may exceed.
      requestHandler: {
        connectionTimeout: S3_CONNECT_TIMEOUT_MS,
        socketTimeout: checkWhole('requestTimeoutMs', opts.requestTimeoutMs ?? DEFAULT_S3_REQUEST_TIMEOUT_MS, 100, 600_000),
      },
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    };
    if (opts.endpoint) {
      config.endpoint = opts.endpoint;
      // Recent SDKs add CRC32 checksums to every upload (a trailer after a streamed body, a checksum
      // algorithm on multipart uploads) that many S3-compatible services (older MinIO, s3rver) reject or
      // mangle. Checksums then go only where the API requires one (DeleteObjects).
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    this.#client = new S3Client(config);
  }

  /** The SDK client, for instrumentation (metrics, tests counting requests); do not use it to bypass key checks. */
  get client(): S3Client {
    return this.#client;
  }

  /** Fails with E_CONFIG_INVALID when the bucket cannot be reached with these credentials. */
  async checkBucket(): Promise<void> {
    return this.#ops.run('checkBucket', this.bucket, async () => {
      try {
        await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      } catch (err) {
        const why = errorName(err) === 'NotFound' ? 'does not exist' : `is not usable (${errorName(err) || String(err)})`;
        throw new AppError('E_CONFIG_INVALID', `storage: S3 bucket ${JSON.stringify(this.bucket)} ${why}`, { cause: err });
      }
    });
  }

  /**
   * Whether the bucket answers now (for /healthz): one HeadBucket, abandoned after `timeoutMs`. Any answer
   * but a success (no bucket, refused credentials, 5xx, no connection) is false.
   */
  async ping(timeoutMs = 1000): Promise<boolean> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
      return true;
    } catch {
      return false;
    }
  }

  async put(key: string, body: Buffer | Readable, opts?: PutOptions): Promise<{ size: number }> {
    const objectKey = this.#objectKey(key);
    const meta = validatePutOptions(opts);
    if (!Buffer.isBuffer(body) && !(body instanceof Readable)) {
      throw new AppError('E_VALIDATION', 'storage: body must be a Buffer or a Readable stream');
    }
    const params = {
      Bucket: this.bucket,
      Key: objectKey,
      ContentType: meta.contentType ?? DEFAULT_CONTENT_TYPE,
      ...(meta.cacheControl ? { CacheControl: meta.cacheControl } : {}),
    };
    return this.#ops.run('put', key, async () => {
      const owned = adoptBody(body);
      try {
        const size = await this.#upload(params, body);
        owned.release(false);
        return { size };
      } catch (err) {
        owned.release(true);
        throw err;
      }
    });
  }

  /** S3 makes an object visible only when PutObject or CompleteMultipartUpload succeeds: atomic by design. */
  async #upload(
    params: { Bucket: string; Key: string; ContentType: string; CacheControl?: string },
    body: Buffer | Readable,
  ): Promise<number> {
    if (Buffer.isBuffer(body) && body.length <= this.#partSize) {
      await this.#client.send(new PutObjectCommand({ ...params, Body: body, ContentLength: body.length }));
      return body.length;
    }
    // lib-storage sends a stream that ends within one part as a single PutObject, else in parts.
    const counter = { bytes: 0 };
    const upload = new Upload({
      client: this.#client,
      params: { ...params, Body: Buffer.isBuffer(body) ? body : Readable.from(countBytes(body, counter), { objectMode: false }) },
      partSize: this.#partSize,
      queueSize: UPLOAD_CONCURRENCY,
      // A failed multipart upload is aborted, so its parts do not linger (and cost) in the bucket.
      leavePartsOnError: false,
    });
    await upload.done();
    return Buffer.isBuffer(body) ? body.length : counter.bytes;
  }

  async get(key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    const objectKey = this.#objectKey(key);
    if (range) validateRange(range);
    return this.#ops.run('get', key, () => this.#open(key, objectKey, range));
  }

  async getBuffer(key: string, opts?: { maxBytes?: number }): Promise<Buffer | undefined> {
    const objectKey = this.#objectKey(key);
    const maxBytes = validateMaxBytes(opts?.maxBytes ?? DEFAULT_MAX_BUFFER_BYTES);
    return this.#ops.run('getBuffer', key, async () => bufferOf(key, await this.#open(key, objectKey), maxBytes));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.#objectKey(key);
    return this.#ops.run('head', key, async () => {
      try {
        const res = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
        return toInfo(res.ContentLength ?? 0, res.ContentType, res.CacheControl);
      } catch (err) {
        if (MISSING.has(errorName(err))) return undefined;
        throw err;
      }
    });
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.#objectKey(key);
    return this.#ops.run('delete', key, async () => {
      // S3 answers 204 for a missing key too.
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    });
  }

  async deletePrefix(prefix: string): Promise<number> {
    validateDeletePrefix(prefix);
    return this.#ops.run('deletePrefix', prefix, async () => {
      let deleted = 0;
      // One DeleteObjects per listed page: a page holds at most 1000 keys, DeleteObjects' own limit.
      for await (const page of this.#pages(prefix)) {
        if (page.length === 0) continue;
        const res = await this.#client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: page.map((Key) => ({ Key })), Quiet: true } }),
        );
        const failed = res.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0];
          throw new AppError(
            'E_INTERNAL',
            `storage: could not delete ${failed.length} objects under ${JSON.stringify(prefix)}, e.g. ${first.Key}: ${first.Code} ${first.Message}`,
          );
        }
        deleted += page.length;
      }
      return deleted;
    });
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    return this.#ops.run('list', prefix, () => collectKeys(prefix, this.#keys(prefix)));
  }

  close(): Promise<void> {
    return this.#ops.close(() => this.#client.destroy());
  }

  /** Validates `key` and puts the storage prefix before it. */
  #objectKey(key: string): string {
    validateKey(key);
    const full = this.#prefix + key;
    if (full.length > MAX_KEY_LENGTH) {
      throw new AppError(
        'E_VALIDATION',
        `storage: key ${JSON.stringify(key)} is too long with the storage prefix (${full.length} > ${MAX_KEY_LENGTH})`,
      );
    }
    return full;
  }

  async #open(key: string, objectKey: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    let res: GetObjectCommandOutput;
    try {
      res = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range }));
    } catch (err) {
      if (MISSING.has(errorName(err))) return undefined;
      if (errorName(err) === 'InvalidRange') {
        throw new AppError('E_VALIDATION', `storage: range start ${range?.start} is not within ${key}`, { cause: err });
      }
      throw err;
    }
    const body = res.Body;
    if (!(body instanceof Readable)) throw new AppError('E_INTERNAL', `storage: GetObject ${key} gave no readable body`);
    const info = toInfo(res.ContentLength ?? 0, res.ContentType, res.CacheControl);
    if (!range) return { ...info, body };
    // A service that ignored Range would send the whole object where the caller expects a slice: refuse it.
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange ?? '');
    if (!m) {
      body.destroy();
      throw new AppError('E_INTERNAL', `storage: GetObject ${key} with Range answered without a valid Content-Range (${res.ContentRange})`);
    }
    return { ...info, size: Number(m[3]), body, range: { start: Number(m[1]), end: Number(m[2]) } };
  }

  /** Keys under `prefix`, one page (at most pageSize keys) at a time, without the storage prefix. */
  async *#pages(prefix: string): AsyncGenerator<string[]> {
    const pages = paginateListObjectsV2(
      { client: this.#client, pageSize: this.#pageSize },
      { Bucket: this.bucket, Prefix: this.#prefix + prefix },
    );
    for await (const page of pages) {
      yield (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
    }
  }

  async *#keys(prefix: string): AsyncGenerator<string> {
    for await (const page of this.#pages(prefix)) {
      for (const key of page) yield key.slice(this.#prefix.length);
    }
  }
}

function toInfo(size: number, contentType: string | undefined, cacheControl: string | undefined): ObjectInfo {
  return { size, contentType: contentType ?? DEFAULT_CONTENT_TYPE, ...(cacheControl ? { cacheControl } : {}) };
}

function normalisePrefix(prefix: string | undefined): string {
  if (!prefix) return '';
  validatePrefix(prefix);
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

function checkWhole(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new AppError('E_VALIDATION', `storage: ${name} must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** Passes `body` through, counting its bytes into `counter` (lib-storage does not report the total). */
async function* countBytes(body: Readable, counter: { bytes: number }): AsyncGenerator<Buffer> {
  for await (const chunk of body as AsyncIterable<Buffer | Uint8Array | string>) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    counter.bytes += buf.length;
    yield buf;
  }
}
