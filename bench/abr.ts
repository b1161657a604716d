/**
 * ABR ladder bench: `npm run bench:abr -- [--seconds 60] [--warmup 10]`.
 *
 * Makes a 720p30 source file once (GOP 2 s) and measures
 *   1. CPU ratio: the server as its own process with one ABR stream (its FFmpeg makes 480p + 360p, the source
 *      is the top rung) against the floor, plain FFmpeg doing the same ladder to HLS files on its own with
 *      the filter graph and encoder options of buildFfmpegArgs, taking the same RTMP input as ours (FFmpeg
 *      listening, the same publisher); CPU seconds of the process tree over the same window after the same
 *      warm-up (the publisher, `-c copy`, is not counted). The floor reading the file directly is printed
 *      too (no network input at all);
 *   2. player latency with ABR: Date.now() - hls.playingDate on the watch page in headless Chromium, every
 *      250 ms, with the level hls.js plays;
 *   3. the same with a second ABR stream transcoding beside the first (machine CPU busy, both ladders'
 *      speed, lag and dropped rungs).
 * Prints a table and writes bench/results/abr-<date>.json. Bounded in time; kills its children on exit
 * and on SIGINT / SIGTERM.
 */
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LADDER, rungsFor, type LadderRung } from '../src/core/ladder.js';
import { CHROMIUM_PATH } from '../harness/browser.js';
import { freePort, run, terminate } from '../harness/processes.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import { API_TOKEN, createStream, liveOf, pollStatus, transcodeFigures, transcodeMetrics, waitTranscodeRunning } from './lib/abr-api.js';
import { hold, publishLoop, type Child } from './lib/abr-children.js';
import { cpuOf, openCpuWindow, threadDelta, threadTicks } from './lib/abr-cpu.js';
import { measureFloor, SOURCE, SOURCE_ARGS, type FloorContext, type FloorRun } from './lib/abr-floor.js';
import { openPlayer, readPlayer, type Player } from './lib/abr-player.js';
import { printAbrReport } from './lib/abr-report.js';
import { reduce, type Ours, type StopResult } from './lib/abr-results.js';
import { clockTicks } from './lib/cpu.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const opts = parseBenchCli('npm run bench:abr -- [--seconds N (default 60)] [--warmup N (default 10)]');

// ---- shutdown: one path for success, failure, timeout and signals (bench/lib/run.ts) ----

// Source file, floor, server + first stream, player, second stream, shutdown: four measured windows.
const budgetS = 180 + 4 * (opts.warmup + opts.seconds) + 4 * 60 + 60;
const bench = startBenchRun({ budgetS, forceExitMs: 30_000 });
const { cleanups, shutdown, check } = bench;
const stop = { signal: bench.signal };

// ---- what the bench needs ----

/** Stdout of a command that exits 0 within 10 s; undefined otherwise. */
function commandOutput(cmd: string, args: string[]): Promise<string | undefined> {
  return run(cmd, args, 10_000).then(
    (r) => (r.code === 0 ? r.stdout : undefined),
    () => undefined,
  );
}

/** Something the bench needs is not there: reported by its message alone. */
class Missing extends Error {}

async function preflight(): Promise<{ ffmpegVersion: string }> {
  const missing: string[] = [];
  if (process.platform !== 'linux' || !existsSync('/proc/self/stat'))
    missing.push('Linux /proc (CPU times are read from /proc/<pid>/stat)');
  const ffmpeg = await commandOutput('ffmpeg', ['-hide_banner', '-version']);
  if (!ffmpeg) missing.push('ffmpeg on PATH (apt-get install ffmpeg)');
  else {
    const encoders = (await commandOutput('ffmpeg', ['-hide_banner', '-encoders'])) ?? '';
    if (!/\blibx264\b/.test(encoders)) missing.push('an FFmpeg with libx264');
  }
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch {
    missing.push(`Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`);
  }
  if (missing.length) throw new Missing(`cannot run: missing ${missing.join('; ')}`);
  return { ffmpegVersion: ffmpeg!.split('\n')[0] };
}

/** A publisher looping the source file to stream `key` on ours. */
function publish(file: string, server: ServerProcess, key: string, label: string): Child {
  return publishLoop(label, file, `rtmp://127.0.0.1:${server.rtmpPort}/live/${key}`);
}

// ---- the bench, phase by phase ----

const log = (s: string) => console.error(`[bench:abr ${new Date().toISOString().slice(11, 19)}] ${s}`);

/** 0. The 720p30 source file every publisher and the file floor read. */
async function makeSourceFile(tmp: string): Promise<{ file: string; makeSourceS: number }> {
  log('making the 720p30 source file (30 s, GOP 2 s)');
  const file = join(tmp, 'src.flv');
  const t0 = performance.now();
  const label = 'ffmpeg (making the source file)';
  const r = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', ...SOURCE_ARGS, file], 180_000, { signal: stop.signal });
  check();
  if (r.code !== 0) throw new Error(`${label} failed (${r.code ?? r.signal}): ${r.stderr.trim().slice(-1500)}`);
  return { file, makeSourceS: (performance.now() - t0) / 1000 };
}

/** 1b. The floor: plain FFmpeg doing the same ladder on its own, from the file and from RTMP. */
async function measureFloors(
  rungs: readonly LadderRung[],
  src: string,
  tmp: string,
  hz: number,
): Promise<{ file: FloorRun; rtmp: FloorRun }> {
  const ctx: FloorContext = { bench, warmup: opts.warmup, seconds: opts.seconds, hz, log };
  const file = await measureFloor(ctx, 'file', rungs, { file: src }, join(tmp, 'floor-file'));
  const port = await freePort();
  const rtmp = await measureFloor(ctx, 'rtmp', rungs, { listen: `rtmp://127.0.0.1:${port}/live/floor` }, join(tmp, 'floor-rtmp'), (url) =>
    publishLoop('floor publisher', src, url),
  );
  return { file, rtmp };
}

/** 1a. Ours: the server as its own process. */
async function startOurs(tmp: string): Promise<Ours> {
  const dataDir = join(tmp, 'data');
  mkdirSync(dataDir);
  const t0 = performance.now();
  const server = await startServerProcess(ROOT, dataDir, API_TOKEN, stop.signal);
  const ours: Ours = { server, readyMs: Math.round(performance.now() - t0) };
  cleanups.push(async () => {
    ours.stopped ??= await server.stop();
  });
  log(`server pid ${server.pid} on ${server.base}, RTMP port ${server.rtmpPort}`);
  return ours;
}

/** 1a. One ABR stream published to ours: its CPU over a window after the warm-up, against the floors. */
async function measureOursCpu(server: ServerProcess, src: string, hz: number, floors: { file: FloorRun; rtmp: FloorRun }) {
  const stream = await createStream(server.base, 'bench');
  const publisher = publish(src, server, stream.streamKey, 'publisher 1');
  cleanups.push(() => terminate(publisher));
  const untilRunningMs = await waitTranscodeRunning(bench, server, stream.id, publisher, 45_000);
  log(`stream 1 transcode running after ${untilRunningMs} ms; warm-up ${opts.warmup} s, then ${opts.seconds} s of CPU`);
  await hold(bench, Date.now() + opts.warmup * 1000, publisher, server);
  const before = transcodeFigures(await liveOf(server.base, stream.id));
  const ffmpegPid = (await liveOf(server.base, stream.id))?.transcode?.pid ?? undefined;
  const cpuWindow = openCpuWindow(hz);
  const serverThreads0 = threadTicks(server.pid);
  const ffmpegThreads0 = ffmpegPid ? threadTicks(ffmpegPid) : new Map();
  await hold(bench, Date.now() + opts.seconds * 1000, publisher, server);
  const serverThreads1 = threadTicks(server.pid);
  const ffmpegThreads1 = ffmpegPid ? threadTicks(ffmpegPid) : new Map();
  const window = cpuWindow.close();
  const after = transcodeFigures(await liveOf(server.base, stream.id));
  const cpu = cpuOf(window, server.pid);
  const ratio = Number((cpu.cpuS / floors.rtmp.cpu.cpuS).toFixed(3));
  const ratioToFileFloor = Number((cpu.cpuS / floors.file.cpu.cpuS).toFixed(3));
  log(
    `ours: ${cpu.cpuS} CPU s in ${cpu.wallS} s, ratio ${ratio} to the RTMP-in floor, ${ratioToFileFloor} to the file floor (the rest of the machine meanwhile: ${window.outsideBenchCores} cores)`,
  );
  const ladderChanged =
    Boolean(after.transcode?.droppedRungs.length) || (after.transcode?.restarts ?? 0) > (before.transcode?.restarts ?? 0);
  if (ladderChanged) log(`note: stream 1's ladder changed during the CPU window: ${JSON.stringify(after.transcode)}`);
  return {
    stream,
    publisher,
    untilRunningMs,
    before,
    after,
    window,
    cpu,
    ratio,
    ratioToFileFloor,
    ladderChanged,
    threadsOfServer: threadDelta(server.pid, serverThreads0, serverThreads1, hz),
    threadsOfFfmpeg: threadDelta(ffmpegPid ?? 0, ffmpegThreads0, ffmpegThreads1, hz),
  };
}

/** 2. The watch page of `streamId` in headless Chromium (bench/lib/abr-player.ts). */
async function startPlayer(server: ServerProcess, streamId: string): Promise<Player> {
  const player = await openPlayer(bench, server, streamId);
  log(`player opened; warm-up ${opts.warmup} s, then ${opts.seconds} s of latency`);
  return player;
}

/** 2. Player latency with ABR, one stream on the server: the window after the page's warm-up. */
async function watchOneStream(server: ServerProcess, streamId: string, publisher: Child, pageOpenedAt: number, hz: number) {
  const from = pageOpenedAt + opts.warmup * 1000;
  const to = from + opts.seconds * 1000;
  await hold(bench, from, publisher, server);
  const status: unknown[] = [];
  const cpuWindow = openCpuWindow(hz);
  await Promise.all([pollStatus(bench, server.base, to, [streamId], status), hold(bench, to, publisher, server)]);
  const window = cpuWindow.close();
  return { from, to, status, window, statusAtEnd: transcodeFigures(await liveOf(server.base, streamId)) };
}

/** 3. Loaded: a second ABR stream with its own publisher beside the first; the first stream's player again. */
async function watchWithSecondStream(server: ServerProcess, src: string, first: { id: string; publisher: Child }, hz: number) {
  const stream = await createStream(server.base, 'bench-2');
  const publisher = publish(src, server, stream.streamKey, 'publisher 2');
  cleanups.push(() => terminate(publisher));
  const publishedAt = Date.now();
  let untilRunningMs: number | null = null;
  let runningError: string | null = null;
  try {
    untilRunningMs = await waitTranscodeRunning(bench, server, stream.id, publisher, 45_000);
  } catch (err) {
    if (stop.signal.aborted) throw err;
    runningError = (err as Error).message;
    log(`stream 2: ${runningError}`);
  }
  log(
    `stream 2 transcode ${untilRunningMs === null ? 'not running' : `running after ${untilRunningMs} ms`}; warm-up ${opts.warmup} s, then ${opts.seconds} s loaded`,
  );
  const from = Date.now() + opts.warmup * 1000;
  const to = from + opts.seconds * 1000;
  await hold(bench, from, first.publisher, publisher, server);
  const status: unknown[] = [];
  const cpuWindow = openCpuWindow(hz);
  await Promise.all([
    pollStatus(bench, server.base, to, [first.id, stream.id], status),
    hold(bench, to, first.publisher, publisher, server),
  ]);
  const window = cpuWindow.close();
  const statusAtEnd = [transcodeFigures(await liveOf(server.base, first.id)), transcodeFigures(await liveOf(server.base, stream.id))];
  return {
    publisher,
    publishedAt,
    untilRunningMs,
    runningError,
    from,
    to,
    status,
    window,
    statusAtEnd,
    metrics: await transcodeMetrics(server),
  };
}

/** Stop the publishers and the server (SIGTERM, waited for). */
async function stopOurs(ours: Ours, publishers: readonly Child[]): Promise<StopResult> {
  await Promise.all(publishers.map((p) => terminate(p)));
  const stopped = (ours.stopped = await ours.server.stop());
  log(`server stopped in ${stopped.ms} ms (${stopped.code ?? stopped.signal}${stopped.killed ? ', killed' : ''})`);
  return stopped;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const { ffmpegVersion } = await preflight();
  const hz = await clockTicks();
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-abr-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  const rungs = rungsFor(DEFAULT_LADDER, SOURCE);

  const source = await makeSourceFile(tmp);
  const floors = await measureFloors(rungs, source.file, tmp, hz);
  const ours = await startOurs(tmp);
  const cpu = await measureOursCpu(ours.server, source.file, hz, floors);
  const player = await startPlayer(ours.server, cpu.stream.id);
  const one = await watchOneStream(ours.server, cpu.stream.id, cpu.publisher, player.openedAt, hz);
  const two = await watchWithSecondStream(ours.server, source.file, { id: cpu.stream.id, publisher: cpu.publisher }, hz);
  const dump = await readPlayer(player);
  const chromiumVersion = player.browser.version();
  const pageErrors = player.page.pageErrors.map((e) => e.message);
  const stopped = await stopOurs(ours, [cpu.publisher, two.publisher]);

  const { results, oneLatency, twoLatency } = reduce({
    startedAt,
    opts,
    ffmpegVersion,
    hz,
    rungs,
    source,
    floors,
    ours,
    cpu,
    one,
    two,
    dump,
    chromiumVersion,
    pageErrors,
    stopped,
  });
  printAbrReport(results, oneLatency, twoLatency);
  writeResults(resultsDir(ROOT), 'abr', startedAt, results);
}

main().then(
  () => {
    return shutdown(0);
  },
  (err: unknown) => {
    if (!stop.signal.aborted)
      console.error(
        `bench failed: ${err instanceof Missing ? err.message : err instanceof Error ? (err.stack ?? String(err)) : String(err)}`,
      );
    return shutdown(stop.signal.aborted ? 130 : 1);
  },
);
