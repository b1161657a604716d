import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { FailureLimiter } from '../core/index.js';
import type { Catalog } from '../catalog/index.js';
import type { WhipSessionStats } from '../ingest/webrtc/index.js';
import { registerWhipRoutes, type WhipRoutesOptions } from '../signaling/index.js';
import type { ObjectStore } from '../storage/index.js';
import { ApiAuthGuard, installAuthGuard, requireToken } from './auth.js';
import { clientErrorHandler, frameworkErrors, installErrorShape, installJsonParser, validatorSchemaController } from './http-errors.js';
import { applyHttpLimits, DEFAULT_HTTP_LIMITS, serverOptions, type HttpLimits } from './http-limits.js';
import { dependencyProber, registerHealthRoutes, type DependencyProbe } from './health.js';
import { registerLiveRoutes, type LiveOriginHandler } from './live.js';
import { registerLiveThumbnailRoutes, type LiveThumbnailSource } from './live-thumbnails.js';
import {
  buildMetrics,
  hideStreamIds,
  type AuthLimiterSource,
  type HubMetricsSource,
  type IngestCounters,
  type MetricSources,
  type PackagerMetricsSource,
  type RecorderMetrics,
  type TranscoderMetricsSource,
  type WebRtcMetricsSource,
} from './metrics.js';
import { registerPlayerRoutes } from './player.js';
import { installSecurityHeaders } from './security-headers.js';
import { registerStreamRoutes, type LiveStreamControl, type StreamCatalog, type TranscodeStatusSource } from './streams.js';
import { registerUploadRoutes, type UploadHandler } from './uploads.js';
import { PlaybackAccess, registerVodRoutes, type PlaybackCatalog } from './playback.js';
import { refuseEncodedTokens, type PlaybackTokens } from './playback-tokens.js';
import { registerVideoRoutes, type VideoCatalog } from './videos.js';

/*
 * What the app needs of each module, declared here and in the route files that use it (the consumer names
 * the narrow interface it needs): main.ts hands in the concrete parts, which fit these shapes as they are.
 */

/** The catalog as the routes use it; `kind` is reported by /healthz. */
export type AppCatalog = StreamCatalog &
  VideoCatalog &
  PlaybackCatalog & {
    readonly kind: Catalog['kind'];
    readonly videos: Pick<Catalog['videos'], 'setLiveRunVisibility'>;
  };

/** The stream hub: live status and publisher control for the stream routes, figures for /metrics and /healthz. */
export type AppHub = LiveStreamControl & HubMetricsSource;

/** The live transcoder: a stream's ladder status for the stream routes, figures for /metrics. */
export type AppTranscoder = TranscodeStatusSource & TranscoderMetricsSource & { ffmpegWorks?(): boolean };

/** The recorder: its counters for /metrics, and the runs it holds (their videos cannot be deleted meanwhile). */
export interface RecordingRuns {
  readonly counters: RecorderMetrics;
  activeRuns(): ReadonlyArray<{ readonly videoId: string }>;
}

/** Resumable uploads: their routes, and dropping an upload's source file when its video is deleted. */
export interface AppUploads extends UploadHandler {
  remove(videoId: string): Promise<void>;
}

/** Thumbnails of live streams: served from memory, listed on live runs, cached for half the interval. */
export interface AppLiveThumbnails extends LiveThumbnailSource {
  readonly intervalMs: number;
  has(streamId: string): boolean;
}

/** WHIP ingest: its figures for /metrics, a stream's sessions, and what signaling's WHIP routes take. */
export type AppWebRtc = WhipRoutesOptions['ingest'] &
  WebRtcMetricsSource & {
    streamSessions(streamId: string): WhipSessionStats[];
  };

export interface AppDeps {
  /**
   * NODE_ROLES: 'origin' mounts the API, /live, /vod and the player; 'ingest' (with WebRTC on) the WHIP
   * routes. /healthz, /readyz and /metrics are served whatever the roles.
   */
  readonly roles: readonly string[];
  /** Every role there is (for livepack_node_role). */
  readonly allRoles: readonly string[];
  /**
   * What /healthz and /readyz probe: the catalog, Redis when REDIS_URL is set (absent: in-process), and
   * media storage (absent: not reported).
   */
  readonly probes: { readonly catalog: DependencyProbe; readonly redis?: DependencyProbe; readonly storage?: DependencyProbe };
  readonly catalog: AppCatalog;
  /** The publishers on this node (none without the ingest role: the stream routes see nothing live here). */
  readonly hub: AppHub;
  /** Absent on a node without the ingest role. */
  readonly packager?: PackagerMetricsSource;
  /** Absent in tests that build the app without transcoding. */
  readonly transcoder?: AppTranscoder;
  readonly origin: LiveOriginHandler;
  readonly apiToken: string;
  readonly publicBaseUrl: string;
  readonly publicRtmpUrl: string;
  /** RTMP ingest's counters; absent on a node without the ingest role. */
  readonly ingestCounters?: () => IngestCounters;
  /** Where VOD assets are kept. */
  readonly store: Pick<ObjectStore, 'get' | 'head' | 'deletePrefix'>;
  /** Records live runs; absent in tests that build the app without one. */
  readonly recorder?: RecordingRuns;
  readonly playbackTokens: PlaybackTokens;
  /** Resumable uploads (tus); absent in tests that build the app without them. */
  readonly uploads?: AppUploads;
  /** The upload packaging worker's counters (absent without FFmpeg). */
  readonly vodWorker?: MetricSources['vodWorker'];
  /** False while the upload worker waits for FFmpeg to run again; absent without a worker. */
  readonly vodWorkerFfmpegWorks?: () => boolean;
  /** Default lifetime of a playback token, seconds. */
  readonly playbackTokenTtlSeconds: number;
  /** Thumbnails of live streams; absent without FFmpeg or with LIVE_THUMBNAIL_INTERVAL_MS=0. */
  readonly liveThumbnails?: AppLiveThumbnails;
  /** WHIP ingest; absent when WebRTC is turned off (and in tests that build the app without it). */
  readonly webrtc?: AppWebRtc;
  /** A pino logger for requests; none means no request logging. */
  readonly logger?: FastifyBaseLogger;
  /** HTTP_MAX_CONNECTIONS, HTTP_HEADERS_TIMEOUT_MS (see http-limits.ts); absent: the defaults. */
  readonly http?: HttpLimits;
  /** AUTH_FAILURE_LIMIT and AUTH_FAILURE_WINDOW_SECONDS for the API token; absent: 10 in 60 s. */
  readonly auth?: { readonly failureLimit: number; readonly failureWindowMs: number };
  /** METRICS_TOKEN: /metrics asks for it; absent: /metrics is open and hides ids of streams not public. */
  readonly metricsToken?: string;
  /** The other surfaces' failed-key limiters (WHIP, RTMP), reported in /metrics next to the API's. */
  readonly authLimiters?: () => readonly AuthLimiterSource[];
}

/** Fastify's trustProxy from TRUST_PROXY: absent, nobody's X-Forwarded-For is believed. */
function trustProxyOption(t: HttpLimits['trustProxy']): { trustProxy?: true | string[] } {
  if (t === undefined) return {};
  return { trustProxy: t === true ? true : [...t] };
}

/** The HTTP face of the server: control API, origin, player, health, metrics, OpenAPI docs. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits = deps.http ?? DEFAULT_HTTP_LIMITS;
  const apiAuth = apiAuthGuard(deps);
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    // An address refused for wrong tokens is logged once per window (apiAuthGuard), not per request.
    logController: new LogController({
      disableRequestLogging: (req: { ip?: string; socket?: { remoteAddress?: string } }) =>
        apiAuth.quiet(req.ip ?? req.socket?.remoteAddress),
    }),
    bodyLimit: 1024 * 1024,
    // Behind nginx every client has nginx's address unless its X-Forwarded-For is believed (TRUST_PROXY).
    ...trustProxyOption(deps.http?.trustProxy),
    // Blocking playlist requests are held for seconds; keep connections open between them.
    keepAliveTimeout: 65_000,
    // Headers and body timeouts, and why: http-limits.ts. A connection silent for connectionTimeout is closed.
    http: serverOptions(limits),
    requestTimeout: serverOptions(limits).requestTimeout,
    connectionTimeout: 120_000,
    // Querystrings and params are coerced from strings; bodies are not (http-errors.ts).
    schemaController: validatorSchemaController({ removeAdditional: false, useDefaults: true }),
    frameworkErrors,
    clientErrorHandler,
  });
  const httpCounters = applyHttpLimits(app.server, limits);
  installErrorShape(app);
  installJsonParser(app);
  // nosniff, Referrer-Policy, CSP and Permissions-Policy on every answer; before any route or plugin (hooks are encapsulated).
  installSecurityHeaders(app, { publicBaseUrl: deps.publicBaseUrl });
  // A playback token has one spelling: /t/<token>/ percent-encoded is refused (playback-tokens.ts).
  app.addHook('onRequest', refuseEncodedTokens);
  installAuthGuard(app, apiAuth);

  await app.register(swagger, {
    openapi: {
      info: { title: 'livepack API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const access = new PlaybackAccess(deps.catalog, deps.playbackTokens);
  // FFmpeg is a dependency of a node that transcodes or packages uploads: /healthz says whether the live
  // ladder's last start worked and whether the upload worker waits for it.
  const ffmpegChecks = [deps.transcoder?.ffmpegWorks?.bind(deps.transcoder), deps.vodWorkerFfmpegWorks].filter(
    (check): check is () => boolean => check !== undefined,
  );
  const ffmpeg = { ping: async () => ffmpegChecks.every((works) => works()) };
  const dependencies = dependencyProber(ffmpegChecks.length > 0 ? { ...deps.probes, ffmpeg } : deps.probes);
  const { packager, ingestCounters } = deps;
  const registry = buildMetrics({
    node: { roles: deps.roles, allRoles: deps.allRoles, dependencies },
    live: packager && ingestCounters && { hub: deps.hub, packager, ingest: ingestCounters },
    transcoder: deps.transcoder,
    recorder: deps.recorder?.counters,
    vodWorker: deps.vodWorker,
    webrtc: deps.webrtc,
    authLimiters: () => [{ surface: 'api', counters: apiAuth.limiter.counters }, ...(deps.authLimiters?.() ?? [])],
    http: httpCounters,
  });
  if (deps.roles.includes('origin')) await registerOriginRoutes(app, deps, access, registry);
  if (deps.webrtc) await registerWebRtcRoutes(app, deps.webrtc, deps.apiToken);

  registerMetricsRoute(app, registry, deps);
  const health = { roles: deps.roles, catalogKind: deps.catalog.kind, liveStreams: () => deps.hub.list().length, probes: deps.probes };
  registerHealthRoutes(app, health, dependencies);
  return app;
}

/** What a node with the origin role serves: the control and catalog API, uploads, /live, /vod, the player. */
async function registerOriginRoutes(app: FastifyInstance, deps: AppDeps, access: PlaybackAccess, registry: Registry): Promise<void> {
  // Control API: the stream routes need the operator token throughout.
  await app.register(async (api) => {
    api.addHook('onRequest', requireToken(deps.apiToken));
    registerStreamRoutes(api, {
      ...deps,
      // Live playback checks the stream at once; its live run's video (listing, and the VOD it becomes) follows.
      onVisibilityChange: async (id, visibility) => {
        access.forgetStream(id);
        await deps.catalog.videos.setLiveRunVisibility(id, visibility);
      },
    });
  });
  // Catalog and playback API: viewers read public videos and send beacons; the rest needs the operator token.
  registerVideoRoutes(app, {
    catalog: deps.catalog,
    store: deps.store,
    access,
    apiToken: deps.apiToken,
    publicBaseUrl: deps.publicBaseUrl,
    tokenTtlSeconds: deps.playbackTokenTtlSeconds,
    registry,
    busyVideoIds: () => new Set(deps.recorder?.activeRuns().map((r) => r.videoId)),
    onDelete: (id) => deps.uploads?.remove(id),
    hasLiveThumbnail: deps.liveThumbnails && ((id) => deps.liveThumbnails!.has(id)),
  });
  if (deps.uploads) registerUploadRoutes(app, { uploads: deps.uploads, apiToken: deps.apiToken, publicBaseUrl: deps.publicBaseUrl });

  registerLiveRoutes(app, deps.origin, (id, token) => access.checkLive(id, token));
  const thumbnails = deps.liveThumbnails;
  if (thumbnails) {
    // Cached for half the refresh interval: a viewer sees an image at most about one interval old.
    const maxAgeSeconds = Math.max(1, Math.floor(thumbnails.intervalMs / 2000));
    registerLiveThumbnailRoutes(app, { thumbnails, authorize: (id, token) => access.checkLive(id, token), maxAgeSeconds });
  }
  registerVodRoutes(app, { access, store: deps.store });
  registerPlayerRoutes(app, { publish: Boolean(deps.webrtc) });
}

/** WHIP (ingest) and the reception figures of a stream's WHIP sessions, for the operator. */
async function registerWebRtcRoutes(app: FastifyInstance, webrtc: AppWebRtc, apiToken: string): Promise<void> {
  await registerWhipRoutes(app, { ingest: webrtc });
  // WebRTC reception figures of a stream's WHIP sessions (loss, NACK/PLI, jitter), next to /live.
  await app.register(async (api) => {
    api.addHook('onRequest', requireToken(apiToken));
    api.get<{ Params: { id: string } }>(
      '/api/v1/streams/:id/webrtc',
      {
        schema: {
          summary: "The stream's WHIP sessions: packet loss, NACK/PLI/FIR counts, jitter, bitrate",
          tags: ['streams'],
          params: { type: 'object', properties: { id: { type: 'string' } } },
        },
      },
      async (req) => ({ sessions: webrtc.streamSessions(req.params.id) }),
    );
  });
}

/**
 * The API token's failed-attempt limiter (per source address), counted in /metrics under surface "api";
 * reaching the limit is logged once per window and address, not per attempt.
 */
function apiAuthGuard(deps: AppDeps): ApiAuthGuard {
  const { failureLimit, failureWindowMs } = deps.auth ?? { failureLimit: 10, failureWindowMs: 60_000 };
  const limiter = new FailureLimiter({ max: failureLimit, windowMs: failureWindowMs });
  return new ApiAuthGuard(limiter, (source, retryAfterSeconds) =>
    deps.logger?.warn(
      { surface: 'api', source, retryAfterSeconds },
      'too many wrong API tokens from one address: refusing it for the rest of the window',
    ),
  );
}

/** How long /metrics believes a stream's visibility (a scrape every few seconds must not query each time). */
const VISIBILITY_CACHE_MS = 5000;

/**
 * GET /metrics: behind METRICS_TOKEN when it is set. When it is not, /metrics is open, and every stream that
 * is not public (private, or unlisted: its id is what opens it) is labelled by a hash of its id instead.
 */
function registerMetricsRoute(app: FastifyInstance, registry: Registry, deps: AppDeps): void {
  const token = deps.metricsToken;
  const known = new Map<string, { open: boolean; until: number }>();
  const publicOf = async (ids: readonly string[]): Promise<ReadonlySet<string>> => {
    const open = new Set<string>();
    const now = performance.now();
    await Promise.all(
      ids.map(async (id) => {
        let hit = known.get(id);
        if (!hit || hit.until < now) {
          // A catalog that does not answer hides the id: nothing is shown that is not known to be public.
          const visibility = await deps.catalog.getStream(id).then(
            (s) => s?.visibility,
            () => undefined,
          );
          hit = { open: visibility === 'public', until: now + VISIBILITY_CACHE_MS };
          known.set(id, hit);
          if (known.size > 10_000) known.delete(known.keys().next().value!);
        }
        if (hit.open) open.add(id);
      }),
    );
    return open;
  };
  app.get(
    '/metrics',
    { schema: { hide: true }, logLevel: 'warn', ...(token && { onRequest: requireToken(token) }) },
    async (_req, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(token ? text : await hideStreamIds(text, publicOf));
    },
  );
}
