/**
 * Latency bench: `npm run bench:latency -- [--seconds 60] [--warmup 10]`.
 *
 * Starts the server in-process with default LL-HLS settings on 127.0.0.1 and port 0, publishes a synthetic
 * 720p30 stream with FFmpeg in real time, and measures
 *   1. player latency: Date.now() - hls.playingDate on the watch page in headless Chromium, every 250 ms;
 *   2. blocked playlist answer delay: a Node client reloading like hls.js (see lib/blocking-client.ts);
 *   3. start-up time (in-process and as its own process) and resident memory, idle and with one stream.
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
import { ffmpegPublish, kill, run } from '../test/helpers/server.js';
import { runBlockingClient, type BlockingStats } from './lib/blocking-client.js';
import { request } from './lib/http.js';
import { coldStart, track, type ColdStart } from './lib/procs.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { printReport } from './lib/report.js';
import { rounded, summarize } from './lib/stats.js';
import { resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'bench-token-0123456789abcdef';
/** RSS "with one stream" is read this long after the publisher starts. */
const RSS_AFTER_PUBLISH_S = 20;
const SAMPLE_EVERY_MS = 250;

const cli = parseBenchCli('npm run bench:latency -- [--seconds N (default 60)] [--warmup N (default 10)] [--profile passthrough|abr (default passthrough)]', {
  profile: ['passthrough', 'abr'],
});
const opts = { seconds: cli.seconds, warmup: cli.warmup, profile: cli.options.profile };

// ---- shutdown: one path for success, failure, timeout and signals (bench/lib/run.ts) ----

const budgetS = 2 * 45 + 30 + RSS_AFTER_PUBLISH_S + opts.warmup + opts.seconds + 60;
const bench = startBenchRun({ budgetS, forceExitMs: 15_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;
const stop = { signal: bench.signal };

// ---- the bench ----

interface PageSample {
  t: number;
  latencyMs: number | null;
  paused: boolean;
}

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

async function main(): Promise<void> {
  const startedAt = new Date();

  // 1. Start-up as its own process: first start on an empty DATA_DIR (the embedded catalog is created),
  //    then a restart on the same DATA_DIR.
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const cold: ColdStart[] = [];
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
  check();

  // 2. In-process server with default HLS settings on that DATA_DIR; start-up time and idle memory.
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    RTMP_PORT: '0',
    DATA_DIR: dataDir,
    API_TOKEN,
    CREATE_DEFAULT_STREAM: 'false',
    LOG_LEVEL: 'error',
  });
  const logger = pino({ level: 'error' }, pino.destination(2));
  const t0 = performance.now();
  const server: RunningServer = await startServer(config, logger);
  const startServerMs = performance.now() - t0;
  cleanups.push(() => server.close());
  const base = `http://127.0.0.1:${server.httpPort}`;
  await sleep(1000);
  const rssIdle = process.memoryUsage.rss();

  // 3. Publish 720p30 in real time.
  const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
  const created = await request('POST', `${base}/api/v1/streams`, { headers: auth, body: JSON.stringify({ name: 'bench', profile: opts.profile }) });
  if (created.status !== 201) throw new Error(`creating the stream answered ${created.status}: ${created.body}`);
  const stream = JSON.parse(created.body) as { id: string; streamKey: string };
  const publisher = track(
    ffmpegPublish(`rtmp://127.0.0.1:${server.rtmpPort}/live/${stream.streamKey}`, {
      size: '1280x720',
      fps: 30,
      gop: 30,
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
  await waitFor('stream live', async () => {
    publisherAlive();
    return (await request('GET', `${base}/api/v1/streams/${stream.id}/live`, { headers: auth })).status === 200;
  }, 20_000, { tolerateErrors: true });
  const master = await waitFor('multivariant playlist', async () => {
    const r = await request('GET', `${base}/live/${stream.id}/master.m3u8`, { timeoutMs: 10_000 });
    return r.status === 200 ? r.body : undefined;
  }, 20_000, { tolerateErrors: true });
  const mediaPath = master.split('\n').find((l) => l.length > 0 && !l.startsWith('#'))!.trim();
  const mediaUrl = `${base}/live/${stream.id}/${mediaPath}`;
  const partInf = await request('GET', mediaUrl, { timeoutMs: 10_000 });
  const partTarget = Number(/PART-TARGET=([\d.]+)/.exec(partInf.body)?.[1]);
  const partHoldBack = Number(/PART-HOLD-BACK=([\d.]+)/.exec(partInf.body)?.[1]);

  // 4. The hls.js-like blocking reload client runs from now to the end.
  const clientStop = new AbortController();
  stop.signal.addEventListener('abort', () => clientStop.abort(), { once: true });
  const blocking: BlockingStats = { samples: [], requests: 0, errors: 0, missing: 0 };
  const clientStartedAt = Date.now();
  const client = runBlockingClient(mediaUrl, clientStop.signal, blocking);
  client.catch(() => {});
  cleanups.push(() => (clientStop.abort(), client.catch(() => {})));

  // 5. Memory with one stream, before the browser driver is loaded into this process.
  await sleep(Math.max(0, publishedAt + RSS_AFTER_PUBLISH_S * 1000 - Date.now()));
  check();
  publisherAlive();
  const rssStream = process.memoryUsage.rss();

  // 6. The watch page in Chromium: sample Date.now() - hls.playingDate in the page every 250 ms.
  const { launchBrowser, openPage } = await import('../test/helpers/browser.js');
  const browser: Browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const page = await openPage(browser, `${base}/watch/${stream.id}`);
  const pageOpenedAt = Date.now();
  await page.page.evaluate((every) => {
    const w = window as any;
    const out: { t: number; latencyMs: number | null; paused: boolean }[] = (w.__bench = []);
    w.__benchWaiting = [];
    w.__player.video.addEventListener('waiting', () => w.__benchWaiting.push(Date.now()));
    setInterval(() => {
      const hls = w.__player.hls;
      const pd: Date | null = hls ? hls.playingDate : null;
      out.push({ t: Date.now(), latencyMs: pd ? Date.now() - pd.getTime() : null, paused: w.__player.video.paused });
    }, every);
  }, SAMPLE_EVERY_MS);
  const measureFrom = pageOpenedAt + opts.warmup * 1000;
  const measureTo = measureFrom + opts.seconds * 1000;
  while (Date.now() < measureTo) {
    await sleep(Math.min(1000, measureTo - Date.now()));
    check();
    publisherAlive();
  }
  const fromPage = await page.page.evaluate(() => {
    const w = window as any;
    return {
      samples: w.__bench as { t: number; latencyMs: number | null; paused: boolean }[],
      waiting: w.__benchWaiting as number[],
      errors: w.__player.errors as { type: string; details: string; fatal: boolean }[],
      targetLatency: (w.__player.hls?.targetLatency ?? null) as number | null,
      hlsVersion: String(w.Hls?.version ?? ''),
    };
  });
  clientStop.abort();
  await client;
  const clientEndedAt = Date.now();
  const chromiumVersion = browser.version();

  // 7. Reduce.
  const inWindow: PageSample[] = fromPage.samples.filter((s) => s.t >= measureFrom && s.t <= measureTo);
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
    date: startedAt.toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      chromium: chromiumVersion,
      ffmpeg: ffmpegVersion,
      hlsjs: fromPage.hlsVersion,
    },
    setup: {
      source: 'FFmpeg -re lavfi testsrc2 1280x720 30 fps, libx264 ultrafast zerolatency, GOP 30 (1 s), 3000 kb/s; AAC 48 kHz 96 kb/s; RTMP',
      server: 'in-process, default settings, 127.0.0.1',
      profile: opts.profile,
      partTargetS: partTarget,
      partHoldBackS: partHoldBack,
      segmentTargetS: config.hls.segmentTargetMs / 1000,
      warmupS: opts.warmup,
      measureS: opts.seconds,
    },
    playerLatencyS: {
      definition:
        'Date.now() - hls.playingDate in the watch page, every 250 ms while playing, after the warm-up. PROGRAM-DATE-TIME is the ' +
        "server's ingest wall clock, so this is ingest-to-screen latency (encoding and RTMP send time before ingest are not included).",
      ...player,
      samplesWithoutDate: inWindow.length - playing.length,
      waitingEvents: fromPage.waiting.filter((t) => t >= measureFrom && t <= measureTo).length,
      hlsErrors: fromPage.errors,
      hlsTargetLatencyS: fromPage.targetLatency,
      samples: playing.map((s) => [s.t - pageOpenedAt, s.latencyMs]),
      samplesColumns: ['ms since page opened', 'latency ms'],
    },
    blockedAnswerDelayMs: {
      definition:
        'For each _HLS_msn/_HLS_part request: time the whole answer arrived - (PROGRAM-DATE-TIME of the part\'s segment + the part\'s ' +
        'offset in it + its duration), i.e. minus the ingest instant of the first sample after the part, when the part can first be ' +
        'closed. Only requests sent before that instant (held by the server) count, and only answers within the player\'s ' +
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
      clientSeconds: Math.round((clientEndedAt - clientStartedAt) / 1000),
      samples: held.map((s) => [s.arrivedAt - publishedAt, s.msn, s.part, s.arrivedAt - s.sentAt, s.delayMs]),
      samplesColumns: ['ms since publish start', 'msn', 'part', 'held ms', 'delay ms'],
    },
    startup: {
      startServerMs: Math.round(startServerMs),
      startServerNote: 'DATA_DIR already holds the catalog (created by the first separate-process start)',
      coldStart: cold.map((c) => ({ command: c.command, label: c.label, untilHealthzMs: Math.round(c.readyMs), idleRssMB: mb(c.idleRssBytes) })),
    },
    memory: {
      inProcessIdleRssMB: mb(rssIdle),
      inProcessOneStreamRssMB: mb(rssStream),
      afterPublishingS: RSS_AFTER_PUBLISH_S,
      note: 'In-process RSS is the whole bench process (server + tsx + the playlist client), read before the browser driver is loaded.',
    },
  };

  printReport(results, player, answer, answerAboveFastest);
  writeResults(resultsDir(ROOT), 'latency', startedAt, results);
}

main().then(
  () => {
    return shutdown(0);
  },
  (err: unknown) => {
    if (!stop.signal.aborted) console.error(`bench failed: ${(err as Error)?.stack ?? String(err)}`);
    return shutdown(stop.signal.aborted ? 130 : 1);
  },
);
