/**
 * Composition root: read config, build every module in order, wire them, and shut down in reverse.
 * The only place that builds concrete instances.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { buildApp } from './api/index.js';
import { openCatalog, type Catalog } from './catalog/index.js';
import { loadConfig, type Config } from './config/index.js';
import { AppError, DEFAULT_LADDER, hashSecret, isAppError, newStreamKey, type Logger } from './core/index.js';
import { RtmpServer } from './ingest/rtmp/index.js';
import { DEFAULT_WEBRTC_LIMITS, WebRtcIngest } from './ingest/webrtc/index.js';
import { DEFAULT_GOVERNOR, LiveTranscoder } from './livetranscode/index.js';
import { findFfmpeg } from './process/index.js';
import { LiveOrigin, LivePackager } from './packager/index.js';
import { StreamHub } from './stream/index.js';
import { createStorage } from './storage/index.js';
import { keyframesFromPackager, LiveThumbnails, Recorder, Uploads, VodWorker } from './vod/index.js';
import { PlaybackTokens } from './api/index.js';

/** Longest one shutdown step (RTMP, HTTP, catalog) may take before it is cut short. */
const SHUTDOWN_STEP_MS = 5000;

export interface RunningServer {
  /** 'running', the shutdown step in progress, or 'stopped'. */
  readonly shutdownStep: string;
  readonly httpPort: number;
  readonly rtmpPort: number;
  readonly rtmpsPort?: number;
  readonly apiToken: string;
  /** WHIP ingest (undefined with WEBRTC_ENABLED=false); tests reach its test-only hooks through it. */
  readonly webrtc?: WebRtcIngest;
  close(): Promise<void>;
}

/** The operator token: API_TOKEN, else the one kept in DATA_DIR, else a new one (printed once). */
function resolveApiToken(config: Config, log: Logger): string {
  if (config.server.apiToken) return config.server.apiToken;
  const file = join(config.server.dataDir, 'api-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  log.info({ file }, 'generated an operator API token (kept in DATA_DIR)');
  console.log(`\n  Operator API token (printed once, kept in ${file}):\n    ${token}\n`);
  return token;
}

/** This origin's id, kept in DATA_DIR: the live runs it records carry it in the catalog. */
function resolveNodeId(config: Config): string {
  const file = join(config.server.dataDir, 'node-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = randomBytes(9).toString('base64url');
  writeFileSync(file, id + '\n');
  return id;
}

/** The playback token key: PLAYBACK_TOKEN_SECRET, else the one kept in DATA_DIR, else a new one. */
function resolvePlaybackSecret(config: Config): string {
  if (config.vod.playbackTokenSecret) return config.vod.playbackTokenSecret;
  const file = join(config.server.dataDir, 'playback-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

async function createDefaultStream(catalog: Catalog, config: Config): Promise<void> {
  if (!config.server.createDefaultStream || (await catalog.countStreams()) > 0) return;
  const key = newStreamKey();
  const s = await catalog.createStream({ name: 'default', profile: 'abr', keyHash: hashSecret(key) });
  console.log(
    [
      '',
      '  A stream named "default" was created. Publish to it with OBS or FFmpeg:',
      `    RTMP URL:   ${config.server.publicRtmpUrl}`,
      `    Stream key: ${key}`,
      `    (one line:  ${config.server.publicRtmpUrl}/${key})`,
      `  Watch it at: ${config.server.publicBaseUrl}/watch/${s.id}`,
      '  The key is shown only now; rotate it with POST /api/v1/streams/<id>/rotate-key.',
      '',
    ].join('\n'),
  );
}

/**
 * FFmpeg for the ladder: FFMPEG_PATH (a wrong one is a configuration error), else PATH or the npm-bundled
 * one; none at all leaves ABR streams as passthrough (logged when one starts).
 */
function resolveFfmpeg(config: Config): string | undefined {
  if (config.transcode.ffmpegPath) return findFfmpeg({ FFMPEG_PATH: config.transcode.ffmpegPath });
  try {
    return findFfmpeg({ PATH: process.env.PATH });
  } catch {
    return undefined;
  }
}

/** pino as JSON lines, or pretty lines for a person at a terminal (LOG_FORMAT). */
function buildLogger(config: Config): pino.Logger {
  const { logFormat, logLevel } = config.server;
  const pretty = logFormat === 'pretty' || (logFormat === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return pino({ level: logLevel });
  return pino({ level: logLevel }, pinoPretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

export async function startServer(config: Config, logger?: pino.Logger): Promise<RunningServer> {
  const log = logger ?? buildLogger(config);
  const started = performance.now();
  mkdirSync(config.server.dataDir, { recursive: true });
  const apiToken = resolveApiToken(config, log);
  // Before anything is opened: a wrong FFMPEG_PATH is a configuration error.
  const ffmpegPath = resolveFfmpeg(config);

  const playbackTokens = new PlaybackTokens(resolvePlaybackSecret(config));
  const catalog = await openCatalog({ databaseUrl: config.catalog.databaseUrl, dataDir: config.catalog.dataDir, logger: log.child({ module: 'catalog' }) });
  let store;
  try {
    store = await createStorage(config.storage, log);
  } catch (err) {
    await catalog.close();
    throw err;
  }
  const recorder = new Recorder({ catalog, store, ffmpegPath, nodeId: resolveNodeId(config), logger: log.child({ module: 'recorder' }) });
  let vodWorker: VodWorker | undefined;
  const uploads = new Uploads({
    catalog,
    logger: log.child({ module: 'uploads' }),
    dataDir: config.vod.dataDir,
    s3: config.storage.s3,
    maxBytes: config.vod.uploadMaxBytes,
    jobAttempts: config.vod.jobAttempts,
    onQueued: () => vodWorker?.nudge(),
  });
  await uploads.start();
  if (ffmpegPath) {
    vodWorker = new VodWorker({
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
      logger: log.child({ module: 'vod-worker' }),
    });
  } else log.warn('no FFmpeg: uploads are queued but not packaged on this server');
  // Runs a crash left open are listed before any new run can start.
  const leftOpen = await recorder.recover();
  if (leftOpen > 0) log.info({ runs: leftOpen }, 'recording: finishing runs left open by an earlier stop');
  recorder.start();
  const hub = new StreamHub({ ...config.stream, logger: log.child({ module: 'hub' }) });
  // Transcoded rungs have a hub of their own: nothing that lists or records streams sees them as streams.
  // Their grace period covers an FFmpeg restart with backoff.
  const rungHub = new StreamHub({ ...config.stream, graceMs: Math.max(config.stream.graceMs, 30_000), logger: log.child({ module: 'rungs' }) });
  const packager = new LivePackager({ hub, rungHub, logger: log.child({ module: 'packager' }), ...config.hls });
  packager.observe(recorder);
  packager.start();
  const tc = config.transcode;
  const transcoder = new LiveTranscoder({
    hub,
    rungHub,
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
  // Started after the packager: on a stream's start the packager subscribes first, so the source
  // rendition exists (and leads) before any rung is published.
  transcoder.start();
  // Live thumbnails: one small FFmpeg run per live stream every LIVE_THUMBNAIL_INTERVAL_MS (0: none).
  const thumbEvery = config.vod.liveThumbnailIntervalMs;
  const liveThumbnails =
    ffmpegPath && thumbEvery !== 0
      ? new LiveThumbnails({ streams: hub, keyframes: keyframesFromPackager(packager), ffmpegPath, intervalMs: thumbEvery, logger: log.child({ module: 'thumbnails' }) })
      : undefined;
  await liveThumbnails?.start();
  const origin = new LiveOrigin(packager, { holdMs: config.hls.holdMs, startupWaitMs: Math.max(config.hls.holdMs, 3 * config.hls.segmentTargetMs) });

  // Publish sessions go into the catalog; a catalog failure is logged, never stops the stream. A session's
  // end is written after its start (with a pool they could otherwise race and leave the session open).
  const sessionStarts = new Map<string, Promise<void>>();
  hub.on('session-start', (streamId, info) => {
    const started = catalog
      .startSession({ id: info.sessionId, streamId, protocol: info.protocol, remoteAddress: info.remoteAddress, startedAt: new Date() })
      .catch((err) => log.warn({ err, stream: streamId }, 'could not record publish session'));
    sessionStarts.set(info.sessionId, started);
  });
  hub.on('session-end', (streamId, info, reason, stats) => {
    const endedAt = new Date();
    const started = sessionStarts.get(info.sessionId) ?? Promise.resolve();
    sessionStarts.delete(info.sessionId);
    void started
      .then(() => catalog.endSession(info.sessionId, { endedAt, reason, bytes: stats.bytes, frames: stats.frames }))
      .catch((err) => log.warn({ err, stream: streamId }, 'could not record end of publish session'));
  });

  const tls = config.rtmp.tls;
  const rtmp = new RtmpServer({
    host: config.rtmp.host,
    port: config.rtmp.port,
    tls: tls ? { port: tls.port, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : undefined,
    limits: config.rtmp.limits,
    hub,
    logger: log.child({ module: 'rtmp' }),
    async authorize(app, streamKey) {
      if (app !== 'live') throw new AppError('E_STREAM_KEY_INVALID', `unknown application "${app}" (publish to /live/<streamKey>)`);
      // Keys are looked up by their SHA-256: the database compares hashes, never the key itself.
      const s = await catalog.findStreamByKeyHash(hashSecret(streamKey));
      if (!s) throw new AppError('E_STREAM_KEY_INVALID', 'unknown stream key');
      return { streamId: s.id };
    },
  });

  // WHIP publishers: the same key lookup as RTMP, into the same hub; Opus becomes AAC through FFmpeg.
  const wc = config.webrtc;
  const webrtc = wc.enabled
    ? new WebRtcIngest({
        network: { bindAddress: wc.bindAddress, portMin: wc.portMin, portMax: wc.portMax, publicAddress: wc.publicAddress, iceServers: wc.iceServers },
        limits: {
          ...DEFAULT_WEBRTC_LIMITS,
          maxSessions: wc.maxSessions,
          jitterBufferMs: wc.jitterBufferMs,
          maxBitrateKbps: wc.maxBitrateKbps,
          // The segmenter cuts at the first keyframe at or after the segment target: asking for one when the
          // target has passed since the last one makes it arrive a frame or two after (segments of ~2.05 s).
          keyframeIntervalMs: config.hls.segmentTargetMs,
        },
        hub,
        ffmpegPath,
        logger: log.child({ module: 'webrtc' }),
        async authorize(streamKey) {
          const s = await catalog.findStreamByKeyHash(hashSecret(streamKey));
          if (!s) throw new AppError('E_STREAM_KEY_INVALID', 'unknown stream key');
          return { streamId: s.id };
        },
      })
    : undefined;

  const app = await buildApp({
    catalog,
    hub,
    packager,
    transcoder,
    origin,
    apiToken,
    publicBaseUrl: config.server.publicBaseUrl,
    publicRtmpUrl: config.server.publicRtmpUrl,
    ingestCounters: () => rtmp.counters,
    store,
    recorder,
    playbackTokens,
    playbackTokenTtlSeconds: config.vod.playbackTokenTtlSeconds,
    uploads,
    vodWorker: vodWorker?.counters,
    liveThumbnails,
    webrtc,
    logger: log.child({ module: 'http' }),
  });

  let rtmpAddr: { port: number; tlsPort?: number };
  try {
    await app.listen({ host: config.server.host, port: config.server.httpPort });
    rtmpAddr = await rtmp.start();
  } catch (err) {
    await app.close().catch(() => {});
    await rtmp.close().catch(() => {});
    await webrtc?.close().catch(() => {});
    await transcoder.close();
    await liveThumbnails?.close();
    await vodWorker?.close();
    packager.close();
    await recorder.close();
    hub.close();
    rungHub.close();
    await store.close();
    await catalog.close();
    throw err;
  }
  vodWorker?.start();
  await createDefaultStream(catalog, config);
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : config.server.httpPort;
  log.info({ httpPort, rtmpPort: rtmpAddr.port, rtmpsPort: rtmpAddr.tlsPort, catalog: catalog.kind, startupMs: Math.round(performance.now() - started) }, 'server started');

  let closing: Promise<void> | undefined;
  let shutdownStep = 'running';
  return {
    get shutdownStep() {
      return shutdownStep;
    },
    httpPort,
    rtmpPort: rtmpAddr.port,
    rtmpsPort: rtmpAddr.tlsPort,
    apiToken,
    webrtc,
    close() {
      // Reverse order of construction: stop taking publishers, answer held requests (without ending the
      // playlists: viewers move to another origin or wait for the restart), drop the streams, stop HTTP,
      // close the catalog.
      closing ??= (async () => {
        const t0 = performance.now();
        // Every step is bounded: a shutdown that waits forever for one stuck client or query is worse
        // than one that cuts it off. A step over its time is logged with its name.
        const step = async (name: string, fn: () => unknown, limitMs = SHUTDOWN_STEP_MS, onLate?: () => void) => {
          shutdownStep = name;
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<'late'>((resolve) => {
            timer = setTimeout(() => resolve('late'), limitMs);
          });
          const outcome = await Promise.race([Promise.resolve(fn()).then(() => 'done' as const), late]);
          clearTimeout(timer);
          if (outcome === 'late') {
            log.warn({ step: name, limitMs }, 'shutdown step did not finish in time; going on');
            onLate?.();
          }
          log.debug({ step: name, ms: Math.round(performance.now() - t0) }, 'shutdown step done');
        };
        await step('rtmp', () => rtmp.close());
        await step('webrtc', () => webrtc?.close());
        // Every FFmpeg is stopped and waited for: none may outlive the server.
        await step('transcoder', () => transcoder.close());
        await step('live-thumbnails', () => liveThumbnails?.close());
        // Jobs in progress go back to the queue (another server, or this one after its restart, takes them).
        await step('vod-worker', () => vodWorker?.close());
        // Closing the packager ends every run; the recorder stores what is waiting and finalizes them.
        await step('packager', () => packager.close());
        await step('recorder', () => recorder.close(), 2 * SHUTDOWN_STEP_MS);
        await step('hub', () => {
          hub.close();
          rungHub.close();
        });
        // Held requests were answered above; what is left are downloads in flight. Give them a moment,
        // then close every connection.
        await step('http', () => app.close(), SHUTDOWN_STEP_MS, () => app.server.closeAllConnections());
        await step('storage', () => store.close());
        await step('catalog', () => catalog.close());
        shutdownStep = 'stopped';
        log.info({ ms: Math.round(performance.now() - t0) }, 'server stopped');
      })();
      return closing;
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`Configuration error: ${(err as Error).message}`);
    process.exit(2);
  }
  const server = await startServer(config);
  const stop = (signal: string) => {
    console.error(`\n${signal} received, shutting down`);
    // Above the sum of the bounded shutdown steps, so a slow step never cuts off the catalog's close.
    const force = setTimeout(() => process.exit(1), 60_000);
    force.unref();
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('main.ts')) {
  main().catch((err) => {
    if (isAppError(err) && err.code === 'E_CONFIG_INVALID') {
      console.error(`Configuration error: ${err.message}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  });
}
