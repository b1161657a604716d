/**
 * How the composition root builds each component from its configuration section: one function per
 * component, so that startServer (main.ts) reads as the order they are built in.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { pino } from 'pino';
import type { Catalog } from './catalog/index.js';
import { LocalFirstPackages, RemotePackages, storedSeeds, StreamOwnership, WindowMirror } from './cluster/index.js';
import type { Config } from './config/index.js';
import type { Coordination, LiveWindowStore } from './coord/index.js';
import { AppError, DEFAULT_LADDER, FailureLimiter, hashSecret, type Clock } from './core/index.js';
import { RtmpServer } from './ingest/rtmp/index.js';
import type { Lifecycle } from './lifecycle.js';
import { DEFAULT_WEBRTC_LIMITS, WebRtcIngest } from './ingest/webrtc/index.js';
import { DEFAULT_GOVERNOR, LiveTranscoder } from './livetranscode/index.js';
import { LiveOrigin, type LivePackager, type OriginResponse } from './packager/index.js';
import type { ObjectStore } from './storage/index.js';
import { StreamHub } from './stream/index.js';
import { keyframesFromPackager, LiveThumbnails, Uploads, VodWorker } from './vod/index.js';

export type Authorize = (streamKey: string) => Promise<{ streamId: string }>;

/** Publishers of either protocol are let in by stream key. */
export function byStreamKey(catalog: Catalog): Authorize {
  return async (streamKey) => {
    // Keys are looked up by their SHA-256: the database compares hashes, never the key itself.
    const s = await catalog.findStreamByKeyHash(hashSecret(streamKey));
    if (!s) throw new AppError('E_STREAM_KEY_INVALID', 'unknown stream key');
    return { streamId: s.id };
  };
}

export function newRtmpServer(config: Config, hub: StreamHub, authorize: Authorize, log: pino.Logger): RtmpServer {
  const tls = config.rtmp.tls;
  return new RtmpServer({
    host: config.rtmp.host,
    port: config.rtmp.port,
    tls: tls ? { port: tls.port, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : undefined,
    limits: config.rtmp.limits,
    hub,
    authLimiter: new FailureLimiter({ max: config.auth.failureLimit, windowMs: config.auth.failureWindowMs }),
    logger: log.child({ module: 'rtmp' }),
    async authorize(app, streamKey) {
      if (app !== 'live') throw new AppError('E_STREAM_KEY_INVALID', `unknown application "${app}" (publish to /live/<streamKey>)`);
      return authorize(streamKey);
    },
  });
}

/** WHIP publishers: the same key lookup as RTMP, into the same hub; Opus becomes AAC through FFmpeg. */
export function newWebRtcIngest(
  config: Config,
  hub: StreamHub,
  authorize: Authorize,
  ffmpegPath: string | undefined,
  log: pino.Logger,
): WebRtcIngest | undefined {
  const wc = config.webrtc;
  if (!wc.enabled) return undefined;
  return new WebRtcIngest({
    network: {
      bindAddress: wc.bindAddress,
      portMin: wc.portMin,
      portMax: wc.portMax,
      publicAddress: wc.publicAddress,
      iceServers: wc.iceServers,
    },
    limits: {
      ...DEFAULT_WEBRTC_LIMITS,
      maxSessions: wc.maxSessions,
      offersPerStreamPerMinute: wc.offersPerKeyPerMinute,
      jitterBufferMs: wc.jitterBufferMs,
      maxBitrateKbps: wc.maxBitrateKbps,
      // The segmenter cuts at the first keyframe at or after the segment target: asking for one when the
      // target has passed since the last one makes it arrive a frame or two after (segments of ~2.05 s).
      keyframeIntervalMs: config.hls.segmentTargetMs,
    },
    hub,
    ffmpegPath,
    logger: log.child({ module: 'webrtc' }),
    authorize,
    authFailures: new FailureLimiter({ max: config.auth.failureLimit, windowMs: config.auth.failureWindowMs }),
  });
}

export function newTranscoder(
  config: Config,
  hubs: { hub: StreamHub; rungHub: StreamHub },
  catalog: Catalog,
  ffmpegPath: string | undefined,
  log: pino.Logger,
): LiveTranscoder {
  const tc = config.transcode;
  return new LiveTranscoder({
    ...hubs,
    logger: log.child({ module: 'transcode' }),
    ffmpegPath,
    x264Preset: tc.x264Preset,
    vaapiDevice: tc.vaapiDevice,
    readyTimeoutMs: tc.readyTimeoutMs,
    maxStreams: tc.maxStreams,
    governor: { ...DEFAULT_GOVERNOR, minSpeed: tc.minSpeed, slowForMs: tc.slowForMs, restoreAfterMs: tc.restoreAfterMs },
    async resolveLadder(streamId) {
      const s = await catalog.getStream(streamId);
      return s?.profile === 'abr' ? (s.ladder ?? DEFAULT_LADDER) : undefined;
    },
  });
}

/**
 * The hub of live streams, and the one of transcoded rungs: nothing that lists or records streams sees
 * those as streams. Their grace period covers an FFmpeg restart with backoff.
 */
export function newHubs(config: Config, log: pino.Logger, clock?: Clock): { hub: StreamHub; rungHub: StreamHub } {
  return {
    hub: new StreamHub({ ...config.stream, clock, logger: log.child({ module: 'hub' }) }),
    rungHub: new StreamHub({
      ...config.stream,
      clock,
      graceMs: Math.max(config.stream.graceMs, 30_000),
      logger: log.child({ module: 'rungs' }),
    }),
  };
}

/** What the HTTP app takes from the configuration. */
export function httpSettings(config: Config, log: pino.Logger) {
  return {
    publicBaseUrl: config.server.publicBaseUrl,
    publicRtmpUrl: config.server.publicRtmpUrl,
    playbackTokenTtlSeconds: config.vod.playbackTokenTtlSeconds,
    logger: log.child({ module: 'http' }),
    http: config.http,
    auth: config.auth,
    metricsToken: config.http.metricsToken,
  };
}

/** Uploads over tus; `onQueued` tells the worker of this process that a job waits. */
export function newUploads(config: Config, catalog: Catalog, onQueued: () => void, log: pino.Logger): Uploads {
  const { dataDir, uploadMaxBytes, jobAttempts } = config.vod;
  return new Uploads({
    catalog,
    logger: log,
    dataDir,
    s3: config.storage.s3,
    maxBytes: uploadMaxBytes,
    jobAttempts,
    onQueued,
  });
}

/** Packages uploads; none without FFmpeg (uploads are then only queued here). */
export function newVodWorker(
  config: Config,
  catalog: Catalog,
  store: ObjectStore,
  uploads: Uploads,
  ffmpegPath: string | undefined,
  log: pino.Logger,
): VodWorker | undefined {
  if (!ffmpegPath) {
    log.warn('no FFmpeg: uploads are queued but not packaged on this server');
    return undefined;
  }
  return new VodWorker({
    catalog,
    store,
    uploads,
    ffmpegPath,
    x264Preset: config.transcode.x264Preset,
    workers: config.vod.workers,
    leaseMs: config.vod.jobLeaseMs,
    // Only this process writes to the embedded catalog, and it nudges the worker for what it enqueues:
    // a poll there is for nothing but a lost nudge, and costs ~4 ms of CPU in PGlite each time.
    pollMs: catalog.kind === 'pglite' ? 30_000 : 2000,
    logger: log,
  });
}

/** Live thumbnails: one small FFmpeg run per live stream every LIVE_THUMBNAIL_INTERVAL_MS (0: none). */
export function newLiveThumbnails(
  config: Config,
  hub: StreamHub,
  packager: LivePackager,
  ffmpegPath: string | undefined,
  log: pino.Logger,
): LiveThumbnails | undefined {
  const intervalMs = config.vod.liveThumbnailIntervalMs;
  if (!ffmpegPath || intervalMs === 0) return undefined;
  return new LiveThumbnails({
    streams: hub,
    keyframes: keyframesFromPackager(packager),
    ffmpegPath,
    intervalMs,
    logger: log.child({ module: 'thumbnails' }),
  });
}

/**
 * /live on a node without the ingest role: nothing is packaged here, so every stream answers as one that
 * is not live (as LiveOrigin does for a stream it does not have).
 */
export const NOT_LIVE_HERE = {
  handle: async (): Promise<OriginResponse> => ({
    status: 404,
    headers: { 'access-control-allow-origin': '*', 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
    body: 'stream is not live\n',
  }),
};

/** Whether the catalog answers, for /healthz: a lookup by primary key of an id no stream has (cheap at any size). */
export function catalogProbe(catalog: Pick<Catalog, 'getStream'>): { ping(): Promise<boolean> } {
  return {
    ping: () =>
      catalog.getStream('healthz-probe').then(
        () => true,
        () => false,
      ),
  };
}

/** Where other nodes reach this one's HTTP server (diagnostics in the node registry; never handed to viewers). */
export function nodeHttpUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/** How long a stream's lease lives without a renewal: a node that died gives its streams up after this. */
export const STREAM_LEASE_MS = 10_000;

/**
 * With Redis, on an ingest node: each stream published here is owned by lease (a newer publisher on another
 * node takes it over), and its live window is written to the shared store under that lease's epoch for the
 * other origins. Must run before the packager starts; both close after the packager, in this order.
 * Returns whether this node owns a stream now (the live origin serves a stream it lost from the store).
 */
export function shareWindows(
  config: Config,
  cluster: { coord: Coordination; window: LiveWindowStore },
  hub: StreamHub,
  packager: LivePackager,
  nodeId: string,
  log: pino.Logger,
  life: Lifecycle,
): (streamId: string) => boolean {
  const ownership = new StreamOwnership({
    coord: cluster.coord,
    hub,
    nodeId,
    leaseMs: STREAM_LEASE_MS,
    logger: log.child({ module: 'cluster' }),
  });
  ownership.start();
  life.push('stream-leases', () => ownership.close());
  // What is written outlives what lists it: the window, and an idle playlist during the grace or retention.
  const ttlMs = (config.hls.windowSeconds + 30) * 1000 + Math.max(config.stream.graceMs, config.hls.endedRetentionMs);
  const mirror = new WindowMirror({
    store: cluster.window,
    logger: log.child({ module: 'cluster' }),
    epochOf: (id) => ownership.epochOf(id),
    ttlMs,
  });
  packager.watch(mirror);
  // A publisher back here within the grace, whose run began on another node, continues that run's window.
  packager.seedFrom(
    storedSeeds({ store: cluster.window, logger: log.child({ module: 'cluster' }), leased: (id) => ownership.whenLeased(id) }),
  );
  life.push('window-mirror', () => mirror.close());
  return (id) => ownership.owns(id);
}

/**
 * The live origin of a node with the origin role: its own packager's streams from memory, and with Redis
 * every other node's from the shared store.
 */
export function liveOrigin(
  config: Config,
  packager: LivePackager | undefined,
  window: LiveWindowStore | undefined,
  owns: ((streamId: string) => boolean) | undefined,
  log: pino.Logger,
  life: Lifecycle,
): LiveOrigin | undefined {
  const opts = { holdMs: config.hls.holdMs, startupWaitMs: Math.max(config.hls.holdMs, 3 * config.hls.segmentTargetMs) };
  if (!window) return packager ? new LiveOrigin(packager, opts) : undefined;
  const remote = new RemotePackages({
    store: window,
    logger: log.child({ module: 'cluster' }),
    maxHeldRequests: config.hls.maxHeldRequests,
  });
  life.push('remote-windows', () => remote.close());
  return new LiveOrigin(packager ? new LocalFirstPackages(packager, remote, owns) : remote, opts);
}
