/**
 * Composition root: read config, build every module in order, wire them, and shut down in reverse.
 * The only place that builds concrete instances (with components.ts, which makes each from its config).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { buildApp, PlaybackTokens } from './api/index.js';
import { openCatalog, SessionJournal, type Catalog } from './catalog/index.js';
import {
  byStreamKey,
  httpSettings,
  newHubs,
  newLiveThumbnails,
  newRtmpServer,
  newTranscoder,
  newUploads,
  newVodWorker,
  newWebRtcIngest,
} from './components.js';
import { loadConfig, type Config } from './config/index.js';
import { hashSecret, isAppError, newStreamKey, type Logger } from './core/index.js';
import type { WebRtcIngest } from './ingest/webrtc/index.js';
import { Lifecycle } from './lifecycle.js';
import { LiveOrigin, LivePackager } from './packager/index.js';
import { findFfmpeg } from './process/index.js';
import { createStorage } from './storage/index.js';
import { Recorder, type VodWorker } from './vod/index.js';

/** Longest one shutdown step (RTMP, HTTP, catalog) may take before it is cut short. */
const SHUTDOWN_STEP_MS = 5000;

export interface RunningServer {
  /** 'running', the shutdown step in progress, or 'stopped'. */
  readonly shutdownStep: string;
  /** The longest close() can take: the sum of its bounded steps. */
  readonly shutdownBudgetMs: number;
  readonly httpPort: number;
  readonly rtmpPort: number;
  readonly rtmpsPort?: number;
  readonly apiToken: string;
  /** WHIP ingest (undefined with WEBRTC_ENABLED=false); tests reach its test-only hooks through it. */
  readonly webrtc?: WebRtcIngest;
  close(): Promise<void>;
}

/**
 * A value kept in DATA_DIR/<name>: the one there, else `bytes` random bytes (base64url) written there
 * first with `mode` (0o600 for secrets). `created` says which.
 */
function keptInDataDir(config: Config, name: string, bytes: number, mode: number): { file: string; value: string; created: boolean } {
  const file = join(config.server.dataDir, name);
  if (existsSync(file)) return { file, value: readFileSync(file, 'utf8').trim(), created: false };
  const value = randomBytes(bytes).toString('base64url');
  writeFileSync(file, value + '\n', { mode });
  return { file, value, created: true };
}

/** The operator token: API_TOKEN, else the one kept in DATA_DIR, else a new one (printed once). */
function resolveApiToken(config: Config, log: Logger): string {
  if (config.server.apiToken) return config.server.apiToken;
  const { file, value, created } = keptInDataDir(config, 'api-token', 24, 0o600);
  if (created) {
    log.info({ file }, 'generated an operator API token (kept in DATA_DIR)');
    console.log(`\n  Operator API token (printed once, kept in ${file}):\n    ${value}\n`);
  }
  return value;
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
  return pino(
    { level: logLevel },
    pinoPretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
  );
}

export async function startServer(config: Config, logger?: pino.Logger): Promise<RunningServer> {
  const log = logger ?? buildLogger(config);
  const started = performance.now();
  mkdirSync(config.server.dataDir, { recursive: true });
  const apiToken = resolveApiToken(config, log);
  // Before anything is opened: a wrong FFMPEG_PATH is a configuration error.
  const ffmpegPath = resolveFfmpeg(config);
  const playbackTokens = new PlaybackTokens(config.vod.playbackTokenSecret || keptInDataDir(config, 'playback-secret', 32, 0o600).value);

  // One lifecycle: each component pushes its close as it is built, and a start-up failure and the shutdown
  // unwind the same stack, so the shutdown order is this function read from the bottom up:
  //   rtmp, webrtc (stop taking publishers) -> transcoder, live-thumbnails (every FFmpeg stopped and waited
  //   for: none may outlive the server) -> vod-worker (jobs in progress go back to the queue) -> packager
  //   (answers held requests without ending the playlists, ends every run) -> recorder (stores what is
  //   waiting, finalizes the runs) -> hub (drops the streams) -> http -> storage -> catalog.
  const life = new Lifecycle({ logger: log, stepMs: SHUTDOWN_STEP_MS });
  try {
    const catalog = await openCatalog({
      databaseUrl: config.catalog.databaseUrl,
      dataDir: config.catalog.dataDir,
      logger: log.child({ module: 'catalog' }),
    });
    life.push('catalog', () => catalog.close());
    const store = await createStorage(config.storage, log);
    life.push('storage', () => store.close());
    // HTTP is built last (its routes reach everything) but closes late: its handlers read the storage and
    // the catalog, and by then the packager has answered the held requests. What is left are downloads in
    // flight: they get a step's time, then every connection is closed. So its step goes here, for the app below.
    const http: { app?: FastifyInstance } = {};
    life.push('http', () => http.app?.close(), { onLate: () => http.app?.server.closeAllConnections() });

    const { hub, rungHub } = newHubs(config, log);
    life.push('hub', () => {
      hub.close();
      rungHub.close();
    });
    let vodWorker: VodWorker | undefined;
    const uploads = newUploads(config, catalog, () => vodWorker?.nudge(), log);
    await uploads.start();
    const nodeId = keptInDataDir(config, 'node-id', 9, 0o666).value;
    const recorder = new Recorder({ catalog, store, ffmpegPath, nodeId, logger: log.child({ module: 'recorder' }) });
    life.push('recorder', () => recorder.close(), { limitMs: 2 * SHUTDOWN_STEP_MS });
    // Runs a crash left open are listed before any new run can start.
    const leftOpen = await recorder.recover();
    if (leftOpen > 0) log.info({ runs: leftOpen }, 'recording: finishing runs left open by an earlier stop');
    recorder.start();
    const packager = new LivePackager({ hub, rungHub, logger: log.child({ module: 'packager' }), ...config.hls });
    life.push('packager', () => packager.close());
    packager.observe(recorder);
    packager.start();
    const worker = (vodWorker = newVodWorker(config, catalog, store, uploads, ffmpegPath, log));
    if (worker) life.push('vod-worker', () => worker.close());
    const liveThumbnails = newLiveThumbnails(config, hub, packager, ffmpegPath, log);
    if (liveThumbnails) life.push('live-thumbnails', () => liveThumbnails.close());
    const transcoder = newTranscoder(config, { hub, rungHub }, catalog, ffmpegPath, log);
    life.push('transcoder', () => transcoder.close());
    // Started after the packager: on a stream's start the packager subscribes first, so the source
    // rendition exists (and leads) before any rung is published.
    transcoder.start();
    await liveThumbnails?.start();
    const startupWaitMs = Math.max(config.hls.holdMs, 3 * config.hls.segmentTargetMs);
    const origin = new LiveOrigin(packager, { holdMs: config.hls.holdMs, startupWaitMs });
    const journal = new SessionJournal(catalog, log);
    hub.on('session-start', (streamId, info) => journal.started(streamId, info));
    hub.on('session-end', (streamId, info, reason, stats) =>
      journal.ended(streamId, info.sessionId, { reason, bytes: stats.bytes, frames: stats.frames }),
    );

    const authorize = byStreamKey(catalog);
    const webrtc = newWebRtcIngest(config, hub, authorize, ffmpegPath, log);
    if (webrtc) life.push('webrtc', () => webrtc.close());
    const rtmp = newRtmpServer(config, hub, authorize, log);
    life.push('rtmp', () => rtmp.close());
    const parts = { catalog, hub, packager, transcoder, origin, store, recorder, playbackTokens, uploads, liveThumbnails, webrtc };
    const more = { apiToken, ingestCounters: () => rtmp.counters, vodWorker: worker?.counters };
    const app = await buildApp({ ...parts, ...more, ...httpSettings(config, log) });
    http.app = app;
    await app.listen({ host: config.server.host, port: config.server.httpPort });
    const rtmpAddr = await rtmp.start();
    void worker?.start();
    await createDefaultStream(catalog, config);

    const facts = { catalog: catalog.kind, startupMs: Math.round(performance.now() - started) };
    return runningServer(life, log, { app, rtmpAddr, apiToken, webrtc, httpPort: config.server.httpPort, facts });
  } catch (err) {
    // Whatever had started is closed, last started first, as on shutdown.
    await life.close();
    throw err;
  }
}

/** The started server as its caller holds it: its ports, its token, and its one close. */
function runningServer(
  life: Lifecycle,
  log: Logger,
  o: {
    app: FastifyInstance;
    rtmpAddr: { port: number; tlsPort?: number };
    apiToken: string;
    webrtc: WebRtcIngest | undefined;
    httpPort: number;
    /** More for the 'server started' line. */
    facts: object;
  },
): RunningServer {
  const address = o.app.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : o.httpPort;
  log.info({ httpPort, rtmpPort: o.rtmpAddr.port, rtmpsPort: o.rtmpAddr.tlsPort, ...o.facts }, 'server started');
  let closing: Promise<void> | undefined;
  return {
    get shutdownStep() {
      return life.step;
    },
    shutdownBudgetMs: life.budgetMs,
    httpPort,
    rtmpPort: o.rtmpAddr.port,
    rtmpsPort: o.rtmpAddr.tlsPort,
    apiToken: o.apiToken,
    webrtc: o.webrtc,
    close: () => (closing ??= shutdown(life, log)),
  };
}

/** Unwinds the lifecycle; rejects once it is done if a step failed (the process then exits non-zero). */
async function shutdown(life: Lifecycle, log: Logger): Promise<void> {
  const t0 = performance.now();
  const { failed } = await life.close();
  log.info({ ms: Math.round(performance.now() - t0) }, 'server stopped');
  if (failed.length > 0) throw new Error(`shutdown steps failed: ${failed.join(', ')}`);
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
    const force = setTimeout(() => process.exit(1), server.shutdownBudgetMs + 5000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
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
