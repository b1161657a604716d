/**
 * The ABR bench's source and its floor: the 720p30 source every publisher loops, and plain FFmpeg doing
 * the server's ladder on its own (buildFfmpegArgs turned into HLS files), measured over a CPU window and
 * described for the results.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LadderRung } from '../../src/core/ladder.js';
import { buildFfmpegArgs } from '../../src/livetranscode/args.js';
import { terminate } from '../../harness/processes.js';
import { hold, spawnLabelled, type Child } from './abr-children.js';
import { cpuOf, openCpuWindow, threadDelta, threadTicks, type CpuWindow, type SubtreeCpu } from './abr-cpu.js';
import type { BenchRun } from './run.js';

export const SOURCE = { width: 1280, height: 720, frameRate: 30 } as const;
export const X264_PRESET = 'veryfast';
/** FFmpeg arguments (before the output file) that make the source: 30 s of 720p30, GOP 2 s, as FLV. */
export const SOURCE_ARGS = [
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

// ---- the floor, measured ----

export interface FloorRun {
  readonly input: 'file' | 'rtmp';
  readonly args: string[];
  readonly cpu: SubtreeCpu;
  readonly window: CpuWindow;
  readonly threads: ReturnType<typeof threadDelta>;
  readonly segmentsOnDisk: Record<string, number>;
  readonly stderrTail: string[];
}

/** What a floor measurement runs within: the bench, its warm-up and window (s), the clock ticks and the log. */
export interface FloorContext {
  readonly bench: BenchRun;
  readonly warmup: number;
  readonly seconds: number;
  readonly hz: number;
  readonly log: (s: string) => void;
}

/**
 * Plain FFmpeg doing the ladder to HLS files for a warm-up and a CPU window. `input` is the file read in
 * real time, or an RTMP URL FFmpeg listens on, published to by `publisher` (not counted, like ours).
 */
export async function measureFloor(
  ctx: FloorContext,
  kind: 'file' | 'rtmp',
  rungs: readonly LadderRung[],
  input: { file: string } | { listen: string },
  dir: string,
  publisher?: (url: string) => Child,
): Promise<FloorRun> {
  const { bench, hz, log } = ctx;
  for (const d of [...rungs.map((r) => r.name), 'source']) mkdirSync(join(dir, d), { recursive: true });
  const args = floorArgs(rungs, input, dir);
  log(`floor (${kind}): plain FFmpeg, warm-up ${ctx.warmup} s, then ${ctx.seconds} s of CPU`);
  const floor = spawnLabelled(`floor FFmpeg (${kind})`, 'ffmpeg', args, dir);
  bench.cleanups.push(() => terminate(floor));
  let pub: Child | undefined;
  if (publisher && 'listen' in input) {
    await bench.sleep(1000); // FFmpeg listening
    pub = publisher(input.listen);
    bench.cleanups.push(() => terminate(pub));
  }
  await hold(bench, Date.now() + ctx.warmup * 1000, floor, pub);
  const window = openCpuWindow(hz);
  const threads0 = threadTicks(floor.pid!);
  await hold(bench, Date.now() + ctx.seconds * 1000, floor, pub);
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

/** A floor run as the results file has it. */
export function floorResult(f: FloorRun, load: (w: CpuWindow) => object) {
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
