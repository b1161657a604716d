/**
 * The ABR bench's results file: what each phase measured (the CPU ratio, the player with one stream and
 * with two), reduced to the JSON it writes and the table prints, with what made the measurements.
 */
import { cpus } from 'node:os';
import type { LadderRung } from '../../src/core/ladder.js';
import type { ServerProcess } from '../../harness/server-process.js';
import type { TranscodeFigures } from './abr-api.js';
import type { Child } from './abr-children.js';
import { cpuByRole, cpuOf, type CpuWindow, type SubtreeCpu } from './abr-cpu.js';
import { floorResult, SOURCE_ARGS, X264_PRESET, type FloorRun } from './abr-floor.js';
import { playerFigures, type PageDump } from './abr-player.js';

export type StopResult = Awaited<ReturnType<ServerProcess['stop']>>;

/** The server under test and how its stop went (set once it was stopped, by the bench or by a cleanup). */
export interface Ours {
  readonly server: ServerProcess;
  readonly readyMs: number;
  stopped?: StopResult;
}

/** 1a. One ABR stream on ours: its CPU over a window, against the floors. */
interface OursCpu {
  readonly publisher: Child;
  readonly untilRunningMs: number;
  readonly before: TranscodeFigures;
  readonly after: TranscodeFigures;
  readonly window: CpuWindow;
  readonly cpu: SubtreeCpu;
  readonly ratio: number;
  readonly ratioToFileFloor: number;
  readonly ladderChanged: boolean;
  readonly threadsOfServer: Record<string, number>;
  readonly threadsOfFfmpeg: Record<string, number>;
}

/** A window the player was watched in (epoch ms), the transcode status every second and the CPU. */
interface Watched {
  readonly from: number;
  readonly to: number;
  readonly status: unknown[];
  readonly window: CpuWindow;
}

/** 2. One stream on the server. */
interface OneStream extends Watched {
  readonly statusAtEnd: TranscodeFigures;
}

/** 3. A second ABR stream beside the first. */
interface TwoStreams extends Watched {
  readonly publisher: Child;
  readonly publishedAt: number;
  readonly untilRunningMs: number | null;
  readonly runningError: string | null;
  readonly statusAtEnd: TranscodeFigures[];
  readonly metrics: Record<string, number>;
}

export interface Measured {
  readonly startedAt: Date;
  readonly opts: { readonly warmup: number; readonly seconds: number };
  readonly ffmpegVersion: string;
  readonly hz: number;
  readonly rungs: readonly LadderRung[];
  readonly source: { readonly makeSourceS: number };
  readonly floors: { readonly file: FloorRun; readonly rtmp: FloorRun };
  readonly ours: Ours;
  readonly cpu: OursCpu;
  readonly one: OneStream;
  readonly two: TwoStreams;
  readonly dump: PageDump;
  readonly chromiumVersion: string;
  readonly pageErrors: string[];
  readonly stopped: StopResult;
}

/** 4. The results file: the three measurements reduced, with what made them. */
export function reduce(m: Measured) {
  const { server } = m.ours;
  const { opts, cpu, one, two, dump } = m;
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
