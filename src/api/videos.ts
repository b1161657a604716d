import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { AppError } from '../core/index.js';
import { MAX_PAGE_SIZE, VIDEO_STATUSES, VISIBILITIES } from '../catalog/index.js';
import type { Catalog, VideoRecord, VideoStatus, VideoType, Visibility, WatchBeacon } from '../catalog/index.js';
import type { ObjectStore } from '../storage/index.js';
import { MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH, videoPrefix } from '../vod/index.js';
import { MAX_TOKEN_TTL_SECONDS } from './playback-tokens.js';
import { isOperator, requireOperator } from './auth.js';
import { liveThumbnailPath } from './live-thumbnails.js';
import type { PlaybackAccess } from './playback.js';
import { errorSchema, ID_PATTERN, idParams } from './schemas.js';

export interface VideoRoutesDeps {
  readonly catalog: Catalog;
  readonly store: ObjectStore;
  readonly access: PlaybackAccess;
  readonly apiToken: string;
  readonly publicBaseUrl: string;
  readonly tokenTtlSeconds: number;
  readonly registry: Registry;
  /** Video ids of runs being recorded or finalized here: they cannot be deleted until that is over. */
  readonly busyVideoIds: () => ReadonlySet<string>;
  /** After a video's row is gone: drop what else it holds (an upload's source file). */
  readonly onDelete?: (videoId: string) => Promise<void> | void;
  /** Whether a live stream has a thumbnail to serve now (vod/LiveThumbnails); absent: live runs have none. */
  readonly hasLiveThumbnail?: (streamId: string) => boolean;
}

const videoSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['live', 'vod'] },
    source: { type: 'string', enum: ['recording', 'upload'] },
    streamId: { type: ['string', 'null'] },
    title: { type: 'string' },
    description: { type: 'string' },
    visibility: { type: 'string', enum: [...VISIBILITIES] },
    status: { type: 'string', enum: [...VIDEO_STATUSES] },
    progress: { type: 'number', description: 'Percent of the packaging done (uploads)' },
    duration: { type: ['number', 'null'], description: 'Seconds' },
    renditions: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          width: { type: 'integer' },
          height: { type: 'integer' },
          frameRate: { type: 'number' },
          bandwidth: { type: 'integer' },
          averageBandwidth: { type: 'integer' },
          codecs: { type: 'string' },
        },
      },
    },
    thumbnailUrl: {
      type: ['string', 'null'],
      description:
        'VOD: the poster. Live run: the current thumbnail (/live/<streamId>/thumbnail.jpg, refreshed about every 10 s; null until the first is cut). Null for private videos (fetch those under /t/<token>/...).',
    },
    error: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    endedAt: { type: ['string', 'null'], format: 'date-time' },
    playback: {
      type: 'object',
      properties: { hls: { type: ['string', 'null'], description: 'Multivariant playlist; null until the video is playable' } },
    },
  },
} as const;

const listSchema = {
  type: 'object',
  properties: { items: { type: 'array', items: videoSchema }, nextCursor: { type: ['string', 'null'] } },
} as const;

/** The poster of a VOD, or the current thumbnail of a live run; a private one is fetched with a token like the rest. */
function thumbnailUrl(v: VideoRecord, base: string, hasLiveThumbnail: ((streamId: string) => boolean) | undefined): string | null {
  if (v.visibility === 'private') return null;
  if (v.type === 'vod') return v.thumbnail ? `${base}/vod/${v.id}/poster.jpg` : null;
  return v.status === 'live' && v.streamId !== null && hasLiveThumbnail?.(v.streamId) ? base + liveThumbnailPath(v.streamId) : null;
}

/** The video as the API shows it, with absolute playback and poster URLs. */
export function videoJson(v: VideoRecord, base: string, hasLiveThumbnail?: (streamId: string) => boolean) {
  const playable = v.type === 'vod' ? v.status === 'ready' : v.status === 'live' && v.streamId !== null;
  const hls = !playable ? null : v.type === 'vod' ? `${base}/vod/${v.id}/master.m3u8` : `${base}/live/${v.streamId}/master.m3u8`;
  return {
    id: v.id,
    type: v.type,
    source: v.source,
    streamId: v.streamId,
    title: v.title,
    description: v.description,
    visibility: v.visibility,
    status: v.status,
    progress: v.progress,
    duration: v.duration,
    renditions: v.renditions,
    thumbnailUrl: thumbnailUrl(v, base, hasLiveThumbnail),
    error: v.error,
    createdAt: v.createdAt.toISOString(),
    updatedAt: v.updatedAt.toISOString(),
    endedAt: v.endedAt?.toISOString() ?? null,
    playback: { hls },
  };
}

/** Quality beacons from players, summed over every video (per-video detail is in the catalog). */
function watchMetrics(registry: Registry) {
  return {
    beacons: new Counter({ name: 'livepack_vod_watch_beacons_total', help: 'Watch beacons received from players', registers: [registry] }),
    rebuffers: new Counter({ name: 'livepack_vod_watch_rebuffers_total', help: 'Rebuffering events players reported (first beacon of each count increase)', registers: [registry] }),
    startup: new Histogram({
      name: 'livepack_vod_watch_startup_seconds',
      help: 'Time from load to first frame players reported',
      buckets: [0.25, 0.5, 1, 2, 4, 8],
      registers: [registry],
    }),
    bitrate: new Histogram({
      name: 'livepack_vod_watch_bitrate_kbps',
      help: 'Bitrate of the rendition players were on when they sent a beacon',
      buckets: [300, 800, 1500, 3000, 6000, 12000],
      registers: [registry],
    }),
  };
}

/**
 * The catalog and playback API: list, get, search, edit and delete videos (live runs, recordings,
 * uploads); playback tokens for private ones; watch beacons from players. Reads and beacons are open to
 * viewers (public content only); everything else needs the operator token.
 */
export function registerVideoRoutes(app: FastifyInstance, deps: VideoRoutesDeps): void {
  const { catalog, access, apiToken } = deps;
  const base = deps.publicBaseUrl;
  const live = deps.hasLiveThumbnail;
  const metrics = watchMetrics(deps.registry);
  /** Rebuffer counts already counted per viewer (bounded: a beacon flood cannot grow it past this). */
  const seenRebuffers = new Map<string, number>();

  app.get<{ Querystring: { type?: VideoType; status?: VideoStatus; streamId?: string; limit: number; cursor?: string } }>(
    '/api/v1/videos',
    {
      schema: {
        summary: 'List videos, newest first: live runs and VOD assets. Without the operator token, public ones only.',
        tags: ['videos'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            type: { type: 'string', enum: ['live', 'vod'] },
            status: { type: 'string', enum: [...VIDEO_STATUSES] },
            streamId: { type: 'string', pattern: ID_PATTERN },
            limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 },
            cursor: { type: 'string', maxLength: 512 },
          },
        },
        response: { 200: listSchema, 400: errorSchema },
      },
    },
    async (req) => {
      const operator = isOperator(req, apiToken);
      const page = await catalog.videos.list({ ...req.query, visibility: operator ? undefined : ['public'] });
      return { items: page.items.map((v) => videoJson(v, base, live)), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Querystring: { q: string; limit: number } }>(
    '/api/v1/search',
    {
      schema: {
        summary: 'Full-text search over titles and descriptions (web search syntax: "phrase", -word, or). Best match first.',
        tags: ['videos'],
        querystring: {
          type: 'object',
          required: ['q'],
          additionalProperties: false,
          properties: { q: { type: 'string', minLength: 1, maxLength: 200 }, limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
        },
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: videoSchema } } }, 400: errorSchema },
      },
    },
    async (req) => {
      const operator = isOperator(req, apiToken);
      const items = await catalog.videos.search({ q: req.query.q, limit: req.query.limit, visibility: operator ? undefined : ['public'] });
      return { items: items.map((v) => videoJson(v, base, live)) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/videos/:id',
    {
      schema: {
        summary: 'One video: metadata, status, progress, duration, renditions, poster and playback URLs. Private ones need the operator token.',
        tags: ['videos'],
        params: idParams,
        response: { 200: videoSchema, 404: errorSchema },
      },
    },
    async (req) => {
      const v = await catalog.videos.get(req.params.id);
      // A private video is not there for a viewer (404, not 403: its existence is not told).
      if (!v || (v.visibility === 'private' && !isOperator(req, apiToken))) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      return videoJson(v, base, live);
    },
  );

  app.patch<{ Params: { id: string }; Body: { title?: string; description?: string; visibility?: Visibility } }>(
    '/api/v1/videos/:id',
    {
      schema: {
        summary: 'Change title, description or visibility',
        tags: ['videos'],
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            title: { type: 'string', minLength: 1, maxLength: MAX_TITLE_LENGTH },
            description: { type: 'string', maxLength: MAX_DESCRIPTION_LENGTH },
            visibility: { type: 'string', enum: [...VISIBILITIES] },
          },
        },
        response: { 200: videoSchema, 404: errorSchema },
      },
    },
    async (req) => {
      requireOperator(req, apiToken);
      if (req.body.visibility !== undefined) {
        const current = await catalog.videos.get(req.params.id);
        // Live playback follows the stream's visibility; a run's own would say one thing and do another.
        if (current?.type === 'live') throw new AppError('E_CONFLICT', 'a live run takes its visibility from its stream: PATCH /api/v1/streams/<id> { "visibility" }');
      }
      const v = await catalog.videos.update(req.params.id, req.body);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      access.forgetVideo(v.id);
      return videoJson(v, base, live);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/videos/:id',
    {
      schema: {
        summary: 'Delete a video and its files in storage. A run being recorded cannot be deleted until its stream ends.',
        tags: ['videos'],
        params: idParams,
        response: { 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      requireOperator(req, apiToken);
      const { id } = req.params;
      if (deps.busyVideoIds().has(id)) throw new AppError('E_CONFLICT', `video ${id} is a live run being recorded or finalized; stop or delete its stream first`);
      const v = await catalog.videos.get(id);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${id}`);
      // The row first: from then on nothing serves the files; then the files. A failure between the two
      // leaves objects nobody lists, never a listed video without its files.
      await catalog.videos.delete(id);
      access.forgetVideo(id);
      const removed = await deps.store.deletePrefix(videoPrefix(id));
      await deps.onDelete?.(id);
      req.log.info({ video: id, objects: removed }, 'video deleted');
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: { ttlSeconds?: number } | null }>(
    '/api/v1/videos/:id/playback-token',
    {
      schema: {
        summary: 'A signed playback token for one video (or the live stream of a live run); put it in the path: /t/<token>/...',
        tags: ['videos'],
        params: idParams,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { ttlSeconds: { type: 'integer', minimum: 10, maximum: MAX_TOKEN_TTL_SECONDS } },
        },
        response: {
          201: {
            type: 'object',
            properties: {
              token: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
              playback: { type: 'object', properties: { hls: { type: 'string' } } },
            },
          },
          404: errorSchema,
        },
      },
    },
    async (req, reply) => {
      requireOperator(req, apiToken);
      const v = await catalog.videos.get(req.params.id);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      const ttl = req.body?.ttlSeconds ?? deps.tokenTtlSeconds;
      const expiresAt = Date.now() + ttl * 1000;
      const live = v.type === 'live' && v.streamId !== null;
      const token = access.tokens.sign(live ? { kind: 's', id: v.streamId! } : { kind: 'v', id: v.id }, expiresAt);
      const hls = live ? `${base}/t/${token}/live/${v.streamId}/master.m3u8` : `${base}/t/${token}/vod/${v.id}/master.m3u8`;
      return reply.code(201).send({ token, expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(), playback: { hls } });
    },
  );

  app.post<{ Params: { id: string }; Body: WatchBeacon }>(
    '/api/v1/videos/:id/watch',
    {
      bodyLimit: 4096,
      schema: {
        summary: "A player's progress and quality beacon (no token needed): position, startup time, rebuffers, bitrate. An unknown id is ignored (204), so beacons tell nothing about which ids exist.",
        tags: ['videos'],
        params: idParams,
        body: {
          type: 'object',
          required: ['viewerId', 'position'],
          additionalProperties: false,
          properties: {
            viewerId: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$', description: 'Random id of one viewing session' },
            position: { type: 'number', minimum: 0, maximum: 1e7, description: 'Seconds into the video' },
            startupMs: { type: 'integer', minimum: 0, maximum: 600_000 },
            rebuffers: { type: 'integer', minimum: 0, maximum: 1_000_000 },
            rebufferMs: { type: 'integer', minimum: 0, maximum: 1e9 },
            bitrateKbps: { type: 'integer', minimum: 0, maximum: 1_000_000 },
          },
        },
      },
    },
    async (req, reply) => {
      const v = await access.video(req.params.id);
      if (!v) return reply.code(204).send();
      const b = req.body;
      await catalog.videos.recordView(v.id, b);
      metrics.beacons.inc();
      const key = `${v.id}/${b.viewerId}`;
      const before = seenRebuffers.get(key);
      if (before === undefined && b.startupMs !== undefined) metrics.startup.observe(b.startupMs / 1000);
      if (b.rebuffers !== undefined && b.rebuffers > (before ?? 0)) metrics.rebuffers.inc(b.rebuffers - (before ?? 0));
      seenRebuffers.delete(key);
      seenRebuffers.set(key, Math.max(before ?? 0, b.rebuffers ?? 0));
      if (seenRebuffers.size > 10_000) seenRebuffers.delete(seenRebuffers.keys().next().value!);
      if (b.bitrateKbps !== undefined) metrics.bitrate.observe(b.bitrateKbps);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit: number } }>(
    '/api/v1/videos/:id/views',
    {
      schema: {
        summary: 'Viewing history of a video: one entry per viewing session, most recent first',
        tags: ['videos'],
        params: idParams,
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 100 } } },
        response: { 404: errorSchema },
      },
    },
    async (req) => {
      requireOperator(req, apiToken);
      const v = await catalog.videos.get(req.params.id);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      const views = await catalog.videos.views(v.id, req.query.limit);
      return { items: views.map((w) => ({ ...w, startedAt: w.startedAt.toISOString(), updatedAt: w.updatedAt.toISOString() })) };
    },
  );
}
