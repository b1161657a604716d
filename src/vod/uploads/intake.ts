/**
 * Uploads of video files, resumable over tus 1.0 (https://tus.io/protocols/resumable-upload). An upload
 * is created by `initiate` (the control API), never by a tus POST: initiate checks the title, size and
 * file name, creates the video (status 'uploading') and the tus upload under the video's id with the
 * declared length. The client then PATCHes bytes and HEADs for the offset to resume after an
 * interruption; tus itself refuses a write at the wrong offset or past the declared length. When the last
 * byte is in, a 'package-upload' job is enqueued for the VOD workers and the video goes to 'queued', both
 * in one statement: a video never says 'queued' without a job to package it.
 *
 * The bytes go to files under `<dataDir>/uploads` (@tus/file-store), or to the S3 bucket under `uploads/`
 * when S3 is configured (@tus/s3-store: a multipart upload, so an upload of any size never sits on this
 * server's disk, and any server can package it).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat, statfs } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, extname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import { S3Store } from '@tus/s3-store';
import { Server as TusServer, Upload, type DataStore } from '@tus/server';
import { AppError, newId, type Logger, type StorageSettings } from '../../core/index.js';
import { VISIBILITIES, type Catalog, type JobRecord, type VideoRecord, type VideoStatus, type Visibility } from '../../catalog/index.js';
import { MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH } from '../assets.js';

/** The job kind the VOD workers run for an upload. */
export const PACKAGE_UPLOAD = 'package-upload';

/** Containers FFmpeg reads that phones, cameras, screen recorders and editors write. */
export const MEDIA_EXTENSIONS = [
  'mp4',
  'm4v',
  'mov',
  'qt',
  'mkv',
  'webm',
  'flv',
  'ts',
  'mts',
  'm2ts',
  'avi',
  'mpg',
  'mpeg',
  'wmv',
  'asf',
  '3gp',
  '3g2',
  'ogv',
  'mxf',
] as const;

export const MAX_FILENAME_LENGTH = 255;

/** Where a finished upload's bytes are (a job's payload says it, so any server can find them). */
export type UploadSource =
  { readonly kind: 'file'; readonly path: string } | { readonly kind: 's3'; readonly bucket: string; readonly key: string };

export interface PackageUploadPayload {
  readonly source: UploadSource;
  readonly filename: string;
  readonly size: number;
}

/** A finished upload as a local file for FFmpeg; release() removes it if it was a temporary copy. */
export interface LocalUpload {
  readonly path: string;
  release(): Promise<void>;
}

export interface UploadsOptions {
  readonly catalog: Catalog;
  readonly logger: Logger;
  /** DATA_DIR: files go to `<dataDir>/uploads`; S3 uploads are copied to `<dataDir>/tmp` to be packaged. */
  readonly dataDir: string;
  /** When set, uploads go to this bucket (the storage section's S3 settings). */
  readonly s3?: StorageSettings['s3'];
  /** Largest declared size accepted, bytes. */
  readonly maxBytes: number;
  /** The packaging job's tries (VOD_JOB_ATTEMPTS). */
  readonly jobAttempts: number;
  /** URL path tus requests arrive at: an upload is `<basePath>/<videoId>`. Default /api/v1/uploads. */
  readonly basePath?: string;
  /** Told when a job was enqueued, so a worker in this process starts at once instead of at its next poll. */
  readonly onQueued?: () => void;
}

export interface InitiateUpload {
  readonly title: string;
  readonly size: number;
  readonly filename: string;
  readonly description?: string;
  readonly visibility?: Visibility;
}

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** S3 keys of uploads sit under this prefix, apart from the media under videos/. */
const S3_PREFIX = 'uploads/';

/** A tus error: @tus/server answers with this status and body. */
/**
 * The error shape @tus/server answers with (it reads `status_code` and `body` off what a hook throws): a
 * plain object, not an Error, so eslint's only-throw-error is told about it (eslint.config.js).
 */
interface TusError {
  readonly status_code: number;
  readonly body: string;
}
const tusError = (status_code: number, body: string): TusError => ({ status_code, body: `${body}\n` });

/** Below this much free space where uploads are kept, a failed write is taken for a full disk. */
const FULL_BELOW_BYTES = 1 << 20;
const NO_SPACE = 'the server has no storage space left for uploads; try again later';

/** No room where uploads are kept: 503 with Retry-After, so that the client comes back rather than gives up. */
class NoUploadSpaceError extends AppError {
  readonly retryAfterSeconds = 30;
  constructor(cause: unknown) {
    super('E_UNAVAILABLE', NO_SPACE, { cause });
    this.name = 'NoUploadSpaceError';
  }
}

const isNoSpace = (err: unknown) => ['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException | null)?.code ?? '');

/**
 * Checks what initiate is given; E_VALIDATION, E_LIMIT_EXCEEDED (size over the limit) or
 * E_UNSUPPORTED_CODEC (not a video file name), each saying what is allowed.
 */
export function checkInitiate(input: InitiateUpload, maxBytes: number): InitiateUpload {
  const bad = (msg: string) => new AppError('E_VALIDATION', msg);
  const { title, size, filename, description, visibility } = input;
  if (typeof title !== 'string' || title.trim() === '' || title.length > MAX_TITLE_LENGTH)
    throw bad(`title must be 1 to ${MAX_TITLE_LENGTH} characters`);
  if (description !== undefined && (typeof description !== 'string' || description.length > MAX_DESCRIPTION_LENGTH)) {
    throw bad(`description must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
  }
  if (visibility !== undefined && !VISIBILITIES.includes(visibility)) throw bad(`visibility must be one of ${VISIBILITIES.join(', ')}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1)
    throw bad('size must be the file size in bytes, a whole number >= 1');
  if (size > maxBytes)
    throw new AppError('E_LIMIT_EXCEEDED', `size ${size} is over the upload limit of ${maxBytes} bytes (UPLOAD_MAX_BYTES)`);
  if (typeof filename !== 'string' || filename.trim() === '' || filename.length > MAX_FILENAME_LENGTH) {
    throw bad(`filename must be 1 to ${MAX_FILENAME_LENGTH} characters`);
  }
  const ext = extname(filename).slice(1).toLowerCase();
  if (!(MEDIA_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new AppError('E_UNSUPPORTED_CODEC', `filename must name a video file; accepted extensions: ${MEDIA_EXTENSIONS.join(', ')}`);
  }
  // Only its last component is kept: a client's path says nothing we need and may say too much.
  return { title, size, filename: basename(filename.replaceAll('\\', '/')), description, visibility };
}

export class Uploads {
  readonly basePath: string;
  readonly #o: UploadsOptions;
  readonly #log: Logger;
  readonly #dir: string;
  readonly #datastore: DataStore;
  readonly #tus: TusServer;

  constructor(opts: UploadsOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ module: 'uploads' });
    this.basePath = opts.basePath ?? '/api/v1/uploads';
    this.#dir = join(opts.dataDir, 'uploads');
    this.#datastore = opts.s3
      ? new S3Store({
          partSize: 8 * 1024 * 1024,
          s3ClientConfig: {
            bucket: opts.s3.bucket,
            region: opts.s3.region,
            forcePathStyle: opts.s3.forcePathStyle,
            // As in storage/s3.ts: S3-compatible services often reject the SDK's default CRC32 trailers.
            ...(opts.s3.endpoint
              ? { endpoint: opts.s3.endpoint, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }
              : {}),
          },
        })
      : new FileStore({ directory: this.#dir });
    // Uploads are created by initiate only, never deleted by clients: advertise none of tus' extensions.
    this.#datastore.extensions = [];
    this.#tus = new TusServer({
      path: this.basePath,
      datastore: this.#datastore,
      maxSize: opts.maxBytes,
      getFileIdFromRequest: (_req, last) => (last && UPLOAD_ID.test(last) ? this.#tusId(last) : undefined),
      onIncomingRequest: async (_req, id) => this.#checkUploading(this.#videoIdOf(id)),
      onUploadFinish: async (_req, upload) => {
        await this.#finished(this.#videoIdOf(upload.id), upload);
        return {};
      },
      onResponseError: async (_req, err) => {
        // @tus/file-store answers any failed write with its own 500 and drops the cause (ENOSPC): whether
        // the disk is full is asked of the disk. 507 Insufficient Storage; the bytes that were written stay,
        // so the client resumes from HEAD's offset once there is room.
        if (!this.#o.s3 && (isNoSpace(err) || ('status_code' in err && err.status_code === 500)) && (await this.#diskFull())) {
          this.#log.warn('upload write failed: no space left where uploads are kept');
          return tusError(507, `${NO_SPACE} (resume from the offset HEAD gives)`);
        }
        if ('status_code' in err) return undefined; // tus' own answer (409 offset, 413 size...)
        this.#log.error({ err }, 'upload request failed');
        return tusError(500, 'upload failed on the server');
      },
    });
  }

  /** Makes the folders; call once before serving. */
  async start(): Promise<void> {
    if (!this.#o.s3) await mkdir(this.#dir, { recursive: true });
  }

  /** Whether the folder uploads are written to is (about) full. */
  async #diskFull(): Promise<boolean> {
    const st = await statfs(this.#dir).catch(() => undefined);
    return st !== undefined && st.bavail * st.bsize < FULL_BELOW_BYTES;
  }

  /** Creates the video and its upload; the client then sends the bytes to `<basePath>/<video.id>`. */
  async initiate(input: InitiateUpload): Promise<VideoRecord> {
    const v = checkInitiate(input, this.#o.maxBytes);
    const video = await this.#o.catalog.videos.create({
      id: newId(),
      type: 'vod',
      source: 'upload',
      status: 'uploading',
      title: v.title,
      description: v.description,
      visibility: v.visibility,
      upload: { filename: v.filename, size: v.size },
    });
    try {
      const upload = new Upload({
        id: this.#tusId(video.id),
        size: v.size,
        offset: 0,
        creation_date: new Date().toISOString(),
        metadata: { filename: v.filename },
      });
      await this.#datastore.create(upload);
    } catch (err) {
      await this.#o.catalog.videos.delete(video.id).catch(() => {});
      if (isNoSpace(err)) {
        this.#log.warn({ video: video.id }, 'upload refused: no space left where uploads are kept');
        throw new NoUploadSpaceError(err);
      }
      throw new AppError('E_INTERNAL', `could not create the upload: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.#log.info({ video: video.id, size: v.size, filename: v.filename }, 'upload initiated');
    return video;
  }

  /** Serves one tus request (HEAD, PATCH, OPTIONS) whose path is `<basePath>/<videoId>`. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    return this.#tus.handle(req, res);
  }

  /** Where a video's finished upload is. */
  sourceOf(videoId: string): UploadSource {
    const id = this.#tusId(videoId);
    return this.#o.s3 ? { kind: 's3', bucket: this.#o.s3.bucket, key: id } : { kind: 'file', path: join(this.#dir, id) };
  }

  /** The upload as a local file; an S3 upload is copied to `<dataDir>/tmp` first. */
  async open(source: UploadSource, signal?: AbortSignal): Promise<LocalUpload> {
    if (source.kind === 'file') {
      await stat(source.path).catch((err: unknown) => {
        throw new AppError('E_NOT_FOUND', `the uploaded file ${source.path} is gone`, { cause: err });
      });
      return { path: source.path, release: async () => {} };
    }
    if (!(this.#datastore instanceof S3Store) || source.bucket !== this.#o.s3?.bucket) {
      throw new AppError('E_CONFIG_INVALID', `the upload is in S3 bucket ${source.bucket}, which this server is not configured for`);
    }
    const tmp = join(this.#o.dataDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const path = join(tmp, `upload-${newId()}`);
    const release = () => rm(path, { force: true });
    try {
      await pipeline(await this.#datastore.read(source.key), createWriteStream(path), { signal });
    } catch (err) {
      await release();
      throw err;
    }
    return { path, release };
  }

  /**
   * Enqueues the packaging job of a video whose upload is complete and, in the same statement, moves the
   * video from one of `from` to 'queued'. Idempotent: the job's id is derived from the video's, and an
   * existing job is left as it is. Used when the last byte arrives, and by the VOD worker's start-up sweep
   * for a video left waiting without a job.
   */
  async queuePackaging(video: Pick<VideoRecord, 'id' | 'upload'>, size: number, from: readonly VideoStatus[]): Promise<JobRecord> {
    const payload: PackageUploadPayload = { source: this.sourceOf(video.id), filename: video.upload?.filename ?? '', size };
    const job = await this.#o.catalog.jobs.enqueue(
      { id: `package-${video.id}`, kind: PACKAGE_UPLOAD, videoId: video.id, payload: { ...payload }, maxAttempts: this.#o.jobAttempts },
      { video: { from, to: 'queued' } },
    );
    this.#o.onQueued?.();
    return job;
  }

  /** Deletes a video's upload (packaged, failed for good, or its video deleted). Missing is not an error. */
  async remove(videoId: string): Promise<void> {
    try {
      await this.#datastore.remove(this.#tusId(videoId));
    } catch (err) {
      this.#log.debug({ err, video: videoId }, 'upload already gone');
    }
  }

  #tusId(videoId: string): string {
    return this.#o.s3 ? `${S3_PREFIX}${videoId}` : videoId;
  }

  #videoIdOf(tusId: string): string {
    return tusId.startsWith(S3_PREFIX) ? tusId.slice(S3_PREFIX.length) : tusId;
  }

  /** Bytes are taken only for a video that exists and is still uploading (a finished PATCH may be retried). */
  async #checkUploading(videoId: string): Promise<void> {
    const video = await this.#o.catalog.videos.get(videoId);
    if (!video) {
      // Its video was deleted while the upload was under way: the bytes have no owner any more.
      await this.remove(videoId);
      throw tusError(404, 'no such upload');
    }
    if (video.source !== 'upload') throw tusError(404, 'no such upload');
    if (video.status !== 'uploading' && video.status !== 'queued') throw tusError(410, `the upload is complete (video ${video.status})`);
  }

  /**
   * The last byte is in: the packaging job is enqueued and the video queued, in one statement. If that
   * fails, the client gets an error and the video stays 'uploading'; the client retries the final PATCH
   * and gets it done, without a second job (the job's id is derived from the video's).
   */
  async #finished(videoId: string, upload: Upload): Promise<void> {
    const video = await this.#o.catalog.videos.get(videoId);
    if (!video) throw tusError(404, 'no such upload');
    const size = upload.size ?? upload.offset;
    await this.queuePackaging(video, size, ['uploading']);
    this.#log.info({ video: videoId, size }, 'upload complete; packaging queued');
  }
}
