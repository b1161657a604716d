import { AppError, newId } from '../core/index.js';
import type { Queryable } from './db.js';
import { checkLimit, toDate, toNumber } from './types.js';
import type { Page, Visibility } from './types.js';

export const VIDEO_STATUSES = ['live', 'uploading', 'queued', 'processing', 'ready', 'failed'] as const;
export type VideoStatus = (typeof VIDEO_STATUSES)[number];
export type VideoType = 'live' | 'vod';
export type VideoSource = 'recording' | 'upload';

/** One rendition of a VOD asset, as its multivariant playlist lists it. */
export interface RenditionInfo {
  name: string;
  codecs: string;
  /** Peak bits per second over one segment. */
  bandwidth: number;
  averageBandwidth?: number;
  width?: number;
  height?: number;
  frameRate?: number;
  /** Recordings: segments listed as EXT-X-GAP (not stored in time, or the rendition restarting). */
  gaps?: number;
}

export interface VideoRecord {
  id: string;
  type: VideoType;
  source: VideoSource;
  /** The stream a recording or live run belongs to (null for uploads, or once the stream was deleted). */
  streamId: string | null;
  /** The live run (the packager's run id) a recording was made from. */
  runId: string | null;
  title: string;
  description: string;
  visibility: Visibility;
  status: VideoStatus;
  /** A live run whose segments go to storage (the stream's `record` option when it started). */
  recording: boolean;
  /** 0-100 while an upload is packaged. */
  progress: number;
  /** Seconds, once known. */
  duration: number | null;
  renditions: RenditionInfo[];
  /** A poster JPEG is in storage. */
  thumbnail: boolean;
  /** Why the video failed (status 'failed'). */
  error: string | null;
  upload: { filename: string; size: number; contentType?: string } | null;
  /** The origin recording a live run (its node id), and when it last said so. */
  nodeId: string | null;
  heartbeatAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  endedAt: Date | null;
}

export interface NewVideo {
  id?: string;
  type: VideoType;
  source: VideoSource;
  streamId?: string | null;
  runId?: string | null;
  title: string;
  description?: string;
  visibility?: Visibility;
  status: VideoStatus;
  recording?: boolean;
  upload?: VideoRecord['upload'];
  nodeId?: string | null;
}

/** Fields to change; undefined leaves a field as it is. */
export interface VideoPatch {
  type?: VideoType;
  title?: string;
  description?: string;
  visibility?: Visibility;
  status?: VideoStatus;
  progress?: number;
  duration?: number | null;
  renditions?: RenditionInfo[];
  thumbnail?: boolean;
  error?: string | null;
  endedAt?: Date | null;
}

/** One recorded segment: its object is `<rendition>/<uri>` under the video's storage prefix. */
export interface VideoSegmentRecord {
  rendition: string;
  msn: number;
  uri: string;
  initUri: string;
  /** Seconds. */
  duration: number;
  discontinuity: boolean;
  /** No media: the rendition was restarting (EXT-X-GAP); no object. */
  gap: boolean;
  bytes: number;
  programDateTime: Date | null;
  /** Starts with a keyframe (false where a segment had to be cut without one); default true. */
  independent?: boolean;
}

/** A viewer's progress and quality beacon. */
export interface WatchBeacon {
  viewerId: string;
  position: number;
  startupMs?: number;
  rebuffers?: number;
  rebufferMs?: number;
  bitrateKbps?: number;
}

export interface ViewRecord extends Required<Omit<WatchBeacon, 'startupMs' | 'bitrateKbps'>> {
  videoId: string;
  startupMs: number | null;
  bitrateKbps: number | null;
  beacons: number;
  startedAt: Date;
  updatedAt: Date;
}

export interface VideoListOptions {
  limit: number;
  cursor?: string;
  type?: VideoType;
  status?: VideoStatus;
  streamId?: string;
  /** Only these visibilities (the public listing passes ['public']). */
  visibility?: readonly Visibility[];
}

interface VideoRow {
  id: string;
  type: VideoType;
  source: VideoSource;
  stream_id: string | null;
  run_id: string | null;
  title: string;
  description: string;
  visibility: Visibility;
  status: VideoStatus;
  recording: boolean;
  progress: number | string;
  duration: number | string | null;
  renditions: RenditionInfo[] | string;
  thumbnail: boolean;
  error: string | null;
  upload: VideoRecord['upload'] | string | null;
  node_id: string | null;
  heartbeat_at: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
  ended_at: Date | string | null;
}

const COLUMNS =
  'id, type, source, stream_id, run_id, title, description, visibility, status, recording, progress, duration, renditions, thumbnail, error, upload, node_id, heartbeat_at, created_at, updated_at, ended_at';

const json = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

function toVideo(r: VideoRow): VideoRecord {
  return {
    id: r.id,
    type: r.type,
    source: r.source,
    streamId: r.stream_id,
    runId: r.run_id,
    title: r.title,
    description: r.description,
    visibility: r.visibility,
    status: r.status,
    recording: r.recording,
    progress: toNumber(r.progress),
    duration: r.duration === null ? null : toNumber(r.duration),
    renditions: json(r.renditions),
    thumbnail: r.thumbnail,
    error: r.error,
    upload: r.upload === null ? null : json(r.upload),
    nodeId: r.node_id,
    heartbeatAt: r.heartbeat_at === null ? null : toDate(r.heartbeat_at),
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
    endedAt: r.ended_at === null ? null : toDate(r.ended_at),
  };
}

/** Newest first: the cursor is the (created_at, id) of a page's last row, base64url JSON. */
function encodeCursor(v: VideoRecord): string {
  return Buffer.from(JSON.stringify({ t: v.createdAt.getTime(), id: v.id }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { t: Date; id: string } {
  const bad = () => new AppError('E_VALIDATION', 'invalid cursor');
  if (cursor.length === 0 || cursor.length > 512 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const { t, id } = (v ?? {}) as { t?: unknown; id?: unknown };
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || typeof id !== 'string' || id.length === 0) throw bad();
  return { t: new Date(t), id };
}

/** Videos, their recorded segments and their viewing history. */
/** The types of a video_segments row's values, in the column order addSegments writes them. */
const SEGMENT_CASTS = [
  'text',
  'text',
  'integer',
  'text',
  'text',
  'double precision',
  'boolean',
  'boolean',
  'integer',
  'timestamptz',
  'boolean',
];

/** A heartbeat older than this is stale: a date, or `{ msAgo }` before the catalog's clock (now()). */
export type StaleBefore = Date | { readonly msAgo: number };

/** The SQL of a StaleBefore whose two parameters start at $n (a date, or null and the ms before now()). */
const STALE_SQL = (n: number) => `COALESCE($${n}::timestamptz, now() - $${n + 1}::double precision * interval '1 millisecond')`;
const staleParams = (s: StaleBefore): [Date | null, number] => (s instanceof Date ? [s, 0] : [null, s.msAgo]);

export class VideoStore {
  readonly #q: Queryable;

  constructor(q: Queryable) {
    this.#q = q;
  }

  async create(v: NewVideo): Promise<VideoRecord> {
    const now = new Date();
    const { rows } = await this.#q.query<VideoRow>(
      `INSERT INTO videos (id, type, source, stream_id, run_id, title, description, visibility, status, recording, upload, node_id, heartbeat_at, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, CASE WHEN $12::text IS NULL THEN NULL ELSE $13::timestamptz END, $13, $13) RETURNING ${COLUMNS}`,
      [
        v.id ?? newId(),
        v.type,
        v.source,
        v.streamId ?? null,
        v.runId ?? null,
        v.title,
        v.description ?? '',
        v.visibility ?? 'public',
        v.status,
        v.recording ?? false,
        v.upload ? JSON.stringify(v.upload) : null,
        v.nodeId ?? null,
        now,
      ],
    );
    return toVideo(rows[0]);
  }

  async get(id: string): Promise<VideoRecord | undefined> {
    const { rows } = await this.#q.query<VideoRow>(`SELECT ${COLUMNS} FROM videos WHERE id = $1`, [id]);
    return rows.length > 0 ? toVideo(rows[0]) : undefined;
  }

  /** Newest first, with optional filters; the cursor is the previous page's nextCursor. */
  async list(opts: VideoListOptions): Promise<Page<VideoRecord>> {
    checkLimit(opts.limit);
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: (n: string) => string, value: unknown) => {
      params.push(value);
      where.push(clause(`$${params.length}`));
    };
    if (opts.type) add((p) => `type = ${p}`, opts.type);
    if (opts.status) add((p) => `status = ${p}`, opts.status);
    if (opts.streamId) add((p) => `stream_id = ${p}`, opts.streamId);
    if (opts.visibility) add((p) => `visibility = ANY(${p}::text[])`, [...opts.visibility]);
    if (opts.cursor !== undefined) {
      const after = decodeCursor(opts.cursor);
      params.push(after.t, after.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(opts.limit + 1);
    const { rows } = await this.#q.query<VideoRow>(
      `SELECT ${COLUMNS} FROM videos ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    const items = rows.slice(0, opts.limit).map(toVideo);
    return { items, nextCursor: rows.length > opts.limit ? encodeCursor(items[items.length - 1]) : null };
  }

  /**
   * Full-text search over title (ranked higher) and description, in PostgreSQL's websearch syntax
   * ("quoted phrases", -excluded, or). Best match first; ties newest first.
   */
  async search(opts: { q: string; limit: number; visibility?: readonly Visibility[] }): Promise<VideoRecord[]> {
    checkLimit(opts.limit);
    const { rows } = await this.#q.query<VideoRow>(
      `SELECT ${COLUMNS} FROM videos, websearch_to_tsquery('english', $1) query
        WHERE search @@ query AND ($2::text[] IS NULL OR visibility = ANY($2::text[]))
        ORDER BY ts_rank(search, query) DESC, created_at DESC, id DESC LIMIT $3`,
      [opts.q, opts.visibility ? [...opts.visibility] : null, opts.limit],
    );
    return rows.map(toVideo);
  }

  /**
   * With `onlyNode`, the change is made only while the video is recorded by that origin (its node_id): a
   * run another origin adopted (adoptRun) is left to it. Undefined: no such video, or not that origin's.
   */
  async update(id: string, patch: VideoPatch, opts: { onlyNode?: string } = {}): Promise<VideoRecord | undefined> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const set = (column: string, value: unknown, cast = '') => {
      params.push(value);
      sets.push(`${column} = $${params.length}${cast}`);
    };
    if (patch.type !== undefined) set('type', patch.type);
    if (patch.title !== undefined) set('title', patch.title);
    if (patch.description !== undefined) set('description', patch.description);
    if (patch.visibility !== undefined) set('visibility', patch.visibility);
    if (patch.status !== undefined) set('status', patch.status);
    if (patch.progress !== undefined) set('progress', Math.max(0, Math.min(100, patch.progress)));
    if (patch.duration !== undefined) set('duration', patch.duration);
    if (patch.renditions !== undefined) set('renditions', JSON.stringify(patch.renditions), '::jsonb');
    if (patch.thumbnail !== undefined) set('thumbnail', patch.thumbnail);
    if (patch.error !== undefined) set('error', patch.error);
    if (patch.endedAt !== undefined) set('ended_at', patch.endedAt);
    if (sets.length === 0) return this.get(id);
    set('updated_at', new Date());
    let where = 'id = $1';
    if (opts.onlyNode !== undefined) {
      params.push(opts.onlyNode);
      where += ` AND node_id = $${params.length}`;
    }
    const { rows } = await this.#q.query<VideoRow>(`UPDATE videos SET ${sets.join(', ')} WHERE ${where} RETURNING ${COLUMNS}`, params);
    return rows.length > 0 ? toVideo(rows[0]) : undefined;
  }

  /**
   * Adds or replaces (by name) one rendition's description in one statement, so renditions described at
   * the same moment (a run's source and rungs) never overwrite each other.
   */
  async putRendition(id: string, info: RenditionInfo): Promise<void> {
    await this.#q.query(
      `UPDATE videos SET renditions = COALESCE(
           (SELECT jsonb_agg(r) FROM jsonb_array_elements(renditions) r WHERE r->>'name' <> $2), '[]'::jsonb
         ) || jsonb_build_array($3::jsonb), updated_at = $4
       WHERE id = $1`,
      [id, info.name, JSON.stringify(info), new Date()],
    );
  }

  /**
   * Its segments and views go with it; its storage objects are the caller's to delete. With `onlyNode`,
   * only while that origin records it (as update()).
   */
  async delete(id: string, opts: { onlyNode?: string } = {}): Promise<boolean> {
    const { rows } =
      opts.onlyNode === undefined
        ? await this.#q.query<{ id: string }>('DELETE FROM videos WHERE id = $1 RETURNING id', [id])
        : await this.#q.query<{ id: string }>('DELETE FROM videos WHERE id = $1 AND node_id = $2 RETURNING id', [id, opts.onlyNode]);
    return rows.length > 0;
  }

  /** Videos in one of these statuses. */
  async withStatus(statuses: readonly VideoStatus[]): Promise<VideoRecord[]> {
    const { rows } = await this.#q.query<VideoRow>(`SELECT ${COLUMNS} FROM videos WHERE status = ANY($1::text[]) ORDER BY created_at`, [
      [...statuses],
    ]);
    return rows.map(toVideo);
  }

  /**
   * Recorded live runs left open by an origin that is gone: live or being finalized, and either recorded
   * by `nodeId` (this origin, just started: whatever it had open died with its last process) or not
   * heartbeated since `staleBefore` (another origin that stopped without finishing them): a date, or ms before
   * the catalog's own clock (what nodes should use: heartbeats are the catalog's time too, so the hosts'
   * clocks, which may disagree, never compare with each other).
   */
  async abandonedRuns(nodeId: string, staleBefore: StaleBefore): Promise<VideoRecord[]> {
    const { rows } = await this.#q.query<VideoRow>(
      `SELECT ${COLUMNS} FROM videos
        WHERE source = 'recording' AND status IN ('live', 'processing')
          AND (node_id IS NULL OR node_id = $1 OR heartbeat_at IS NULL OR heartbeat_at < ${STALE_SQL(2)})
        ORDER BY created_at`,
      [nodeId, ...staleParams(staleBefore)],
    );
    return rows.map(toVideo);
  }

  /**
   * Takes an abandoned run (as abandonedRuns() lists it) for `nodeId` to finish, if it still is one: the
   * same test, made atomically with the change of owner, so a run another origin adopted meanwhile (its
   * node id changed, its heartbeat is fresh) is not taken. Undefined: it is no longer abandoned.
   */
  async claimAbandoned(id: string, nodeId: string, staleBefore: StaleBefore, at?: Date): Promise<VideoRecord | undefined> {
    const { rows } = await this.#q.query<VideoRow>(
      `UPDATE videos SET node_id = $2, heartbeat_at = COALESCE($5::timestamptz, now())
        WHERE id = $1 AND source = 'recording' AND status IN ('live', 'processing')
          AND (node_id IS NULL OR node_id = $2 OR heartbeat_at IS NULL OR heartbeat_at < ${STALE_SQL(3)})
        RETURNING ${COLUMNS}`,
      [id, nodeId, ...staleParams(staleBefore), at ?? null],
    );
    return rows.length > 0 ? toVideo(rows[0]) : undefined;
  }

  /**
   * A run continues on origin `nodeId` (a publisher handed over from another ingest node, the run id and
   * window kept): its open video, recorded elsewhere until now, becomes this origin's, in one statement.
   * Open is live, or being finalized by the origin it left (its end raced the handover; that origin's
   * finalize() then finds the video no longer its own and leaves it): it is live again. Undefined when the
   * run has no open video (a new run, or one already finalized): the caller creates one.
   */
  async adoptRun(runId: string, nodeId: string, at = new Date()): Promise<VideoRecord | undefined> {
    const { rows } = await this.#q.query<VideoRow>(
      `UPDATE videos SET node_id = $2, heartbeat_at = $3, type = 'live', status = 'live', ended_at = NULL, updated_at = $3
        WHERE run_id = $1 AND source = 'recording' AND status IN ('live', 'processing')
          AND id = (SELECT id FROM videos WHERE run_id = $1 AND source = 'recording' AND status IN ('live', 'processing')
                     ORDER BY created_at DESC, id DESC LIMIT 1)
        RETURNING ${COLUMNS}`,
      [runId, nodeId, at],
    );
    return rows.length > 0 ? toVideo(rows[0]) : undefined;
  }

  /**
   * This origin still records these runs (with `nodeId`: only those still its own), at `at` or, by default,
   * the catalog's clock (see abandonedRuns).
   */
  async heartbeat(ids: readonly string[], at?: Date, nodeId?: string): Promise<void> {
    if (ids.length === 0) return;
    const when = at ?? null;
    if (nodeId === undefined) {
      await this.#q.query('UPDATE videos SET heartbeat_at = COALESCE($2::timestamptz, now()) WHERE id = ANY($1::text[])', [[...ids], when]);
      return;
    }
    await this.#q.query('UPDATE videos SET heartbeat_at = COALESCE($2::timestamptz, now()) WHERE id = ANY($1::text[]) AND node_id = $3', [
      [...ids],
      when,
      nodeId,
    ]);
  }

  /** A stream's visibility changed: its live runs (listed now, VOD later) follow it. */
  async setLiveRunVisibility(streamId: string, visibility: Visibility): Promise<void> {
    await this.#q.query(`UPDATE videos SET visibility = $2, updated_at = $3 WHERE stream_id = $1 AND type = 'live'`, [
      streamId,
      visibility,
      new Date(),
    ]);
  }

  /** Journal one recorded segment (after its object is stored). Writing the same one again is a no-op. */
  async addSegment(videoId: string, s: VideoSegmentRecord): Promise<void> {
    await this.addSegments([{ videoId, segment: s }]);
  }

  /**
   * Journal several segments (of one or several videos) in one statement.
   *
   * Without `nodeId`, a segment already journaled is kept. With it, the rows are fenced by ownership: a row
   * for a video that is no longer this node's (another ingest node continued the run: recording-handover)
   * is dropped, and a row of a video that is this node's replaces one already there. That is the old
   * owner's: at a handover the node that lost the stream closes its segment in progress under the next
   * media sequence number, which the new owner's first segment (with the seam's discontinuity) also takes.
   */
  async addSegments(
    entries: ReadonlyArray<{ readonly videoId: string; readonly segment: VideoSegmentRecord }>,
    nodeId?: string,
  ): Promise<void> {
    if (entries.length === 0) return;
    // One row per key (the last): an upsert may not touch a row twice in one statement.
    const unique = [...new Map(entries.map((e) => [`${e.videoId}\n${e.segment.rendition}\n${e.segment.msn}`, e])).values()];
    const values: unknown[] = [];
    const rows = unique.map(({ videoId, segment: s }) => {
      const at = values.length;
      values.push(
        videoId,
        s.rendition,
        s.msn,
        s.uri,
        s.initUri,
        s.duration,
        s.discontinuity,
        s.gap,
        s.bytes,
        s.programDateTime,
        s.independent ?? true,
      );
      return `(${SEGMENT_CASTS.map((cast, i) => `$${at + i + 1}::${cast}`).join(', ')})`;
    });
    const columns = 'video_id, rendition, msn, uri, init_uri, duration, discontinuity, gap, bytes, program_date_time, independent';
    if (nodeId === undefined) {
      await this.#q.query(`INSERT INTO video_segments (${columns}) VALUES ${rows.join(', ')} ON CONFLICT DO NOTHING`, values);
      return;
    }
    values.push(nodeId);
    await this.#q.query(
      `INSERT INTO video_segments (${columns})
       SELECT v.* FROM (VALUES ${rows.join(', ')}) AS v (${columns})
        WHERE EXISTS (SELECT 1 FROM videos WHERE videos.id = v.video_id AND videos.node_id = $${values.length})
       ON CONFLICT (video_id, rendition, msn) DO UPDATE SET
         uri = EXCLUDED.uri, init_uri = EXCLUDED.init_uri, duration = EXCLUDED.duration, discontinuity = EXCLUDED.discontinuity,
         gap = EXCLUDED.gap, bytes = EXCLUDED.bytes, program_date_time = EXCLUDED.program_date_time, independent = EXCLUDED.independent`,
      values,
    );
  }

  /** Every recorded segment of a video, by rendition then media sequence number. */
  async segments(videoId: string): Promise<VideoSegmentRecord[]> {
    const { rows } = await this.#q.query<{
      rendition: string;
      msn: number;
      uri: string;
      init_uri: string;
      duration: number | string;
      discontinuity: boolean;
      gap: boolean;
      bytes: number | string;
      program_date_time: Date | string | null;
      independent: boolean;
    }>(
      `SELECT rendition, msn, uri, init_uri, duration, discontinuity, gap, bytes, program_date_time, independent
         FROM video_segments WHERE video_id = $1 ORDER BY rendition, msn`,
      [videoId],
    );
    return rows.map((r) => ({
      rendition: r.rendition,
      msn: r.msn,
      uri: r.uri,
      initUri: r.init_uri,
      duration: toNumber(r.duration),
      discontinuity: r.discontinuity,
      gap: r.gap,
      bytes: toNumber(r.bytes),
      programDateTime: r.program_date_time === null ? null : toDate(r.program_date_time),
      independent: r.independent,
    }));
  }

  /** One viewing session's latest beacon (upserted by video and viewer); counters only grow. */
  async recordView(videoId: string, b: WatchBeacon, at = new Date()): Promise<void> {
    await this.#q.query(
      `INSERT INTO video_views (video_id, viewer_id, position, startup_ms, rebuffers, rebuffer_ms, bitrate_kbps, beacons, started_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
       ON CONFLICT (video_id, viewer_id) DO UPDATE SET
         position = EXCLUDED.position,
         startup_ms = COALESCE(video_views.startup_ms, EXCLUDED.startup_ms),
         rebuffers = GREATEST(video_views.rebuffers, EXCLUDED.rebuffers),
         rebuffer_ms = GREATEST(video_views.rebuffer_ms, EXCLUDED.rebuffer_ms),
         bitrate_kbps = COALESCE(EXCLUDED.bitrate_kbps, video_views.bitrate_kbps),
         beacons = video_views.beacons + 1,
         updated_at = EXCLUDED.updated_at`,
      [videoId, b.viewerId, b.position, b.startupMs ?? null, b.rebuffers ?? 0, b.rebufferMs ?? 0, b.bitrateKbps ?? null, at],
    );
  }

  /** A video's viewing sessions, most recently active first. */
  async views(videoId: string, limit: number): Promise<ViewRecord[]> {
    checkLimit(limit);
    const { rows } = await this.#q.query<{
      video_id: string;
      viewer_id: string;
      position: number | string;
      startup_ms: number | null;
      rebuffers: number;
      rebuffer_ms: number;
      bitrate_kbps: number | null;
      beacons: number;
      started_at: Date | string;
      updated_at: Date | string;
    }>(`SELECT * FROM video_views WHERE video_id = $1 ORDER BY updated_at DESC LIMIT $2`, [videoId, limit]);
    return rows.map((r) => ({
      videoId: r.video_id,
      viewerId: r.viewer_id,
      position: toNumber(r.position),
      startupMs: r.startup_ms,
      rebuffers: r.rebuffers,
      rebufferMs: r.rebuffer_ms,
      bitrateKbps: r.bitrate_kbps,
      beacons: r.beacons,
      startedAt: toDate(r.started_at),
      updatedAt: toDate(r.updated_at),
    }));
  }
}
