/**
 * WHIP bench: `npm run bench:whip -- [--seconds 30] [--warmup 10]`.
 *
 * Starts the server as its own process (as `npm start` does) on 127.0.0.1, makes one 1280x720 30 fps test
 * picture (a y4m file), and measures, one after the other on two streams (profile passthrough):
 *   1. WHIP: headless Chromium publishes that picture from the /publish page (fake camera from the file,
 *      fake microphone; H.264 + Opus); a second page plays the stream with hls.js (the watch page).
 *   2. RTMP: FFmpeg publishes the same picture (libx264 veryfast zerolatency at the same bitrate, AAC);
 *      the same watch page plays it.
 * For each: player latency (Date.now() - hls.playingDate every 250 ms, as bench:latency) and the CPU the
 * server's process tree used (the server, and for WHIP its Opus -> AAC FFmpeg). Prints a table and writes
 * bench/results/whip-<date>.json. Bounded in time; kills its children on exit and on SIGINT / SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { kill } from '../harness/processes.js';
import { openPage } from '../harness/browser.js';
import { clockTicks, subtree, TreeCpu, type TreeCpuResult } from './lib/cpu.js';
import { request } from '../harness/http.js';
import { track } from '../harness/processes.js';
import { resultsDir, gitCommit, writeResults } from './lib/results.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import { rounded, summarize, type Summary } from './lib/stats.js';
import { launchPublisherBrowser, publishFromPage } from '../harness/whip-clients.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'bench-token-0123456789abcdef';
const SAMPLE_EVERY_MS = 250;
const BITRATE_KBPS = 2500;
const SIZE = { w: 1280, h: 720, fps: 30 };

const cli = parseBenchCli('npm run bench:whip -- [--seconds N (default 30)] [--warmup N (default 10)]');
const seconds = process.argv.includes('--seconds') ? cli.seconds : 30;
const warmup = cli.warmup;
const bench = startBenchRun({ budgetS: 2 * (warmup + seconds + 60) + 120, forceExitMs: 15_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;

interface PhaseResult {
  readonly latencyS: Summary & { samplesWithoutDate: number; waitingEvents: number; fatalErrors: number };
  readonly cpu: {
    serverPercentOfOneCore: number;
    serverTreePercentOfOneCore: number;
    ffmpegPercentOfOneCore: number;
    processes: TreeCpuResult['processes'];
  };
  readonly ingest: { bitrateKbps: number; fps: number; width?: number; height?: number };
  readonly extra?: unknown;
}

async function createStream(base: string, name: string): Promise<{ id: string; streamKey: string }> {
  const r = await request('POST', `${base}/api/v1/streams`, {
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, profile: 'passthrough', record: false }),
  });
  if (r.status !== 201) throw new Error(`creating a stream answered ${r.status}: ${r.body}`);
  return JSON.parse(r.body);
}

async function liveStatus(base: string, id: string): Promise<any> {
  const r = await request('GET', `${base}/api/v1/streams/${id}/live`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  return r.status === 200 ? JSON.parse(r.body) : undefined;
}

/** Watches `id` in a page, samples the latency for the window and the server's CPU over the same window. */
async function measure(browser: Browser, server: ServerProcess, hz: number, id: string): Promise<PhaseResult> {
  await waitFor('playlist', async () => (await request('GET', `${server.base}/live/${id}/source/index.m3u8`)).status === 200, 30_000, {
    tolerateErrors: true,
    stepMs: 250,
  });
  const watch = await openPage(browser, `${server.base}/watch/${id}`);
  cleanups.push(() => watch.close());
  const page: Page = watch.page;
  await page.evaluate((every) => {
    const w = window as any;
    w.__bench = [];
    w.__benchWaiting = [];
    w.__player.video.addEventListener('waiting', () => w.__benchWaiting.push(Date.now()));
    setInterval(() => {
      const hls = w.__player.hls;
      const pd: Date | null = hls ? hls.playingDate : null;
      w.__bench.push({ t: Date.now(), latencyMs: pd ? Date.now() - pd.getTime() : null, paused: w.__player.video.paused });
    }, every);
  }, SAMPLE_EVERY_MS);
  await sleep(warmup * 1000);
  check();
  const from = Date.now();
  const cpu = new TreeCpu(server.pid, hz);
  cpu.start(1000);
  await sleep(seconds * 1000);
  check();
  const tree = cpu.stop();
  const to = Date.now();
  const status = await liveStatus(server.base, id);
  const fromPage = await page.evaluate(() => {
    const w = window as any;
    return {
      samples: w.__bench as { t: number; latencyMs: number | null; paused: boolean }[],
      waiting: w.__benchWaiting as number[],
      errors: w.__player.errors as { fatal: boolean }[],
    };
  });
  await watch.close();
  const inWindow = fromPage.samples.filter((s) => s.t >= from && s.t <= to);
  const playing = inWindow.filter((s) => s.latencyMs !== null && !s.paused);
  const serverOnly = tree.processes.filter((p) => p.pid === server.pid).reduce((a, p) => a + p.cpuS, 0);
  const ffmpeg = subtree(tree, server.pid)
    .filter((p) => p.comm.startsWith('ffmpeg'))
    .reduce((a, p) => a + p.cpuS, 0);
  const pct = (s: number) => Math.round((s / tree.wallS) * 1000) / 10;
  return {
    latencyS: {
      ...rounded(summarize(playing.map((s) => s.latencyMs! / 1000)), 3),
      samplesWithoutDate: inWindow.length - playing.length,
      waitingEvents: fromPage.waiting.filter((t) => t >= from && t <= to).length,
      fatalErrors: fromPage.errors.filter((e) => e.fatal).length,
    },
    cpu: {
      serverPercentOfOneCore: pct(serverOnly),
      serverTreePercentOfOneCore: tree.percentOfOneCore,
      ffmpegPercentOfOneCore: pct(ffmpeg),
      processes: tree.processes,
    },
    ingest: { bitrateKbps: status?.bitrateKbps ?? 0, fps: status?.fps ?? 0, width: status?.video?.width, height: status?.video?.height },
  };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const hz = await clockTicks();
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-bench-whip-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  // The picture: 2 s of testsrc2 (moving, with detail), looped by both publishers.
  const y4m = join(tmp, 'picture.y4m');
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${SIZE.w}x${SIZE.h}:rate=${SIZE.fps}`,
    '-t',
    '2',
    '-pix_fmt',
    'yuv420p',
    '-y',
    y4m,
  ]);

  const server = await startServerProcess(ROOT, join(tmp, 'data'), API_TOKEN, bench.signal, { RECONNECT_GRACE_MS: '2000' });
  cleanups.push(() => server.stop());
  const browser = await launchPublisherBrowser({ y4m });
  cleanups.push(() => browser.close());

  // 1. WHIP from the browser.
  const whipStream = await createStream(server.base, 'bench-whip');
  const pub = await publishFromPage(browser, server.base, whipStream.streamKey, {
    resolution: `${SIZE.w}x${SIZE.h}`,
    bitrateKbps: BITRATE_KBPS,
  });
  cleanups.push(() => pub.close());
  await waitFor('WHIP live', async () => (await pub.state()).state === 'live', 20_000, { stepMs: 200 });
  const whip = await measure(browser, server, hz, whipStream.id);
  const pageStats = (await pub.state()).stats;
  const webrtc = JSON.parse(
    (await request('GET', `${server.base}/api/v1/streams/${whipStream.id}/webrtc`, { headers: { authorization: `Bearer ${API_TOKEN}` } }))
      .body,
  ).sessions[0];
  await pub.stop();
  await pub.close();

  // 2. RTMP from FFmpeg, same picture and bitrate.
  const rtmpStream = await createStream(server.base, 'bench-rtmp');
  const ff = track(
    (await import('node:child_process')).spawn(
      'ffmpeg',
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-re',
        '-stream_loop',
        '-1',
        '-i',
        y4m,
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:sample_rate=48000',
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-tune',
        'zerolatency',
        '-b:v',
        `${BITRATE_KBPS}k`,
        '-maxrate',
        `${BITRATE_KBPS}k`,
        '-bufsize',
        `${BITRATE_KBPS}k`,
        '-g',
        String(SIZE.fps * 2),
        '-pix_fmt',
        'yuv420p',
        '-c:a',
        'aac',
        '-b:a',
        '128k',
        '-f',
        'flv',
        `rtmp://127.0.0.1:${server.rtmpPort}/live/${rtmpStream.streamKey}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  cleanups.push(() => kill(ff));
  await waitFor('RTMP live', async () => Boolean(await liveStatus(server.base, rtmpStream.id)), 20_000, {
    tolerateErrors: true,
    stepMs: 200,
  });
  const rtmp = await measure(browser, server, hz, rtmpStream.id);
  await kill(ff);

  const results = {
    date: startedAt.toISOString(),
    commit: gitCommit(ROOT),
    environment: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, chromium: browser.version() },
    setup: {
      picture: `testsrc2 ${SIZE.w}x${SIZE.h} ${SIZE.fps} fps (2 s y4m, looped)`,
      whip: `Chromium fake camera from the y4m, /publish page, H.264 (browser encoder) at up to ${BITRATE_KBPS} kb/s + Opus from the fake microphone`,
      rtmp: `FFmpeg libx264 veryfast zerolatency ${BITRATE_KBPS} kb/s, GOP 2 s, AAC 128 kb/s`,
      server: 'own process (npm start flags), 127.0.0.1, profile passthrough, no recording',
      warmupS: warmup,
      measureS: seconds,
      latencyDefinition:
        'Date.now() - hls.playingDate on the watch page while playing: ingest wall clock (PROGRAM-DATE-TIME) to screen, as bench:latency',
      cpuDefinition: 'CPU time of the server process (and its children: the Opus -> AAC FFmpeg for WHIP) over the window, % of one core',
    },
    whip: { ...whip, publisherPage: pageStats, session: webrtc },
    rtmp,
  };
  const row = (name: string, r: PhaseResult) =>
    `${name.padEnd(6)} latency p50 ${r.latencyS.p50.toFixed(2)} s  p95 ${r.latencyS.p95.toFixed(2)} s  (${r.latencyS.n} samples, ${r.latencyS.waitingEvents} stalls)   ` +
    `CPU server ${r.cpu.serverPercentOfOneCore} %  + FFmpeg ${r.cpu.ffmpegPercentOfOneCore} %  = ${r.cpu.serverTreePercentOfOneCore} % of a core   ` +
    `ingest ${r.ingest.width}x${r.ingest.height} ${r.ingest.fps} fps ${r.ingest.bitrateKbps} kb/s`;
  console.log('\nWHIP vs RTMP ingest, same picture, passthrough');
  console.log(row('WHIP', whip));
  console.log(row('RTMP', rtmp));
  console.log(
    `WHIP reception: loss ${webrtc?.video?.lossPercent} %, jitter ${webrtc?.video?.jitterMs} ms, NACKs ${webrtc?.video?.nacks}, PLIs ${webrtc?.video?.plis} (for loss ${webrtc?.video?.keyframeRequestsForLoss}), sync ${webrtc?.sync}`,
  );
  writeResults(resultsDir(ROOT), 'whip', startedAt, results);
}

main().then(
  () => shutdown(0),
  (err: unknown) => {
    if (!bench.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return shutdown(bench.signal.aborted ? 130 : 1);
  },
);
