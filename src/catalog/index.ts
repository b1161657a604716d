import { join } from 'node:path';
import type { Logger } from '../core/index.js';
import { openPglite, openPostgres } from './db.js';
import type { Db } from './db.js';
import { migrate } from './migrations.js';
import * as sessions from './sessions.js';
import * as streams from './streams.js';
import { VideoStore } from './videos.js';
import { JobQueue } from './jobs.js';
import type { NewStream, Page, PublishSessionRecord, StreamPatch, StreamRecord } from './types.js';

export type { LadderRung, NewStream, Page, PublishSessionRecord, StreamPatch, StreamProfile, StreamRecord, Visibility } from './types.js';
export { MAX_PAGE_SIZE, VISIBILITIES, effectiveLadder } from './types.js';
export { VideoStore, VIDEO_STATUSES } from './videos.js';
export { SessionJournal } from './session-journal.js';
export type { SessionWriter } from './session-journal.js';
export { JobQueue, JOB_STATES } from './jobs.js';
export type { JobQueueOptions, JobRecord, JobState, NewJob } from './jobs.js';
export type {
  NewVideo,
  RenditionInfo,
  VideoListOptions,
  VideoPatch,
  VideoRecord,
  VideoSegmentRecord,
  VideoSource,
  VideoStatus,
  VideoType,
  ViewRecord,
  WatchBeacon,
} from './videos.js';

/**
 * The catalog of streams and their publish sessions. Errors are AppErrors: E_CONFLICT for a duplicate
 * (key hash, session id) or a session of an unknown stream, E_VALIDATION for bad input (cursor, limit,
 * name length, profile, ladder as validateLadder says), E_CLOSED after close(), E_INTERNAL otherwise; the driver error is the `cause`.
 */
export interface Catalog {
  readonly kind: 'pglite' | 'postgres';
  /** Videos (live runs, recordings, uploads), their recorded segments and viewing history. */
  readonly videos: VideoStore;
  /** Durable background jobs (packaging of uploads), claimed with renewable leases. */
  readonly jobs: JobQueue;
  /** A given ladder is validated and stored highest rung first. */
  createStream(input: NewStream): Promise<StreamRecord>;
  getStream(id: string): Promise<StreamRecord | undefined>;
  findStreamByKeyHash(keyHash: string): Promise<StreamRecord | undefined>;
  /** Ordered by createdAt, id; `cursor` is the opaque nextCursor of the previous page; limit in 1..1000. */
  listStreams(opts: { limit: number; cursor?: string }): Promise<Page<StreamRecord>>;
  countStreams(): Promise<number>;
  /** An empty patch returns the stream unchanged; `ladder: null` goes back to the default ladder. */
  updateStream(id: string, patch: StreamPatch): Promise<StreamRecord | undefined>;
  rotateStreamKey(id: string, keyHash: string): Promise<StreamRecord | undefined>;
  /** Also deletes its sessions. */
  deleteStream(id: string): Promise<boolean>;
  startSession(s: { id: string; streamId: string; protocol: string; remoteAddress: string; startedAt: Date }): Promise<void>;
  /** Ends an open session; ending an unknown or already ended one is a no-op (logged at debug). */
  endSession(id: string, end: { endedAt: Date; reason: string; bytes: number; frames: number }): Promise<void>;
  /** Newest first; limit in 1..1000. */
  listSessions(streamId: string, limit: number): Promise<PublishSessionRecord[]>;
  /** Waits for queries in flight, then releases the database. Idempotent. */
  close(): Promise<void>;
}

export interface CatalogOptions {
  /** When set, PostgreSQL through a `pg` Pool; otherwise embedded PGlite. */
  databaseUrl?: string;
  /** DATA_DIR; PGlite keeps its files in `<dataDir>/catalog`. */
  dataDir: string;
  logger: Logger;
  /** PostgreSQL only: a schema to create if missing and use (tests isolate themselves with a random one). */
  schema?: string;
}

class SqlCatalog implements Catalog {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly videos: VideoStore;
  readonly jobs: JobQueue;

  constructor(db: Db, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
    this.videos = new VideoStore(db);
    this.jobs = new JobQueue(db);
  }

  get kind(): 'pglite' | 'postgres' {
    return this.#db.kind;
  }

  createStream(input: NewStream): Promise<StreamRecord> {
    return streams.createStream(this.#db, input);
  }

  getStream(id: string): Promise<StreamRecord | undefined> {
    return streams.getStream(this.#db, id);
  }

  findStreamByKeyHash(keyHash: string): Promise<StreamRecord | undefined> {
    return streams.findStreamByKeyHash(this.#db, keyHash);
  }

  listStreams(opts: { limit: number; cursor?: string }): Promise<Page<StreamRecord>> {
    return streams.listStreams(this.#db, opts);
  }

  countStreams(): Promise<number> {
    return streams.countStreams(this.#db);
  }

  updateStream(id: string, patch: StreamPatch): Promise<StreamRecord | undefined> {
    return streams.updateStream(this.#db, id, patch);
  }

  rotateStreamKey(id: string, keyHash: string): Promise<StreamRecord | undefined> {
    return streams.rotateStreamKey(this.#db, id, keyHash);
  }

  deleteStream(id: string): Promise<boolean> {
    return streams.deleteStream(this.#db, id);
  }

  startSession(s: { id: string; streamId: string; protocol: string; remoteAddress: string; startedAt: Date }): Promise<void> {
    return sessions.startSession(this.#db, s);
  }

  async endSession(id: string, end: { endedAt: Date; reason: string; bytes: number; frames: number }): Promise<void> {
    const ended = await sessions.endSession(this.#db, id, end);
    if (!ended) this.#logger.debug({ session: id }, 'catalog: endSession found no open session');
  }

  listSessions(streamId: string, limit: number): Promise<PublishSessionRecord[]> {
    return sessions.listSessions(this.#db, streamId, limit);
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

/** Opens PostgreSQL when `databaseUrl` is set, else PGlite; resolves once migrations have run. */
export async function openCatalog(opts: CatalogOptions): Promise<Catalog> {
  const logger = opts.logger.child({ module: 'catalog' });
  const db = opts.databaseUrl
    ? await openPostgres({ url: opts.databaseUrl, logger, schema: opts.schema })
    : await openPglite(join(opts.dataDir, 'catalog'), logger);
  try {
    await migrate(db, logger);
  } catch (err) {
    await db.close();
    throw err;
  }
  return new SqlCatalog(db, logger);
}
