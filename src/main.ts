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
import { DEFAULT_GOVERNOR, LiveTranscoder } from './livetranscode/index.js';
import { findFfmpeg } from './process/index.js';
import { LiveOrigin, LivePackager } from './packager/index.js';
import { StreamHub } from './stream/index.js';

/** Longest one shutdown step (RTMP, HTTP, catalog) may take before it is cut short. */
const SHUTDOWN_STEP_MS = 5000;

export interface RunningServer {
  /** 'running', the shutdown step in progress, or 'stopped'. */
  readonly shutdownStep: string;
  readonly httpPort: number;
  readonly rtmpPort: number;
  readonly rtmpsPort?: number;
  readonly apiToken: string;
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

  const catalog = await openCatalog({ databaseUrl: config.catalog.databaseUrl, dataDir: config.catalog.dataDir, logger: log.child({ module: 'catalog' }) });
  const hub = new StreamHub({ ...config.stream, logger: log.child({ module: 'hub' }) });
  // Transcoded rungs have a hub of their own: nothing that lists or records streams sees them as streams.
  // Their grace period covers an FFmpeg restart with backoff.
  const rungHub = new StreamHub({ ...config.stream, graceMs: Math.max(config.stream.graceMs, 30_000), logger: log.child({ module: 'rungs' }) });
  const packager = new LivePackager({ hub, rungHub, logger: log.child({ module: 'packager' }), ...config.hls });
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
    logger: log.child({ module: 'http' }),
  });

  let rtmpAddr: { port: number; tlsPort?: number };
  try {
    await app.listen({ host: config.server.host, port: config.server.httpPort });
    rtmpAddr = await rtmp.start();
  } catch (err) {
    await app.close().catch(() => {});
    await rtmp.close().catch(() => {});
    await transcoder.close();
    packager.close();
    hub.close();
    rungHub.close();
    await catalog.close();
    throw err;
  }
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
        // Every FFmpeg is stopped and waited for: none may outlive the server.
        await step('transcoder', () => transcoder.close());
        await step('packager', () => packager.close());
        await step('hub', () => {
          hub.close();
          rungHub.close();
        });
        // Held requests were answered above; what is left are downloads in flight. Give them a moment,
        // then close every connection.
        await step('http', () => app.close(), SHUTDOWN_STEP_MS, () => app.server.closeAllConnections());
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
    const force = setTimeout(() => process.exit(1), 10_000);
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
