/**
 * Composition root: read config, build every module in order, wire them, and shut down in reverse.
 * The only place that builds concrete instances (with components.ts, which makes each from its config).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { buildApp, PlaybackTokens } from './api/index.js';
import { openCatalog, SessionJournal, type Catalog } from './catalog/index.js';
import {
  byStreamKey,
  catalogProbe,
  httpSettings,
  newHubs,
  newLiveThumbnails,
  newRtmpServer,
  newTranscoder,
  newUploads,
  newVodWorker,
  newWebRtcIngest,
  nodeHttpUrl,
  NOT_LIVE_HERE,
  liveOrigin,
  shareWindows,
} from './components.js';
import { loadConfig, NODE_ROLES, type Config } from './config/index.js';
import { createCoordination, type Coordination, type LiveWindowStore } from './coord/index.js';
import {
  hashSecret,
  isAppError,
  newStreamKey,
  redactingLogger,
  redactMessages,
  systemClock,
  type Clock,
  type Logger,
} from './core/index.js';
import type { WebRtcIngest } from './ingest/webrtc/index.js';
import { Lifecycle } from './lifecycle.js';
import { LivePackager } from './packager/index.js';
import { findFfmpeg } from './process/index.js';
import { createStorage, type ObjectStore } from './storage/index.js';
import type { StreamHub } from './stream/index.js';
import { Recorder, type VodWorker } from './vod/index.js';

/** Longest one shutdown step (RTMP, HTTP, catalog) may take before it is cut short. */
const SHUTDOWN_STEP_MS = 5000;
/** A node that stopped heartbeating (killed) is gone from the node registry after this long. */
const NODE_TTL_MS = 15_000;

/** What startServer takes besides the configuration: parts tests replace (docs/OPERATIONS.md, "Clock"). */
export interface ServerDeps {
  /**
   * The wall clock of dates: PROGRAM-DATE-TIME anchors of publish sessions, playback token expiry, the node's
   * start. Default the system's. Elapsed time (timeouts, rates, backoff) is monotonic and not taken from it.
   */
  readonly clock?: Clock;
}

export interface RunningServer {
  /** 'running', the shutdown step in progress, or 'stopped'. */
  readonly shutdownStep: string;
  /** The longest close() can take: the sum of its bounded steps. */
  readonly shutdownBudgetMs: number;
  readonly httpPort: number;
  /** 0 on a node without the ingest role (no RTMP listener). */
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

/**
 * Files and folders this process creates are its own (0600, 0700): media of private videos, the catalog,
 * the kept secrets. Set here rather than only in main() so a server started in-process (tests, embedders)
 * is the same; FFmpeg and the other children inherit it. A worker thread cannot set it (Node refuses):
 * the explicit modes of storage, the catalog and the kept secrets still hold there.
 */
function restrictFileModes(): void {
  if (isMainThread) process.umask(0o077);
}

/**
 * Whether first-start secrets may be printed: only to a person at a terminal. Output that is not a
 * terminal goes to a file or a log collector (systemd, docker logs), where a secret would outlive the
 * moment it was shown for; there the banner says where to find the secret instead (SECURITY.md).
 */
const secretsToTerminal = (): boolean => process.stdout.isTTY === true;

/** The operator token: API_TOKEN, else the one kept in DATA_DIR, else a new one (printed once, at a terminal). */
function resolveApiToken(config: Config, log: Logger): string {
  if (config.server.apiToken) return config.server.apiToken;
  const { file, value, created } = keptInDataDir(config, 'api-token', 24, 0o600);
  if (created) {
    log.info({ file }, 'generated an operator API token (kept in DATA_DIR)');
    if (secretsToTerminal()) console.log(`\n  Operator API token (printed once, kept in ${file}):\n    ${value}\n`);
    else console.log(`\n  Operator API token: generated and kept in ${file} (not printed: stdout is not a terminal)\n`);
  }
  return value;
}

async function createDefaultStream(catalog: Catalog, config: Config): Promise<void> {
  if (!config.server.createDefaultStream || (await catalog.countStreams()) > 0) return;
  const key = newStreamKey();
  const s = await catalog.createStream({ name: 'default', profile: 'abr', keyHash: hashSecret(key) });
  const { publicRtmpUrl, publicBaseUrl } = config.server;
  const keyLines = secretsToTerminal()
    ? [
        `    Stream key: ${key}`,
        `    (one line:  ${publicRtmpUrl}/${key})`,
        '  The key is shown only now; rotate it with POST /api/v1/streams/<id>/rotate-key.',
      ]
    : [
        '    Stream key: sk_… (not printed: stdout is not a terminal, and the key is stored only as a hash). Get one with:',
        `    curl -X POST -H "Authorization: Bearer $API_TOKEN" ${publicBaseUrl}/api/v1/streams/${s.id}/rotate-key`,
      ];
  console.log(
    [
      '',
      '  A stream named "default" was created. Publish to it with OBS or FFmpeg:',
      `    RTMP URL:   ${publicRtmpUrl}`,
      ...keyLines,
      `  Watch it at: ${publicBaseUrl}/watch/${s.id}`,
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

/**
 * pino as JSON lines, or pretty lines for a person at a terminal (LOG_FORMAT). Messages written as strings
 * are redacted here; startServer adds the redaction of logged objects to any logger.
 */
function buildLogger(config: Config): pino.Logger {
  const { logFormat, logLevel } = config.server;
  const options = { level: logLevel, hooks: { logMethod: redactMessages } };
  const pretty = logFormat === 'pretty' || (logFormat === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return pino(options);
  return pino(options, pinoPretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

export async function startServer(config: Config, logger?: pino.Logger, deps: ServerDeps = {}): Promise<RunningServer> {
  const clock = deps.clock ?? systemClock;
  restrictFileModes();
  // Every module logs through this one: request URLs, errors and logged fields lose their secrets (SECURITY.md).
  const log = redactingLogger(logger ?? buildLogger(config));
  const started = performance.now();
  const roles = new Set(config.node.roles);
  mkdirSync(config.server.dataDir, { recursive: true, mode: 0o700 });
  const apiToken = resolveApiToken(config, log);
  // Before anything is opened: a wrong FFMPEG_PATH is a configuration error.
  const ffmpegPath = resolveFfmpeg(config);
  const playbackTokens = new PlaybackTokens(
    config.vod.playbackTokenSecret || keptInDataDir(config, 'playback-secret', 32, 0o600).value,
    clock,
  );
  const nodeId = config.node.id ?? keptInDataDir(config, 'node-id', 9, 0o600).value;
  if (config.coord.redisUrl && !config.catalog.databaseUrl)
    log.warn("REDIS_URL is set but the catalog is the embedded one: other nodes do not see this node's streams (set DATABASE_URL)");

  // One lifecycle: each component pushes its close as it is built, and a start-up failure and the shutdown
  // unwind the same stack, so the shutdown order is this function read from the bottom up:
  //   vod-worker (jobs in progress go back to the queue) -> the ingest pipeline (startIngest: rtmp, webrtc,
  //   transcoder, live-thumbnails, packager, recorder) -> hub (drops the streams) -> http -> storage ->
  //   catalog -> coordination. A role a node lacks has no step.
  const life = new Lifecycle({ logger: log, stepMs: SHUTDOWN_STEP_MS });
  try {
    // Pushed first, so it closes last: everything below may use it (leases, the live window, the registry).
    const { coord, window } = createCoordination({ ...config.coord, logger: log });
    // In one process nothing else reads the live window: it is shared only with Redis.
    const cluster = coord.kind === 'redis' ? { coord, window } : undefined;
    life.push('coordination', () => coord.close());
    const catalog = await openCatalog({
      databaseUrl: config.catalog.databaseUrl,
      dataDir: config.catalog.dataDir,
      logger: log,
    });
    life.push('catalog', () => catalog.close());
    const store = await createStorage(config.storage, log);
    life.push('storage', () => store.close());
    // HTTP is built last (its routes reach everything) but closes late: its handlers read the storage and
    // the catalog, and by then the packager has answered the held requests. What is left are downloads in
    // flight: they get a step's time, then every connection is closed. So its step goes here, for the app below.
    const http: { app?: FastifyInstance } = {};
    life.push('http', () => http.app?.close(), { onLate: () => http.app?.server.closeAllConnections() });

    // The publishers of this node (none without the ingest role: the stream API then sees nothing live here).
    const { hub, rungHub } = newHubs(config, log, clock);
    life.push('hub', () => {
      hub.close();
      rungHub.close();
    });
    // Uploads arrive through the origin's API and are packaged by a worker: either role needs the intake.
    const jobs: { worker?: VodWorker } = {};
    const uploads = roles.has('origin') || roles.has('worker') ? newUploads(config, catalog, () => jobs.worker?.nudge(), log) : undefined;
    await uploads?.start();
    const ingest = roles.has('ingest')
      ? await startIngest({ config, log, life, catalog, store, hub, rungHub, ffmpegPath, nodeId, cluster })
      : undefined;
    const worker = roles.has('worker') && uploads ? newVodWorker(config, catalog, store, uploads, ffmpegPath, log) : undefined;
    jobs.worker = worker;
    if (worker) life.push('vod-worker', () => worker.close());

    const probes = { catalog: catalogProbe(catalog), redis: coord.kind === 'redis' ? coord : undefined, storage: store };
    const origin = roles.has('origin') ? liveOrigin(config, ingest?.packager, cluster?.window, ingest?.owns, log, life) : undefined;
    const parts = { catalog, hub, store, playbackTokens, uploads, probes, ...ingest, origin: origin ?? NOT_LIVE_HERE };
    const more = {
      apiToken,
      roles: config.node.roles,
      allRoles: NODE_ROLES,
      ingestCounters: ingest?.rtmpCounters,
      vodWorker: worker?.counters,
      vodWorkerFfmpegWorks: worker && (() => worker.ffmpegWorks()),
      // The ingest surfaces' wrong-key limiters, for /metrics (buildApp adds the API token's).
      authLimiters: () => [
        ...(ingest?.webrtc ? [{ surface: 'whip', counters: ingest.webrtc.authFailures.counters }] : []),
        ...(ingest ? [{ surface: 'rtmp', counters: ingest.rtmp.authLimiterCounters }] : []),
      ],
    };
    const app = await buildApp({ ...parts, ...more, ...httpSettings(config, log) });
    http.app = app;
    await app.listen({ host: config.server.host, port: config.server.httpPort });
    const rtmpAddr = await ingest?.rtmp.start();
    void worker?.start();
    if (roles.has('origin')) await createDefaultStream(catalog, config);

    const httpPort = boundPort(app, config.server.httpPort);
    const node = { nodeId, roles: config.node.roles, httpUrl: nodeHttpUrl(config.server.host, httpPort), startedAt: clock.now() };
    // Not awaited: a Redis that does not answer yet is reported by /healthz, and must not hold the start-up.
    coord.registerNode(node, NODE_TTL_MS).catch((err: unknown) => log.warn({ err }, 'coordination: could not register this node yet'));
    const facts = {
      roles: config.node.roles,
      nodeId,
      coordination: coord.kind,
      catalog: catalog.kind,
      // scripts/start.sh preloads jemalloc where it is installed (docs/CONFIGURATION.md)
      allocator: /libjemalloc/.test(process.env.LD_PRELOAD ?? '') ? 'jemalloc' : 'system',
      startupMs: Math.round(performance.now() - started),
    };
    return runningServer(life, log, { httpPort, rtmpAddr, apiToken, webrtc: ingest?.webrtc, facts });
  } catch (err) {
    // Whatever had started is closed, last started first, as on shutdown.
    await life.close();
    throw err;
  }
}

interface IngestContext {
  readonly config: Config;
  readonly log: pino.Logger;
  readonly life: Lifecycle;
  readonly catalog: Catalog;
  readonly store: ObjectStore;
  readonly hub: StreamHub;
  readonly rungHub: StreamHub;
  readonly ffmpegPath: string | undefined;
  readonly nodeId: string;
  /** Set with Redis: this node's streams are owned by lease and their windows mirrored for other origins. */
  readonly cluster: { coord: Coordination; window: LiveWindowStore } | undefined;
}

/**
 * What a node with the ingest role runs, built and pushed on the lifecycle in this order (so it closes in
 * the reverse): recorder (stores what is waiting, finalizes the runs) <- packager (answers held requests
 * without ending the playlists, ends every run) <- live-thumbnails, transcoder (every FFmpeg stopped and
 * waited for: none may outlive the server) <- webrtc, rtmp (stop taking publishers). RTMP is built here and
 * started by the caller once HTTP listens.
 */
async function startIngest(c: IngestContext) {
  const { config, log, life, catalog, store, hub, rungHub, ffmpegPath, nodeId, cluster } = c;
  const recorder = new Recorder({
    catalog,
    store,
    ffmpegPath,
    nodeId,
    storeRetryMs: config.vod.recordingStoreRetryMs,
    logger: log.child({ module: 'recorder' }),
  });
  life.push('recorder', () => recorder.close(), { limitMs: 2 * SHUTDOWN_STEP_MS });
  // Runs a crash left open are listed before any new run can start.
  const leftOpen = await recorder.recover();
  if (leftOpen > 0) log.info({ runs: leftOpen }, 'recording: finishing runs left open by an earlier stop');
  recorder.start();
  const packager = new LivePackager({ hub, rungHub, logger: log.child({ module: 'packager' }), ...config.hls });
  // With Redis: the lease of each stream published here, and its window written for the other origins. Both
  // close after the packager (which ends the runs and writes their last states) and before the recorder.
  const owns = cluster ? shareWindows(config, cluster, hub, packager, nodeId, log, life) : undefined;
  life.push('packager', () => packager.close());
  packager.observe(recorder);
  packager.start();
  const liveThumbnails = newLiveThumbnails(config, hub, packager, ffmpegPath, log);
  if (liveThumbnails) life.push('live-thumbnails', () => liveThumbnails.close());
  const transcoder = newTranscoder(config, { hub, rungHub }, catalog, ffmpegPath, log);
  life.push('transcoder', () => transcoder.close());
  // Started after the packager: on a stream's start the packager subscribes first, so the source
  // rendition exists (and leads) before any rung is published.
  transcoder.start();
  await liveThumbnails?.start();
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
  return { recorder, packager, transcoder, liveThumbnails, webrtc, rtmp, owns, rtmpCounters: () => rtmp.counters };
}

/** The port the HTTP server listens on (the one the OS chose for port 0). */
function boundPort(app: FastifyInstance, configured: number): number {
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : configured;
}

/** The started server as its caller holds it: its ports, its token, and its one close. */
function runningServer(
  life: Lifecycle,
  log: Logger,
  o: {
    httpPort: number;
    /** Undefined on a node without the ingest role. */
    rtmpAddr: { port: number; tlsPort?: number } | undefined;
    apiToken: string;
    webrtc: WebRtcIngest | undefined;
    /** More for the 'server started' line. */
    facts: object;
  },
): RunningServer {
  const { httpPort, rtmpAddr } = o;
  log.info({ httpPort, rtmpPort: rtmpAddr?.port, rtmpsPort: rtmpAddr?.tlsPort, ...o.facts }, 'server started');
  let closing: Promise<void> | undefined;
  return {
    get shutdownStep() {
      return life.step;
    },
    shutdownBudgetMs: life.budgetMs,
    httpPort,
    rtmpPort: rtmpAddr?.port ?? 0,
    rtmpsPort: rtmpAddr?.tlsPort,
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
