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
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Request } from 'playwright-core';
import { DEFAULT_LADDER, rungsFor, type LadderRung } from '../src/core/ladder.js';
import { buildFfmpegArgs } from '../src/livetranscode/args.js';
import { CHROMIUM_PATH, launchBrowser, openPage, type OpenedPage } from '../harness/browser.js';
import { printAbrReport } from './lib/abr-report.js';
import { busyPercent, clockTicks, machineCpu, subtree, TreeCpu, type ProcCpu, type TreeCpuResult } from './lib/cpu.js';
import { request } from '../harness/http.js';
import { freePort, run, spawnLogged, terminate, type LoggedChild } from '../harness/processes.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import { rounded, summarize } from './lib/stats.js';
import { resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'bench-token-0123456789abcdef';
const SAMPLE_EVERY_MS = 250;
const SLOW_REQUEST_MS = 1000;
const slowRequests: { endedAt: number; ms: number; url: string; failure?: string }[] = [];
const SOURCE = { width: 1280, height: 720, frameRate: 30 } as const;
const X264_PRESET = 'veryfast';
const SOURCE_ARGS = [
  '-f',
  'lavfi',
  '-i',
  'testsrc2=size=1280x720:rate=30',
  '-f',
  'lavfi',
  '-i',
  'sine=frequency=440:sample_rate=48000',
  '-t',
  '30',
  '-c:v',
  'libx264',
  '-preset',
  'veryfast',
  '-g',
  '60',
  '-keyint_min',
  '60',
  '-sc_threshold',
  '0',
  '-b:v',
  '3000k',
  '-maxrate',
  '3000k',
  '-bufsize',
  '3000k',
  '-pix_fmt',
  'yuv420p',
  '-c:a',
  'aac',
  '-b:a',
  '96k',
  '-ar',
  '48000',
  '-f',
  'flv',
];
const HLS_OUT = ['-f', 'hls', '-hls_time', '2', '-hls_list_size', '6', '-hls_flags', 'delete_segments', '-hls_segment_type', 'fmp4'];

const opts = parseBenchCli('npm run bench:abr -- [--seconds N (default 60)] [--warmup N (default 10)]');

// ---- shutdown: one path for success, failure, timeout and signals (bench/lib/run.ts) ----

// Source file, floor, server + first stream, player, second stream, shutdown: four measured windows.
const budgetS = 180 + 4 * (opts.warmup + opts.seconds) + 4 * 60 + 60;
const bench = startBenchRun({ budgetS, forceExitMs: 30_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;
const stop = { signal: bench.signal };

// ---- children ----

/** A tracked child (harness/processes.ts) with the tail of its stderr and a name for error messages. */
type Child = LoggedChild & { label: string };

function spawnLabelled(label: string, cmd: string, args: string[], cwd?: string): Child {
  return Object.assign(spawnLogged(cmd, args, { cwd }), { label });
}

function assertAlive(...children: (Child | ServerProcess | undefined)[]): void {
  for (const c of children) {
    if (!c) continue;
    if ('label' in c) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`${c.label} stopped (${c.exitCode ?? c.signalCode}): ${c.stderrText().trim().slice(-1500)}`);
      }
    } else if (!c.alive()) {
      throw new Error(`the server stopped (${c.child.exitCode ?? c.child.signalCode}): ${c.stderrText().trim().slice(-1500)}`);
    }
  }
}

/** Stdout of a command that exits 0 within 10 s; undefined otherwise. */
function commandOutput(cmd: string, args: string[]): Promise<string | undefined> {
  return run(cmd, args, 10_000).then(
    (r) => (r.code === 0 ? r.stdout : undefined),
    () => undefined,
  );
}

// ---- what the bench needs ----

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

// ---- the floor: buildFfmpegArgs turned into a plain FFmpeg writing HLS files ----

/**
 * buildFfmpegArgs for this source, with the progress pipe dropped, the FLV pipe input replaced by the
 * input (the file read in real time in a loop, or an RTMP URL FFmpeg listens on for the same publisher as
 * ours), each rung's FLV pipe output replaced by an HLS output with the source's audio copied in (our
 * rungs carry it too; the transcoder adds it), and the source copied as-is as one more HLS output (the top
 * rung). The decoder keeps the server's `-thread_type slice`.
 */
function floorArgs(rungs: readonly LadderRung[], input: { file: string } | { listen: string }, outDir: string): string[] {
  const server = buildFfmpegArgs({ rungs, source: SOURCE, x264Preset: X264_PRESET, vaapiDevice: '/dev/dri/renderD128' });
  const out: string[] = [];
  let rung = 0;
  for (let i = 0; i < server.length; i++) {
    const a = server[i];
    const next = server[i + 1];
    if (a === '-progress' || a === '-stats_period' || a === '-probesize' || a === '-analyzeduration') {
      i++; // and its value
    } else if (a === '-f' && next === 'flv' && server[i + 2] === '-i') {
      out.push(...('file' in input ? ['-re', '-stream_loop', '-1', '-i', input.file] : ['-listen', '1', '-f', 'flv', '-i', input.listen]));
      i += 3; // -f flv -i pipe:0
    } else if (a === '-flvflags') {
      i++; // an FLV muxer option; the HLS muxer would refuse it
    } else if (a === '-f' && next === 'flv' && /^pipe:\d+$/.test(server[i + 2] ?? '')) {
      out.push('-map', '0:a', '-c:a', 'copy', ...HLS_OUT, join(outDir, rungs[rung++].name, 'index.m3u8'));
      i += 2;
    } else {
      out.push(a);
    }
  }
  if (rung !== rungs.length) throw new Error(`buildFfmpegArgs has ${rung} FLV pipe outputs for ${rungs.length} rungs: ${server.join(' ')}`);
  out.push('-map', '0:v', '-map', '0:a', '-c', 'copy', ...HLS_OUT, join(outDir, 'source', 'index.m3u8'));
  return out;
}

// ---- the server's API ----

const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };

interface RungView {
  name: string;
  height: number;
  width: number | null;
  state: string;
  fps: number;
  bitrateKbps: number;
  targetBitrateKbps: number;
}
interface TranscodeView {
  state: string;
  pid: number | null;
  speed: number | null;
  lagMs: number | null;
  restarts: number;
  lastError: string | null;
  droppedRungs: string[];
  rungs: RungView[];
}
interface LiveView {
  state: string;
  fps: number;
  bitrateKbps: number;
  video: { width: number; height: number } | null;
  transcode: TranscodeView | null;
}

async function createStream(base: string, name: string): Promise<{ id: string; streamKey: string; profile: string }> {
  const r = await request('POST', `${base}/api/v1/streams`, { headers: auth, body: JSON.stringify({ name }) });
  if (r.status !== 201) throw new Error(`creating stream "${name}" answered ${r.status}: ${r.body}`);
  const s = JSON.parse(r.body) as { id: string; streamKey: string; profile: string };
  if (s.profile !== 'abr') throw new Error(`stream "${name}" was created with profile ${s.profile}, not abr`);
  return s;
}

async function liveOf(base: string, id: string): Promise<LiveView | undefined> {
  const r = await request('GET', `${base}/api/v1/streams/${id}/live`, { headers: auth, timeoutMs: 5000 }).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.body) as LiveView) : undefined;
}

/** The figures of a transcode status worth keeping. */
function transcodeFigures(live: LiveView | undefined) {
  const t = live?.transcode;
  if (!t) return { sourceFps: live?.fps ?? null, sourceKbps: live?.bitrateKbps ?? null, transcode: null };
  return {
    sourceFps: live.fps,
    sourceKbps: live.bitrateKbps,
    transcode: {
      state: t.state,
      speed: t.speed === null ? null : Number(t.speed.toFixed(3)),
      lagMs: t.lagMs,
      restarts: t.restarts,
      lastError: t.lastError,
      droppedRungs: t.droppedRungs,
      rungs: t.rungs.map((r) => ({
        name: r.name,
        size: r.width ? `${r.width}x${r.height}` : `?x${r.height}`,
        state: r.state,
        fps: r.fps,
        bitrateKbps: r.bitrateKbps,
        targetKbps: r.targetBitrateKbps,
      })),
    },
  };
}

function publish(file: string, server: ServerProcess, key: string, label: string): Child {
  return spawnLabelled(label, 'ffmpeg', [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-re',
    '-stream_loop',
    '-1',
    '-i',
    file,
    '-c',
    'copy',
    '-f',
    'flv',
    `rtmp://127.0.0.1:${server.rtmpPort}/live/${key}`,
  ]);
}

async function waitTranscodeRunning(server: ServerProcess, id: string, publisher: Child, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last: LiveView | undefined;
  try {
    await waitFor(
      'transcode running',
      async () => {
        assertAlive(publisher, server);
        last = await liveOf(server.base, id);
        return last?.transcode?.state === 'running';
      },
      timeoutMs,
      { stepMs: 200 },
    );
  } catch (err) {
    if (stop.signal.aborted) throw err;
    throw new Error(
      `${(err as Error).message}; last status: ${JSON.stringify(last?.transcode ?? last ?? null)}; server stderr: ${server.stderrText().trim().slice(-1500)}`,
      {
        cause: err,
      },
    );
  }
  return Date.now() - t0;
}

/** Sleep until `until` (epoch ms), checking the children every second. */
async function hold(until: number, ...alive: (Child | ServerProcess | undefined)[]): Promise<void> {
  while (Date.now() < until) {
    await sleep(Math.min(1000, until - Date.now()));
    check();
    assertAlive(...alive);
  }
}

/** CPU seconds of each thread of a process by thread name (utime + stime), for "where does the CPU go". */
function threadTicks(pid: number): Map<string, { comm: string; ticks: number }> {
  const out = new Map<string, { comm: string; ticks: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const close = text.lastIndexOf(')');
      const f = text.slice(close + 2).split(' ');
      out.set(tid, { comm: text.slice(text.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* thread gone */
    }
  }
  return out;
}

function threadDelta(
  pid: number,
  a: Map<string, { comm: string; ticks: number }>,
  b: Map<string, { comm: string; ticks: number }>,
  hz: number,
): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const [tid, v] of b) {
    const d = (v.ticks - (a.get(tid)?.ticks ?? 0)) / hz;
    // Node and FFmpeg leave most thread names alone: the main thread apart, the others by name.
    const name = tid === String(pid) ? `main thread (${v.comm})` : `other threads (${v.comm.replace(/\d+$/, '#')})`;
    byName[name] = Number(((byName[name] ?? 0) + d).toFixed(2));
  }
  return Object.fromEntries(
    Object.entries(byName)
      .sort((x, y) => y[1] - x[1])
      .filter(([, s]) => s >= 0.01),
  );
}

/** Group the processes of a bench-wide CPU window by role. */
function cpuByRole(result: TreeCpuResult, roles: { server?: number; publishers: Set<number>; benchPid: number }): Record<string, number> {
  const inServer = new Set(roles.server ? subtree(result, roles.server).map((p) => p.pid) : []);
  const groups: Record<string, number> = {};
  const add = (k: string, p: ProcCpu) => (groups[k] = Number(((groups[k] ?? 0) + p.cpuS).toFixed(2)));
  for (const p of result.processes) {
    if (p.pid === roles.server) add('server node', p);
    else if (inServer.has(p.pid)) add(p.comm === 'ffmpeg' ? 'server ffmpeg' : `server ${p.comm}`, p);
    else if (roles.publishers.has(p.pid)) add('publishers (ffmpeg -c copy)', p);
    else if (/chrom/i.test(p.comm)) add('chromium', p);
    else if (p.pid === roles.benchPid) add('bench (node, playwright)', p);
    else add(`other: ${p.comm}`, p);
  }
  return groups;
}

// ---- CPU windows ----

interface CpuWindow {
  /** The bench's whole process tree: the server and its FFmpeg, publishers, Chromium, the bench itself. */
  readonly all: TreeCpuResult;
  /** Busy % of all the machine's CPUs (100 = every core), from /proc/stat. */
  readonly machineBusyPercent: number;
  /** Cores' worth of CPU the bench's tree used, and what the rest of the machine used meanwhile. */
  readonly benchCores: number;
  readonly outsideBenchCores: number;
}

/** Start measuring the bench's process tree and the machine; close() ends the window. */
function openCpuWindow(hz: number): { close(): CpuWindow } {
  const tree = new TreeCpu(process.pid, hz);
  const m0 = machineCpu();
  tree.start();
  return {
    close() {
      const all = tree.stop();
      const machineBusyPercent = busyPercent(m0, machineCpu());
      const benchCores = all.cpuS / all.wallS;
      const machineCores = (machineBusyPercent / 100) * cpus().length;
      return { all, machineBusyPercent, benchCores: round2(benchCores), outsideBenchCores: round2(Math.max(0, machineCores - benchCores)) };
    },
  };
}

const round2 = (x: number) => Number(x.toFixed(2));

function cpuOf(w: CpuWindow, pid: number): { cpuS: number; wallS: number; percentOfOneCore: number; processes: ProcCpu[] } {
  const processes = subtree(w.all, pid);
  const cpuS = round2(processes.reduce((a, p) => a + p.cpuS, 0));
  return { cpuS, wallS: w.all.wallS, percentOfOneCore: Number(((cpuS / w.all.wallS) * 100).toFixed(1)), processes };
}

// ---- the player ----

interface PageSample {
  t: number;
  latencyMs: number | null;
  paused: boolean;
  level: number;
  height: number | null;
  /** hls.targetLatency (s): hls.js raises it by a second on each stall. */
  target: number | null;
  rate: number;
  /** Seconds buffered ahead of the playhead. */
  ahead: number | null;
  /** How many hls.js error events there were so far. */
  errors: number;
}

interface PageDump {
  samples: PageSample[];
  waiting: number[];
  playing: number[];
  errors: { type: string; details: string; fatal: boolean }[];
  levels: { height: number; width: number; bitrate: number }[];
  bandwidthEstimate: number | null;
  hlsVersion: string;
}

function playerFigures(dump: PageDump, from: number, to: number) {
  const inWindow = dump.samples.filter((s) => s.t >= from && s.t <= to);
  const playing = inWindow.filter((s) => s.latencyMs !== null && !s.paused);
  const latency = rounded(summarize(playing.map((s) => s.latencyMs! / 1000)), 3);
  const heights: Record<string, number> = {};
  for (const s of inWindow) {
    const k = s.height ? `${s.height}p` : `level ${s.level}`;
    heights[k] = (heights[k] ?? 0) + 1;
  }
  const levelShare = Object.fromEntries(
    Object.entries(heights).map(([k, n]) => [k, Number((n / Math.max(1, inWindow.length)).toFixed(3))]),
  );
  let switches = 0;
  for (let i = 1; i < inWindow.length; i++) if (inWindow[i].level !== inWindow[i - 1].level) switches++;
  const first = inWindow.at(0);
  const last = inWindow.at(-1);
  const errors = first && last ? dump.errors.slice(first.errors, last.errors) : [];
  // Stalled time: from each 'waiting' to the next 'playing' (or the window's end), clipped to the window.
  const stalls = dump.waiting.filter((t) => t >= from && t <= to);
  let stalledMs = 0;
  for (const w of dump.waiting) {
    const resumed = dump.playing.find((p) => p >= w) ?? to;
    stalledMs += Math.max(0, Math.min(resumed, to) - Math.max(w, from));
  }
  return {
    latency,
    samplesWithoutDate: inWindow.length - playing.length,
    waitingEvents: stalls.length,
    stalledS: Number((stalledMs / 1000).toFixed(2)),
    hlsErrors: errors,
    hlsTargetLatencyS: { atStart: first?.target ?? null, atEnd: last?.target ?? null },
    levelAtEnd: last ? { level: last.level, height: last.height } : null,
    levelShare,
    levelSwitches: switches,
    samples: inWindow.map((s) => [s.t - from, s.latencyMs, s.height, s.target, s.rate, s.ahead, s.paused ? 1 : 0]),
    samplesColumns: [
      'ms since window start',
      'latency ms (null: no playing date)',
      'height played',
      'hls.targetLatency s',
      'playbackRate',
      'buffered ahead s',
      'paused',
    ],
    slowRequests: slowRequests
      .filter((x) => x.endedAt >= from && x.endedAt - x.ms <= to)
      .map(({ endedAt, ...x }) => ({ sentAtMsInWindow: endedAt - x.ms - from, ...x })),
  };
}

// ---- the floor, measured ----

interface FloorRun {
  readonly input: 'file' | 'rtmp';
  readonly args: string[];
  readonly cpu: ReturnType<typeof cpuOf>;
  readonly window: CpuWindow;
  readonly threads: ReturnType<typeof threadDelta>;
  readonly segmentsOnDisk: Record<string, number>;
  readonly stderrTail: string[];
}

/**
 * Plain FFmpeg doing the ladder to HLS files for a warm-up and a CPU window. `input` is the file read in
 * real time, or an RTMP URL FFmpeg listens on, published to by `publisher` (not counted, like ours).
 */
async function measureFloor(
  kind: 'file' | 'rtmp',
  rungs: readonly LadderRung[],
  input: { file: string } | { listen: string },
  dir: string,
  hz: number,
  log: (s: string) => void,
  publisher?: (url: string) => Child,
): Promise<FloorRun> {
  for (const d of [...rungs.map((r) => r.name), 'source']) mkdirSync(join(dir, d), { recursive: true });
  const args = floorArgs(rungs, input, dir);
  log(`floor (${kind}): plain FFmpeg, warm-up ${opts.warmup} s, then ${opts.seconds} s of CPU`);
  const floor = spawnLabelled(`floor FFmpeg (${kind})`, 'ffmpeg', args, dir);
  cleanups.push(() => terminate(floor));
  let pub: Child | undefined;
  if (publisher && 'listen' in input) {
    await sleep(1000); // FFmpeg listening
    pub = publisher(input.listen);
    cleanups.push(() => terminate(pub));
  }
  await hold(Date.now() + opts.warmup * 1000, floor, pub);
  const window = openCpuWindow(hz);
  const threads0 = threadTicks(floor.pid!);
  await hold(Date.now() + opts.seconds * 1000, floor, pub);
  const threads1 = threadTicks(floor.pid!);
  const w = window.close();
  const cpu = cpuOf(w, floor.pid!);
  const segmentsOnDisk = Object.fromEntries(
    [...rungs.map((r) => r.name), 'source'].map((d) => [d, readdirSync(join(dir, d)).filter((f) => f.endsWith('.m4s')).length]),
  );
  await terminate(pub);
  await terminate(floor);
  if (Object.values(segmentsOnDisk).some((n) => n === 0)) {
    throw new Error(
      `the floor FFmpeg (${kind}) wrote no segments for some output: ${JSON.stringify(segmentsOnDisk)}; ${floor.stderrText().trim().slice(-1500)}`,
    );
  }
  log(`floor (${kind}): ${cpu.cpuS} CPU s in ${cpu.wallS} s (the rest of the machine meanwhile: ${w.outsideBenchCores} cores)`);
  const stderrTail = floor.stderrText().trim().split('\n').filter(Boolean).slice(-10);
  return { input: kind, args, cpu, window: w, threads: threadDelta(floor.pid!, threads0, threads1, hz), segmentsOnDisk, stderrTail };
}

function floorResult(f: FloorRun, load: (w: CpuWindow) => object) {
  return {
    what:
      'plain FFmpeg: buildFfmpegArgs for this source without -progress, the FLV pipe input replaced by ' +
      (f.input === 'file'
        ? 'the file read in real time in a loop'
        : 'an RTMP URL FFmpeg listens on (-listen 1), published to like ours (ffmpeg -re -stream_loop -1 -c copy, not counted)') +
      ' (the decoder keeps -thread_type slice), each FLV pipe output (and its -flvflags) replaced by HLS fMP4 files with the ' +
      "source's audio copied in, plus the source copied as one more HLS output",
    command: `ffmpeg ${f.args.join(' ')}`,
    cpuS: f.cpu.cpuS,
    wallS: f.cpu.wallS,
    percentOfOneCore: f.cpu.percentOfOneCore,
    threads: f.threads,
    ...load(f.window),
    segmentsOnDisk: f.segmentsOnDisk,
    stderrTail: f.stderrTail,
  };
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
  const file = await measureFloor('file', rungs, { file: src }, join(tmp, 'floor-file'), hz, log);
  const port = await freePort();
  const rtmp = await measureFloor(
    'rtmp',
    rungs,
    { listen: `rtmp://127.0.0.1:${port}/live/floor` },
    join(tmp, 'floor-rtmp'),
    hz,
    log,
    (url) =>
      spawnLabelled('floor publisher', 'ffmpeg', [
        '-hide_banner',
        '-nostdin',
        '-loglevel',
        'error',
        '-re',
        '-stream_loop',
        '-1',
        '-i',
        src,
        '-c',
        'copy',
        '-f',
        'flv',
        url,
      ]),
  );
  return { file, rtmp };
}

type StopResult = Awaited<ReturnType<ServerProcess['stop']>>;

/** The server under test and how its stop went (set once it was stopped, by the bench or by a cleanup). */
interface Ours {
  readonly server: ServerProcess;
  readonly readyMs: number;
  stopped?: StopResult;
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
  const untilRunningMs = await waitTranscodeRunning(server, stream.id, publisher, 45_000);
  log(`stream 1 transcode running after ${untilRunningMs} ms; warm-up ${opts.warmup} s, then ${opts.seconds} s of CPU`);
  await hold(Date.now() + opts.warmup * 1000, publisher, server);
  const before = transcodeFigures(await liveOf(server.base, stream.id));
  const ffmpegPid = (await liveOf(server.base, stream.id))?.transcode?.pid ?? undefined;
  const cpuWindow = openCpuWindow(hz);
  const serverThreads0 = threadTicks(server.pid);
  const ffmpegThreads0 = ffmpegPid ? threadTicks(ffmpegPid) : new Map();
  await hold(Date.now() + opts.seconds * 1000, publisher, server);
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

/**
 * 2. The watch page of `streamId` in headless Chromium, sampling hls.js every SAMPLE_EVERY_MS and noting
 * the requests that took over a second (blocking reloads and preload hints are held for about a part,
 * 0.2 s) or failed: what the player waited for when it stalls.
 */
async function openPlayer(server: ServerProcess, streamId: string): Promise<{ browser: Browser; page: OpenedPage; openedAt: number }> {
  const browser: Browser = await launchBrowser();
  cleanups.push(() => browser.close());
  const page = await openPage(browser, `${server.base}/watch/${streamId}`);
  const openedAt = Date.now();
  const sentAt = new WeakMap<object, number>();
  page.page.on('request', (req) => sentAt.set(req, Date.now()));
  const settled = (req: Request, failure?: string) => {
    const t = sentAt.get(req);
    const ms = t === undefined ? 0 : Date.now() - t;
    if ((failure || ms > SLOW_REQUEST_MS) && slowRequests.length < 500) {
      slowRequests.push({ endedAt: Date.now(), ms, url: req.url().replace(server.base, ''), ...(failure ? { failure } : {}) });
    }
  };
  page.page.on('requestfinished', (req) => settled(req));
  page.page.on('requestfailed', (req) => settled(req, req.failure()?.errorText ?? 'failed'));
  await page.page.evaluate((every) => {
    const w = window as any;
    const out: unknown[] = (w.__bench = []);
    w.__benchWaiting = [];
    w.__benchPlaying = [];
    w.__player.video.addEventListener('waiting', () => w.__benchWaiting.push(Date.now()));
    w.__player.video.addEventListener('playing', () => w.__benchPlaying.push(Date.now()));
    setInterval(() => {
      const hls = w.__player.hls;
      const video = w.__player.video as HTMLVideoElement;
      const pd: Date | null = hls ? hls.playingDate : null;
      const level: number = hls ? hls.currentLevel : -1;
      out.push({
        t: Date.now(),
        latencyMs: pd ? Date.now() - pd.getTime() : null,
        paused: video.paused,
        level,
        height: hls && level >= 0 ? (hls.levels[level]?.height ?? null) : null,
        target: hls && typeof hls.targetLatency === 'number' ? Number(hls.targetLatency.toFixed(2)) : null,
        rate: video.playbackRate,
        ahead: video.buffered.length ? Number((video.buffered.end(video.buffered.length - 1) - video.currentTime).toFixed(3)) : null,
        errors: w.__player.errors.length,
      });
    }, every);
  }, SAMPLE_EVERY_MS);
  log(`player opened; warm-up ${opts.warmup} s, then ${opts.seconds} s of latency`);
  return { browser, page, openedAt };
}

/** Every second until `until`: [epoch ms, [state, speed, lagMs, dropped rungs] per stream]. */
async function pollStatus(base: string, until: number, ids: string[], into: unknown[]): Promise<void> {
  while (Date.now() < until) {
    const t = Date.now();
    const views = await Promise.all(ids.map((id) => liveOf(base, id)));
    into.push([
      t,
      ...views.map((v) =>
        v?.transcode
          ? [
              v.transcode.state,
              v.transcode.speed === null ? null : Number(v.transcode.speed.toFixed(3)),
              v.transcode.lagMs,
              v.transcode.droppedRungs.join('+'),
            ]
          : null,
      ),
    ]);
    await sleep(Math.max(0, Math.min(1000 - (Date.now() - t), until - Date.now())));
    check();
  }
}

/** 2. Player latency with ABR, one stream on the server: the window after the page's warm-up. */
async function watchOneStream(server: ServerProcess, streamId: string, publisher: Child, pageOpenedAt: number, hz: number) {
  const from = pageOpenedAt + opts.warmup * 1000;
  const to = from + opts.seconds * 1000;
  await hold(from, publisher, server);
  const status: unknown[] = [];
  const cpuWindow = openCpuWindow(hz);
  await Promise.all([pollStatus(server.base, to, [streamId], status), hold(to, publisher, server)]);
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
    untilRunningMs = await waitTranscodeRunning(server, stream.id, publisher, 45_000);
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
  await hold(from, first.publisher, publisher, server);
  const status: unknown[] = [];
  const cpuWindow = openCpuWindow(hz);
  await Promise.all([pollStatus(server.base, to, [first.id, stream.id], status), hold(to, first.publisher, publisher, server)]);
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

/** The transcode counters of /metrics (rungs dropped and restored, exits, crashes, over the limit). */
function transcodeMetrics(server: ServerProcess): Promise<Record<string, number>> {
  return request('GET', `${server.base}/metrics`, { timeoutMs: 5000 }).then(
    (r) =>
      Object.fromEntries(
        r.body
          .split('\n')
          .filter((l) => /^livepack_transcode_(rungs_dropped|rungs_restored|exits|crashes|over_limit)_total /.test(l))
          .map((l) => [l.split(' ')[0], Number(l.split(' ')[1])]),
      ),
    () => ({}),
  );
}

/** What the page sampled, and the hls.js levels, errors and bandwidth estimate at the end. */
async function readPlayer(page: OpenedPage): Promise<PageDump> {
  return page.page.evaluate<PageDump>(() => {
    const w = window as any;
    const hls = w.__player.hls;
    return {
      samples: w.__bench,
      waiting: w.__benchWaiting,
      playing: w.__benchPlaying,
      errors: w.__player.errors.map((e: any) => ({ type: String(e.type), details: String(e.details), fatal: Boolean(e.fatal) })),
      levels: (hls?.levels ?? []).map((l: any) => ({ height: l.height, width: l.width, bitrate: l.bitrate })),
      bandwidthEstimate: hls ? Math.round(hls.bandwidthEstimate) : null,
      hlsVersion: String(w.Hls?.version ?? ''),
    };
  });
}

/** Stop the publishers and the server (SIGTERM, waited for). */
async function stopOurs(ours: Ours, publishers: readonly Child[]): Promise<StopResult> {
  await Promise.all(publishers.map((p) => terminate(p)));
  const stopped = (ours.stopped = await ours.server.stop());
  log(`server stopped in ${stopped.ms} ms (${stopped.code ?? stopped.signal}${stopped.killed ? ', killed' : ''})`);
  return stopped;
}

interface Measured {
  readonly startedAt: Date;
  readonly ffmpegVersion: string;
  readonly hz: number;
  readonly rungs: readonly LadderRung[];
  readonly source: Awaited<ReturnType<typeof makeSourceFile>>;
  readonly floors: Awaited<ReturnType<typeof measureFloors>>;
  readonly ours: Ours;
  readonly cpu: Awaited<ReturnType<typeof measureOursCpu>>;
  readonly one: Awaited<ReturnType<typeof watchOneStream>>;
  readonly two: Awaited<ReturnType<typeof watchWithSecondStream>>;
  readonly dump: PageDump;
  readonly chromiumVersion: string;
  readonly pageErrors: string[];
  readonly stopped: StopResult;
}

/** 4. The results file: the three measurements reduced, with what made them. */
function reduce(m: Measured) {
  const { server } = m.ours;
  const { cpu, one, two, dump } = m;
  const p2 = playerFigures(dump, one.from, one.to);
  const p3 = playerFigures(dump, two.from, two.to);
  const roles = { server: server.pid, publishers: new Set([cpu.publisher.pid!, two.publisher.pid!]), benchPid: process.pid };
  const load = (w: CpuWindow) => ({
    machineBusyPercent: w.machineBusyPercent,
    benchTreeCores: w.benchCores,
    outsideBenchCores: w.outsideBenchCores,
    cpuByRole: cpuByRole(w.all, roles),
  });
  const serverPart = (w: CpuWindow) => {
    const c = cpuOf(w, server.pid);
    return { cpuS: c.cpuS, percentOfOneCore: c.percentOfOneCore };
  };

  const results = {
    date: m.startedAt.toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      clockTicksPerS: m.hz,
      chromium: m.chromiumVersion,
      ffmpeg: m.ffmpegVersion,
      hlsjs: dump.hlsVersion,
    },
    setup: {
      source: `ffmpeg ${SOURCE_ARGS.join(' ')} src.flv (made in ${m.source.makeSourceS.toFixed(1)} s)`,
      publisher: 'ffmpeg -re -stream_loop -1 -i src.flv -c copy -f flv rtmp://127.0.0.1:<port>/live/<key> (not counted)',
      ladder: m.rungs.map((r) => `${r.name} ${r.videoBitrateKbps} kb/s ${r.encoder} ${X264_PRESET}`).concat('source (copied)'),
      server: `${server.command}, own process, default settings (LOG_LEVEL=warn), 127.0.0.1; /healthz 200 after ${m.ours.readyMs} ms`,
      warmupS: opts.warmup,
      measureS: opts.seconds,
      note:
        "outsideBenchCores: CPU the rest of the machine used during a window (machine busy minus the bench's process tree); " +
        'other work on the machine competes for the cores and can slow the transcoders and the player.',
    },
    cpu: {
      definition:
        'CPU seconds (utime + stime from /proc/<pid>/stat) of a process tree over the window, sampled at the start, every second ' +
        'and at the end, summed per process (end - start; a child born in the window from 0). 100 % = one core busy.',
      ours: {
        what: 'the server process and all its descendants (its FFmpeg); the publisher is not counted',
        cpuS: cpu.cpu.cpuS,
        wallS: cpu.cpu.wallS,
        percentOfOneCore: cpu.cpu.percentOfOneCore,
        processes: cpu.cpu.processes,
        threadsOfServer: cpu.threadsOfServer,
        threadsOfFfmpeg: cpu.threadsOfFfmpeg,
        ...load(cpu.window),
        untilTranscodeRunningMs: cpu.untilRunningMs,
        ladderChangedInWindow: cpu.ladderChanged,
        statusAtStart: cpu.before,
        statusAtEnd: cpu.after,
      },
      floor: floorResult(m.floors.rtmp, load),
      floorFromFile: floorResult(m.floors.file, load),
      ratio: cpu.ratio,
      ratioTo: 'floor (RTMP in: the same input as ours)',
      ratioToFileFloor: cpu.ratioToFileFloor,
      ratioTarget: 1.1,
    },
    player: {
      definition:
        "Date.now() - hls.playingDate on the watch page of stream 1 in headless Chromium, every 250 ms while playing, after the warm-up; PROGRAM-DATE-TIME is the server's ingest wall clock (ingest-to-screen latency). Level = hls.currentLevel.",
      levels: dump.levels,
      bandwidthEstimateBps: dump.bandwidthEstimate,
      pageErrors: m.pageErrors,
      oneStream: {
        ...p2,
        ...load(one.window),
        server: serverPart(one.window),
        statusAtEnd: one.statusAtEnd,
        statusSamples: one.status,
        statusSamplesColumns: ['epoch ms', '[state, speed, lagMs, dropped] of stream 1'],
      },
      twoStreams: {
        ...p3,
        ...load(two.window),
        server: serverPart(two.window),
        secondStream: {
          warmupAfterPublishMs: two.from - two.publishedAt,
          untilTranscodeRunningMs: two.untilRunningMs,
          error: two.runningError,
        },
        statusAtEnd: two.statusAtEnd,
        statusSamples: two.status,
        statusSamplesColumns: ['epoch ms', '[state, speed, lagMs, dropped] of stream 1', 'same of stream 2'],
        metrics: two.metrics,
      },
    },
    shutdown: m.stopped,
    serverStderrTail: server.stderrText().trim().split('\n').filter(Boolean).slice(-30),
  };
  return { results, oneLatency: p2.latency, twoLatency: p3.latency };
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
  const player = await openPlayer(ours.server, cpu.stream.id);
  const one = await watchOneStream(ours.server, cpu.stream.id, cpu.publisher, player.openedAt, hz);
  const two = await watchWithSecondStream(ours.server, source.file, { id: cpu.stream.id, publisher: cpu.publisher }, hz);
  const dump = await readPlayer(player.page);
  const chromiumVersion = player.browser.version();
  const pageErrors = player.page.pageErrors.map((e) => e.message);
  const stopped = await stopOurs(ours, [cpu.publisher, two.publisher]);

  const { results, oneLatency, twoLatency } = reduce({
    startedAt,
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
