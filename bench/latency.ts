/**
 * Latency bench: `npm run bench:latency -- [--seconds 60] [--warmup 10] [--profile passthrough|abr]
 *   [--player ours|stock] [--part-ms 200] [--gop 30] [--hls-config '{...}'] [--startup measure|skip]`.
 *
 * Starts the server in-process with default LL-HLS settings (HLS_PART_TARGET_MS from --part-ms) on 127.0.0.1
 * and port 0, publishes a synthetic 720p30 stream with FFmpeg in real time (keyframe every --gop frames),
 * and measures
 *   1. player latency: Date.now() - hls.playingDate in headless Chromium, every 250 ms, on the watch page
 *      (--player ours) or on a blank page running `new Hls({ lowLatencyMode: true })` and nothing else
 *      (--player stock; lib/latency-page.ts), with where the player started (lib/latency-breakdown.ts);
 *   2. blocked playlist answer delay: a Node client reloading like hls.js (see lib/blocking-client.ts);
 *   3. start-up time (in-process and as its own process) and resident memory, idle and with one stream
 *      (left out with --startup skip, for short runs).
 * --hls-config merges a JSON object over the page's hls.js config (to try a config for third-party pages).
 * Prints a table and writes bench/results/latency-<date>.json. Bounded in time; kills its children on
 * exit and on SIGINT / SIGTERM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { Browser } from 'playwright-core';
import pg from 'pg';
import { loadConfig } from '../src/config/index.js';
import { startServer, type RunningServer } from '../src/main.js';
import { ffmpegPublish } from '../harness/ffmpeg-publish.js';
import { kill, run } from '../harness/processes.js';
import { runBlockingClient, type BlockingStats } from './lib/blocking-client.js';
import { request } from '../harness/http.js';
import { coldStart, type ColdStart } from './lib/cold-start.js';
import { track } from '../harness/processes.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { openLatencyPage, type PlayerKind } from './lib/latency-page.js';
import { breakdown } from './lib/latency-breakdown.js';
import { printReport } from './lib/report.js';
import { rounded, summarize } from './lib/stats.js';
import { resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'bench-token-0123456789abcdef';
/** RSS "with one stream" is read this long after the publisher starts. */
const RSS_AFTER_PUBLISH_S = 20;
const SAMPLE_EVERY_MS = 250;

const cli = parseBenchCli(
  'npm run bench:latency -- [--seconds N (default 60)] [--warmup N (default 10)] [--profile passthrough|abr (default passthrough)] ' +
    '[--player ours|stock (default ours)] [--part-ms N (HLS_PART_TARGET_MS, default 200)] [--hold-back-parts N (HLS_PART_HOLD_BACK_PARTS, default 3)] [--gop N (source keyframe interval in frames, default 30)] ' +
    "[--hls-config '{json}' (merged over the page's hls.js config)] [--startup measure|skip (default measure)]",
  { profile: ['passthrough', 'abr'], player: ['ours', 'stock'], startup: ['measure', 'skip'] },
  {
    'part-ms': { default: 200, min: 50, max: 1000 },
    'hold-back-parts': { default: 3, min: 2, max: 10 },
    gop: { default: 30, min: 1, max: 300 },
  },
  { 'hls-config': '{}' },
);
let hlsConfig: Record<string, unknown>;
try {
  const parsed: unknown = JSON.parse(cli.strings['hls-config']);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
  hlsConfig = parsed as Record<string, unknown>;
} catch (err) {
  console.error(`--hls-config must be a JSON object: ${(err as Error).message}`);
  process.exit(2);
}
const opts = {
  seconds: cli.seconds,
  warmup: cli.warmup,
  profile: cli.options.profile,
  player: cli.options.player as PlayerKind,
  partMs: cli.integers['part-ms'],
  gop: cli.integers.gop,
  hlsConfig,
  startup: cli.options.startup === 'measure',
};

// ---- shutdown: one path for success, failure, timeout and signals (bench/lib/run.ts) ----

const budgetS = (opts.startup ? 2 * 45 + 30 + RSS_AFTER_PUBLISH_S : 0) + opts.warmup + opts.seconds + 60;
const bench = startBenchRun({ budgetS, forceExitMs: 15_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;
const stop = { signal: bench.signal };

// ---- the bench ----

/** Run `fn` with a URL whose search_path is a fresh schema; undefined when PostgreSQL is unreachable. */
async function withPgSchema<T>(baseUrl: string, fn: (url: string) => Promise<T>): Promise<T | undefined> {
  const schema = `bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 2000 });
  try {
    await admin.connect();
  } catch {
    console.error(`(PostgreSQL not reachable at ${baseUrl}: skipping the DATABASE_URL start-up figure)`);
    return undefined;
  }
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    const url = new URL(baseUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await admin.end();
  }
}

/**
 * 1. Start-up as its own process: first start on an empty DATA_DIR (the embedded catalog is created), then a
 * restart on the same DATA_DIR.
 */
async function measureColdStarts(dataDir: string): Promise<ColdStart[]> {
  const cold: ColdStart[] = [];
  if (opts.startup) {
    cold.push(await coldStart(ROOT, dataDir, stop.signal, 'first start, embedded'));
    cold.push(await coldStart(ROOT, dataDir, stop.signal, 'restart, embedded'));
    // The same start with PostgreSQL as the catalog (DATABASE_URL, default the local test database), in a
    // schema of its own that is dropped afterwards. Skipped when PostgreSQL is not reachable.
    const pgDataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-pg-'));
    cleanups.push(() => rmSync(pgDataDir, { recursive: true, force: true }));
    const pgStart = await withPgSchema(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', (url) =>
      coldStart(ROOT, pgDataDir, stop.signal, 'PostgreSQL catalog', { DATABASE_URL: url }),
    );
    if (pgStart) cold.push(pgStart);
  }
  check();
  return cold;
}

/** 2. In-process server with default HLS settings on that DATA_DIR; start-up time and idle memory. */
async function startInProcess(dataDir: string) {
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    RTMP_PORT: '0',
    DATA_DIR: dataDir,
    API_TOKEN,
    CREATE_DEFAULT_STREAM: 'false',
    LOG_LEVEL: 'error',
    HLS_PART_TARGET_MS: String(opts.partMs),
    HLS_PART_HOLD_BACK_PARTS: String(cli.integers['hold-back-parts']),
  });
  const logger = pino({ level: 'error' }, pino.destination(2));
  const t0 = performance.now();
  const server: RunningServer = await startServer(config, logger);
  const startServerMs = performance.now() - t0;
  cleanups.push(() => server.close());
  const base = `http://127.0.0.1:${server.httpPort}`;
  await sleep(1000);
  return { server, config, base, startServerMs, rssIdle: process.memoryUsage.rss() };
}

/** 3. Publish 720p30 in real time; wait for the stream to be live and read its media playlist's part settings. */
async function publishStream(server: RunningServer, base: string) {
  const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
  const created = await request('POST', `${base}/api/v1/streams`, {
    headers: auth,
    body: JSON.stringify({ name: 'bench', profile: opts.profile }),
  });
  if (created.status !== 201) throw new Error(`creating the stream answered ${created.status}: ${created.body}`);
  const stream = JSON.parse(created.body) as { id: string; streamKey: string };
  const publisher = track(
    ffmpegPublish(`rtmp://127.0.0.1:${server.rtmpPort}/live/${stream.streamKey}`, {
      size: '1280x720',
      fps: 30,
      gop: opts.gop,
      extraArgs: ['-b:v', '3000k', '-maxrate', '3000k', '-bufsize', '3000k'],
    }),
  );
  const publishedAt = Date.now();
  cleanups.push(() => kill(publisher));
  const publisherAlive = () => {
    if (publisher.exitCode !== null || publisher.signalCode !== null) {
      throw new Error(`FFmpeg stopped (${publisher.exitCode ?? publisher.signalCode}): ${publisher.stderrText().trim()}`);
    }
  };
  await waitFor(
    'stream live',
    async () => {
      publisherAlive();
      return (await request('GET', `${base}/api/v1/streams/${stream.id}/live`, { headers: auth })).status === 200;
    },
    20_000,
    { tolerateErrors: true },
  );
  const master = await waitFor(
    'multivariant playlist',
    async () => {
      const r = await request('GET', `${base}/live/${stream.id}/master.m3u8`, { timeoutMs: 10_000 });
      return r.status === 200 ? r.body : undefined;
    },
    20_000,
    { tolerateErrors: true },
  );
  const mediaPath = master
    .split('\n')
    .find((l) => l.length > 0 && !l.startsWith('#'))!
    .trim();
  const mediaUrl = `${base}/live/${stream.id}/${mediaPath}`;
  const partInf = await request('GET', mediaUrl, { timeoutMs: 10_000 });
  const partTarget = Number(/PART-TARGET=([\d.]+)/.exec(partInf.body)?.[1]);
  const partHoldBack = Number(/PART-HOLD-BACK=([\d.]+)/.exec(partInf.body)?.[1]);
  return { stream, publishedAt, publisherAlive, mediaUrl, partTarget, partHoldBack };
}

/** 4. The hls.js-like blocking reload client, from now until finish() (which resolves with when it ended). */
function startBlockingClient(mediaUrl: string) {
  const clientStop = new AbortController();
  stop.signal.addEventListener('abort', () => clientStop.abort(), { once: true });
  const blocking: BlockingStats = { samples: [], requests: 0, errors: 0, missing: 0 };
  const startedAt = Date.now();
  const client = runBlockingClient(mediaUrl, clientStop.signal, blocking);
  client.catch(() => {});
  cleanups.push(() => (clientStop.abort(), client.catch(() => {})));
  const finish = async () => {
    clientStop.abort();
    await client;
    return Date.now();
  };
  return { blocking, startedAt, finish };
}

/** 5. Memory with one stream, before the browser driver is loaded into this process. */
async function memoryWithOneStream(publishedAt: number, publisherAlive: () => void): Promise<{ rss: number; at: number }> {
  if (opts.startup) await sleep(Math.max(0, publishedAt + RSS_AFTER_PUBLISH_S * 1000 - Date.now()));
  check();
  publisherAlive();
  return { rss: process.memoryUsage.rss(), at: Date.now() };
}

/** 6. The player in Chromium: sample Date.now() - hls.playingDate in the page every 250 ms, over the warm-up and the window. */
async function watchInChromium(base: string, streamId: string, publisherAlive: () => void) {
  const { launchBrowser } = await import('../harness/browser.js');
  const browser: Browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const page = await openLatencyPage(browser, {
    kind: opts.player,
    base,
    streamId,
    sampleEveryMs: SAMPLE_EVERY_MS,
    hlsConfig: opts.hlsConfig,
  });
  cleanups.push(() => page.close());
  const pageOpenedAt = page.openedAt;
  const measureFrom = pageOpenedAt + opts.warmup * 1000;
  const measureTo = measureFrom + opts.seconds * 1000;
  while (Date.now() < measureTo) {
    await sleep(Math.min(1000, measureTo - Date.now()));
    check();
    publisherAlive();
  }
  return { fromPage: await page.read(), pageOpenedAt, measureFrom, measureTo, chromiumVersion: browser.version() };
}

interface Measured {
  readonly startedAt: Date;
  readonly cold: ColdStart[];
  readonly inProcess: Awaited<ReturnType<typeof startInProcess>>;
  readonly published: Awaited<ReturnType<typeof publishStream>>;
  readonly blocking: BlockingStats;
  readonly clientStartedAt: number;
  readonly clientEndedAt: number;
  readonly memory: Awaited<ReturnType<typeof memoryWithOneStream>>;
  readonly watched: Awaited<ReturnType<typeof watchInChromium>>;
}

/** 7. Reduce: the player's latency and the blocked answers' delay over the same window, with what made them. */
async function reduce(m: Measured) {
  const { fromPage, pageOpenedAt, measureFrom, measureTo } = m.watched;
  const { blocking, published } = m;
  const { publishedAt } = published;
  const inWindow = fromPage.samples.filter((s) => s.t >= measureFrom && s.t <= measureTo);
  const playing = inWindow.filter((s) => s.latencyMs !== null && !s.paused);
  const player = rounded(summarize(playing.map((s) => s.latencyMs! / 1000)), 3);
  // Both figures come from the same window: after the player's warm-up, with the browser playing.
  const counted = blocking.samples.filter((s) => s.arrivedAt >= measureFrom && s.arrivedAt <= measureTo);
  const held = counted.filter((s) => s.held);
  const answer = rounded(summarize(held.map((s) => s.delayMs)), 1);
  // A constant error of the PDT anchor (how late the session's first keyframe was taken in) shifts every delay
  // by the same amount; the delays above the fastest answer do not depend on it.
  const fastest = held.length ? Math.min(...held.map((s) => s.delayMs)) : 0;
  const answerAboveFastest = rounded(summarize(held.map((s) => s.delayMs - fastest)), 1);
  const ffmpegVersion = (await run('ffmpeg', ['-hide_banner', '-version'], 10_000).catch(() => ({ stdout: '' }))).stdout.split('\n')[0];

  const mb = (b: number | undefined) => (b === undefined ? undefined : Math.round((b / 1048576) * 10) / 10);
  const results = {
    date: m.startedAt.toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      chromium: m.watched.chromiumVersion,
      ffmpeg: ffmpegVersion,
      hlsjs: fromPage.hlsVersion,
    },
    setup: {
      source: `FFmpeg -re lavfi testsrc2 1280x720 30 fps, libx264 ultrafast zerolatency, GOP ${opts.gop} (${(opts.gop / 30).toFixed(2)} s), 3000 kb/s; AAC 48 kHz 96 kb/s; RTMP`,
      server: `in-process, default settings but HLS_PART_TARGET_MS=${opts.partMs} HLS_PART_HOLD_BACK_PARTS=${cli.integers['hold-back-parts']}, 127.0.0.1`,
      profile: opts.profile,
      player:
        opts.player === 'ours'
          ? 'ours: the watch page /watch/<id> (player/player.js, its own catch-up)'
          : 'stock: blank page, /player/hls.min.js, new Hls({ lowLatencyMode: true }) and nothing else',
      hlsConfigOverride: opts.hlsConfig,
      partTargetMs: opts.partMs,
      gopFrames: opts.gop,
      partTargetS: published.partTarget,
      partHoldBackS: published.partHoldBack,
      segmentTargetS: m.inProcess.config.hls.segmentTargetMs / 1000,
      warmupS: opts.warmup,
      measureS: opts.seconds,
    },
    playerLatencyS: {
      definition:
        'Date.now() - hls.playingDate in the player page, every 250 ms while playing, after the warm-up. PROGRAM-DATE-TIME is the ' +
        "server's ingest wall clock, so this is ingest-to-screen latency (encoding and RTMP send time before ingest are not included).",
      ...player,
      samplesWithoutDate: inWindow.length - playing.length,
      waitingEvents: fromPage.waiting.filter((t) => t >= measureFrom && t <= measureTo).length,
      waitingEventsAll: fromPage.waiting.length,
      waitingMsAll: fromPage.waitingMs,
      hlsErrors: fromPage.errors.map(({ type, details, fatal }) => ({ type, details, fatal })),
      hlsTargetLatencyS: fromPage.samples.at(-1)?.targetLatency ?? null,
      hlsInstances: fromPage.instances,
      levelSwitches: fromPage.levelSwitches,
      samples: playing.map((s) => [s.t - pageOpenedAt, s.latencyMs, s.hlsLatency, s.targetLatency, s.playbackRate, s.aheadS, s.level]),
      samplesColumns: [
        'ms since player started',
        'latency ms',
        'hls.latency s',
        'hls.targetLatency s',
        'playbackRate',
        'buffered ahead s',
        'level',
      ],
    },
    breakdown: breakdown(fromPage, playing, pageOpenedAt, answer.p50),
    blockedAnswerDelayMs: {
      definition:
        "For each _HLS_msn/_HLS_part request: time the whole answer arrived - (PROGRAM-DATE-TIME of the part's segment + the part's " +
        'offset in it + its duration), i.e. minus the ingest instant of the first sample after the part, when the part can first be ' +
        "closed. Only requests sent before that instant (held by the server) count, and only answers within the player's " +
        'measurement window.',
      ...answer,
      aboveFastest: answerAboveFastest,
      /** If the fastest answer took ~0 ms, PDT runs this much late: add it to the player latency for ingest-to-screen. */
      pdtAnchorLateEstimateMs: Math.max(0, -fastest),
      requests: blocking.requests,
      answersCounted: counted.length,
      notHeldExcluded: counted.length - held.length,
      errors: blocking.errors,
      missingPart: blocking.missing,
      clientSeconds: Math.round((m.clientEndedAt - m.clientStartedAt) / 1000),
      samples: held.map((s) => [s.arrivedAt - publishedAt, s.msn, s.part, s.arrivedAt - s.sentAt, s.delayMs]),
      samplesColumns: ['ms since publish start', 'msn', 'part', 'held ms', 'delay ms'],
    },
    startup: {
      measured: opts.startup,
      startServerMs: Math.round(m.inProcess.startServerMs),
      startServerNote: opts.startup
        ? 'DATA_DIR already holds the catalog (created by the first separate-process start)'
        : 'empty DATA_DIR (--startup skip: no separate-process starts before it)',
      coldStart: m.cold.map((c) => ({
        command: c.command,
        label: c.label,
        untilHealthzMs: Math.round(c.readyMs),
        idleRssMB: mb(c.idleRssBytes),
      })),
    },
    memory: {
      inProcessIdleRssMB: mb(m.inProcess.rssIdle),
      inProcessOneStreamRssMB: mb(m.memory.rss),
      afterPublishingS: Math.round((m.memory.at - publishedAt) / 1000),
      note: 'In-process RSS is the whole bench process (server + tsx + the playlist client), read before the browser driver is loaded.',
    },
  };

  return { results, player, answer, answerAboveFastest };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));

  const cold = await measureColdStarts(dataDir);
  const inProcess = await startInProcess(dataDir);
  const published = await publishStream(inProcess.server, inProcess.base);
  const client = startBlockingClient(published.mediaUrl);
  const memory = await memoryWithOneStream(published.publishedAt, published.publisherAlive);
  const watched = await watchInChromium(inProcess.base, published.stream.id, published.publisherAlive);
  const clientEndedAt = await client.finish();

  const { results, player, answer, answerAboveFastest } = await reduce({
    startedAt,
    cold,
    inProcess,
    published,
    blocking: client.blocking,
    clientStartedAt: client.startedAt,
    clientEndedAt,
    memory,
    watched,
  });
  printReport(results, player, answer, answerAboveFastest);
  writeResults(resultsDir(ROOT), 'latency', startedAt, results);
}

main().then(
  () => {
    return shutdown(0);
  },
  (err: unknown) => {
    if (!stop.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return shutdown(stop.signal.aborted ? 130 : 1);
  },
);
