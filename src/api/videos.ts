import type { FastifyInstance, FastifyReply } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { AppError } from '../core/index.js';
import type { Catalog, VideoRecord, VideoStatus, VideoType, Visibility, WatchBeacon } from '../catalog/index.js';
import type { ObjectStore } from '../storage/index.js';
import { videoPrefix } from '../vod/index.js';
import { identifyOperator, isOperator, requireToken } from './auth.js';
import { addressKey, BeaconLimits, type BeaconVerdict } from './beacon-limits.js';
import { liveThumbnailPath } from './live-thumbnails.js';
import type { PlaybackAccess } from './playback.js';
import { videoRouteSchemas as schemas } from './videos.schemas.js';

/** What the video routes read and change in the catalog. */
export interface VideoCatalog {
  readonly videos: Pick<Catalog['videos'], 'list' | 'search' | 'get' | 'update' | 'delete' | 'recordView' | 'views'>;
}

export interface VideoRoutesDeps {
  readonly catalog: VideoCatalog;
  /** Where a deleted video's files are removed from. */
  readonly store: Pick<ObjectStore, 'deletePrefix'>;
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
  /** Bounds on watch beacons; absent: DEFAULT_BEACON_LIMITS. */
  readonly beaconLimits?: BeaconLimits;
}

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
    rebuffers: new Counter({
      name: 'livepack_vod_watch_rebuffers_total',
      help: 'Rebuffering events players reported (first beacon of each count increase)',
      registers: [registry],
    }),
    startup: new Histogram({
      name: 'livepack_vod_watch_startup_seconds',
      help: 'Time from load to first frame players reported',
      buckets: [0.25, 0.5, 1, 2, 4, 8],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'livepack_vod_watch_beacons_refused_total',
      help: 'Watch beacons refused with 429: "rate" (one address sent too fast), "sessions" (too many viewing sessions of a video)',
      labelNames: ['reason'] as const,
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

/** A watch beacon as players send it: the catalog's fields, and a private video's playback token. */
type BeaconBody = WatchBeacon & { readonly token?: string };

/** 429 with Retry-After, in the error shape. */
function tooManyBeacons(reply: FastifyReply, verdict: Extract<BeaconVerdict, { ok: false }>) {
  return reply
    .code(429)
    .header('retry-after', String(verdict.retryAfterSeconds))
    .send({ error: { code: 'E_LIMIT_EXCEEDED', message: verdict.reason } });
}

/**
 * A private video's beacons need what its playback needs: a token for the video, or for the stream of a
 * live run (the token its watch page plays with). Public and unlisted ones are open.
 */
function checkBeaconAccess(access: PlaybackAccess, v: VideoRecord, token: string | undefined): void {
  if (v.visibility !== 'private') return;
  if (token === undefined) throw new AppError('E_FORBIDDEN', 'this video is private: send its playback token in the beacon ("token")');
  const live = v.type === 'live' && v.streamId !== null;
  access.check(v.visibility, live ? { kind: 's', id: v.streamId! } : { kind: 'v', id: v.id }, token);
}

/**
 * The catalog and playback API: list, get, search, edit and delete videos (live runs, recordings,
 * uploads); playback tokens for private ones; watch beacons from players. Reads are open to viewers
 * (public content only), beacons too (a private video's with its playback token); everything else needs
 * the operator token.
 */
export function registerVideoRoutes(app: FastifyInstance, deps: VideoRoutesDeps): void {
  const { catalog, access, apiToken } = deps;
  // Operator routes check the token in onRequest: before the body is read, so a caller without it gets
  // 401 whatever it sends (not 400 or 413 about a body nobody should have parsed).
  const operator = requireToken(apiToken);
  const limits = deps.beaconLimits ?? new BeaconLimits();
  const base = deps.publicBaseUrl;
  const live = deps.hasLiveThumbnail;
  const metrics = watchMetrics(deps.registry);
  /** Rebuffer counts already counted per viewer (bounded: a beacon flood cannot grow it past this). */
  const seenRebuffers = new Map<string, number>();

  app.get<{ Querystring: { type?: VideoType; status?: VideoStatus; streamId?: string; limit: number; cursor?: string } }>(
    '/api/v1/videos',
    { schema: schemas.list },
    async (req) => {
      const operator = isOperator(req, apiToken);
      const page = await catalog.videos.list({ ...req.query, visibility: operator ? undefined : ['public'] });
      return { items: page.items.map((v) => videoJson(v, base, live)), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Querystring: { q: string; limit: number } }>('/api/v1/search', { schema: schemas.search }, async (req) => {
    const operator = isOperator(req, apiToken);
    const items = await catalog.videos.search({ q: req.query.q, limit: req.query.limit, visibility: operator ? undefined : ['public'] });
    return { items: items.map((v) => videoJson(v, base, live)) };
  });

  app.get<{ Params: { id: string } }>('/api/v1/videos/:id', { schema: schemas.get }, async (req) => {
    const v = await catalog.videos.get(req.params.id);
    // A private video is not there for a viewer (404, not 403: its existence is not told).
    if (!v || (v.visibility === 'private' && !isOperator(req, apiToken))) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
    return videoJson(v, base, live);
  });

  app.patch<{ Params: { id: string }; Body: { title?: string; description?: string; visibility?: Visibility } }>(
    '/api/v1/videos/:id',
    { onRequest: operator, schema: schemas.update },
    async (req) => {
      if (req.body.visibility !== undefined) {
        const current = await catalog.videos.get(req.params.id);
        // Live playback follows the stream's visibility; a run's own would say one thing and do another.
        if (current?.type === 'live')
          throw new AppError('E_CONFLICT', 'a live run takes its visibility from its stream: PATCH /api/v1/streams/<id> { "visibility" }');
      }
      const v = await catalog.videos.update(req.params.id, req.body);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      access.forgetVideo(v.id);
      return videoJson(v, base, live);
    },
  );

  app.delete<{ Params: { id: string } }>('/api/v1/videos/:id', { onRequest: operator, schema: schemas.delete }, async (req, reply) => {
    const { id } = req.params;
    if (deps.busyVideoIds().has(id))
      throw new AppError('E_CONFLICT', `video ${id} is a live run being recorded or finalized; stop or delete its stream first`);
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
  });

  app.post<{ Params: { id: string }; Body: { ttlSeconds?: number } | null }>(
    '/api/v1/videos/:id/playback-token',
    { onRequest: operator, schema: schemas.playbackToken },
    async (req, reply) => {
      const v = await catalog.videos.get(req.params.id);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      const ttl = req.body?.ttlSeconds ?? deps.tokenTtlSeconds;
      const expiresAt = access.tokens.now() + ttl * 1000;
      const live = v.type === 'live' && v.streamId !== null;
      const token = access.tokens.sign(live ? { kind: 's', id: v.streamId! } : { kind: 'v', id: v.id }, expiresAt);
      const hls = live ? `${base}/t/${token}/live/${v.streamId}/master.m3u8` : `${base}/t/${token}/vod/${v.id}/master.m3u8`;
      return reply.code(201).send({ token, expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(), playback: { hls } });
    },
  );

  // One row per viewing session (video, viewerId), updated by each of its beacons; the limits bound how
  // fast an address sends and how many sessions it (and everyone) may open on a video (beacon-limits.ts).
  app.post<{ Params: { id: string }; Body: BeaconBody }>(
    '/api/v1/videos/:id/watch',
    {
      bodyLimit: 4096,
      // Viewers send beacons without a token; a wrong operator token is refused before the body is read.
      onRequest: identifyOperator(apiToken),
      schema: schemas.watch,
    },
    async (req, reply) => {
      const address = addressKey(req.ip);
      const rate = limits.take(address);
      if (!rate.ok) {
        metrics.refused.inc({ reason: 'rate' });
        return tooManyBeacons(reply, rate);
      }
      const v = await access.video(req.params.id);
      if (!v) return reply.code(204).send();
      const { token, ...b } = req.body;
      if (!isOperator(req, apiToken)) checkBeaconAccess(access, v, token);
      const session = limits.admitSession(v.id, address, b.viewerId);
      if (!session.ok) {
        metrics.refused.inc({ reason: 'sessions' });
        return tooManyBeacons(reply, session);
      }
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
    { onRequest: operator, schema: schemas.views },
    async (req) => {
      const v = await catalog.videos.get(req.params.id);
      if (!v) throw new AppError('E_NOT_FOUND', `no video ${req.params.id}`);
      const views = await catalog.videos.views(v.id, req.query.limit);
      return { items: views.map((w) => ({ ...w, startedAt: w.startedAt.toISOString(), updatedAt: w.updatedAt.toISOString() })) };
    },
  );
}
