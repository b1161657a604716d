import { cpus } from 'node:os';
import { busyPercent, machineCpu, TreeCpu, type TreeCpuResult } from '../cpu.js';
import { quantile } from '../stats.js';
import type { BenchRun } from '../run.js';
import { startPublisher, stopPublisher, type Publisher } from '../synthetic.js';
import { FlvProbe } from './flv-probe.js';
import { EdgePoller, firstSegmentListedAt, type SeenItem } from './hls-probe.js';
import { nowMs } from './http-bytes.js';
import { treeRss, type PeerServer } from './peer.js';
import { startClockedPublisher, type ClockedPublisher } from './publisher-clock.js';

/**
 * One server's turn: idle figures, then N publishers, time to the first segment (or FLV key frame) of each
 * stream, a warm-up, and the measured window with CPU, memory and the live-edge poller on stream 0. The
 * raw observations are returned; lib/peers/figures.ts turns them into the reported figures.
 */

export interface MeasureOptions {
  readonly streams: number;
  readonly seconds: number;
  readonly warmup: number;
  /** Length of the idle CPU window before publishing. */
  readonly idleSeconds: number;
  /** The synthetic FLV (bench/lib/synthetic.ts). */
  readonly file: string;
  /** CPU list the publishers are pinned to. */
  readonly publisherCpus: string;
  /** Clock ticks per second of /proc times. */
  readonly hz: number;
  readonly bench: BenchRun;
  readonly log: (line: string) => void;
}

export interface RawRun {
  /** Idle RSS is read once it has settled (see settle()), `settledAfterS` after the server was ready. */
  readonly idle: { cpu: TreeCpuResult; rssBytes: number; settledAfterS: number };
  /** Loaded RSS: the median (and the largest) of the readings over the window's second half. */
  readonly loaded: { cpu: TreeCpuResult; rssBytes: number; rssMaxBytes: number };
  /** When each stream's publisher was spawned, ms since the epoch. */
  readonly spawnedAtMs: number[];
  /**
   * When each stream's first complete segment was listed (HLS) or its first FLV key frame arrived; undefined:
   * not within the time limit.
   */
  readonly firstMediaAtMs: (number | undefined)[];
  readonly firstMediaKind: 'hls segment' | 'flv key frame';
  /** The measured window, ms since the epoch. */
  readonly window: { fromMs: number; toMs: number };
  /** Cores' worth of CPU the rest of the machine (not this bench's process tree) used during the window. */
  readonly outsideCores: number;
  /** Stream 0's publisher clock: when media time 0 was sent (see publisher-clock.ts), and from how many reports. */
  readonly mediaZeroAtMs: number | undefined;
  readonly clockReports: number;
  /** Stream 0's playlist as seen by the poller (HLS servers). */
  readonly edge?: {
    segments: SeenItem[];
    parts: SeenItem[];
    targetDurationS?: number;
    partHoldBackS?: number;
    polls: number;
    pollErrors: number;
    downloadErrors: number;
  };
  /** Stream 0's video tags over HTTP-FLV (servers without HLS). */
  readonly flvTags?: { atMs: number; timestampMs: number }[];
  /** The server's last log lines, when some stream showed no media. */
  readonly logTail?: string;
}

/** Time a stream has to show its first segment (or key frame) before it counts as missing. */
const FIRST_MEDIA_TIMEOUT_MS = 20_000;
/** Publishers start this far apart, so that their key frames do not all reach the server at once. */
const STAGGER_MS = 100;

export async function measureServer(server: PeerServer, o: MeasureOptions): Promise<RawRun> {
  const { bench, log } = o;
  const streams = await server.prepareStreams(o.streams);
  const alive = (publishers: Publisher[]) => {
    if (!server.alive()) throw new Error(`${server.name} exited: ${server.logTail()}`);
    publishers.forEach((p, i) => {
      if (p.exitCode !== null || p.signalCode !== null)
        throw new Error(`publisher ${i} stopped (${p.exitCode ?? p.signalCode}): ${p.stderrText().trim()}`);
    });
  };

  // Idle: the server up (and, for ours, its streams created) with nothing published, once its memory
  // has settled, then a CPU window.
  const settledAfterS = await settle(server, bench);
  alive([]);
  const idleTree = new TreeCpu(server.pid, o.hz);
  idleTree.start();
  await bench.sleep(o.idleSeconds * 1000);
  const idle = { cpu: idleTree.stop(), rssBytes: treeRss(server.pid), settledAfterS };
  bench.check();
  log(`  idle: ${idle.cpu.percentOfOneCore}% of a core, RSS ${(idle.rssBytes / 1048576).toFixed(1)} MB (settled after ${settledAfterS} s)`);

  // Watchers go up before the publishers start, so that nothing they wait for can be missed.
  const hls = server.hls !== 'none';
  const edge = hls ? new EdgePoller(streams[0].playlistUrl!, { parts: server.hls === 'll-hls' }) : undefined;
  const flv = hls ? undefined : streams.map((s, i) => new FlvProbe(s.flvUrl!, { keepOpen: i === 0 }));
  const firstWatch = new AbortController();
  bench.signal.addEventListener('abort', () => firstWatch.abort(), { once: true });
  const publishers: Publisher[] = [];
  const cleanup = async () => {
    firstWatch.abort();
    flv?.forEach((f) => f.close());
    await edge?.close();
    await Promise.all(publishers.map((p) => stopPublisher(p)));
  };
  try {
    edge?.start();
    flv?.forEach((f) => f.start());
    const spawnedAtMs: number[] = [];
    const firstHls: Promise<number | undefined>[] = [];
    let clocked: ClockedPublisher | undefined;
    for (let i = 0; i < streams.length; i++) {
      if (i > 0) await bench.sleep(STAGGER_MS);
      bench.check();
      spawnedAtMs.push(nowMs());
      // Stream 0 is the one whose live edge is watched: its publisher reports when it sends what.
      const p =
        i === 0
          ? (clocked = startClockedPublisher(o.file, streams[i].publishUrl, { taskset: o.publisherCpus }))
          : startPublisher(o.file, streams[i].publishUrl, { taskset: o.publisherCpus });
      publishers.push(p);
      if (hls) firstHls.push(firstSegmentListedAt(streams[i].playlistUrl!, firstWatch.signal, FIRST_MEDIA_TIMEOUT_MS));
    }
    log(`  ${streams.length} publishers started; waiting for the first media of each and ${o.warmup} s of warm-up`);

    // Warm-up: at least `warmup` seconds, and until every stream showed its first media (or timed out),
    // so that no start-up poller runs in the measured window.
    const firstMediaAtMs = hls
      ? await Promise.all(firstHls)
      : await waitForFlv(flv!, spawnedAtMs[spawnedAtMs.length - 1] + FIRST_MEDIA_TIMEOUT_MS, bench, () => alive(publishers));
    firstWatch.abort();
    for (const f of flv?.slice(1) ?? []) f.close();
    const warmEnd = spawnedAtMs[spawnedAtMs.length - 1] + o.warmup * 1000;
    while (nowMs() < warmEnd) {
      await bench.sleep(Math.min(1000, warmEnd - nowMs()));
      bench.check();
      alive(publishers);
    }

    // The measured window.
    log(`  measuring ${o.seconds} s`);
    const tree = new TreeCpu(server.pid, o.hz);
    // Everything this bench started (server, publishers, pollers) and the machine, to tell how busy the
    // rest of the machine was meanwhile: other work there competes with the server for CPU 0.
    const benchTree = new TreeCpu(process.pid, o.hz);
    const machine0 = machineCpu();
    const fromMs = nowMs();
    tree.start();
    benchTree.start();
    const toMs = fromMs + o.seconds * 1000;
    // RSS of a garbage-collected server moves with its collections: the median of the second half's
    // once-a-second readings says more than one reading.
    const rssLate: number[] = [];
    while (nowMs() < toMs) {
      await bench.sleep(Math.min(1000, toMs - nowMs()));
      bench.check();
      alive(publishers);
      if (nowMs() >= fromMs + (toMs - fromMs) / 2) rssLate.push(treeRss(server.pid));
    }
    const cpu = tree.stop();
    const ours = benchTree.stop();
    const machineCores = (busyPercent(machine0, machineCpu()) / 100) * cpus().length;
    const outsideCores = Number(Math.max(0, machineCores - ours.cpuS / ours.wallS).toFixed(2));
    if (!rssLate.length) rssLate.push(treeRss(server.pid));
    const loaded = {
      cpu,
      rssBytes: quantile(
        [...rssLate].sort((a, b) => a - b),
        0.5,
      ),
      rssMaxBytes: Math.max(...rssLate),
    };
    log(`  loaded: ${cpu.percentOfOneCore}% of a core, RSS ${(loaded.rssBytes / 1048576).toFixed(1)} MB`);
    await cleanup();
    return {
      idle,
      loaded,
      spawnedAtMs,
      firstMediaAtMs,
      firstMediaKind: hls ? 'hls segment' : 'flv key frame',
      window: { fromMs, toMs: nowMs() },
      outsideCores,
      mediaZeroAtMs: clocked?.mediaZeroAtMs(),
      clockReports: clocked?.reports() ?? 0,
      edge: edge && {
        segments: edge.segments,
        parts: edge.parts,
        targetDurationS: edge.last?.targetDurationS,
        partHoldBackS: edge.last?.partHoldBackS,
        polls: edge.polls,
        pollErrors: edge.pollErrors,
        downloadErrors: edge.downloadErrors,
      },
      flvTags: flv?.[0].videoTags,
      logTail: firstMediaAtMs.includes(undefined) ? server.logTail() : undefined,
    };
  } finally {
    await cleanup();
  }
}

/**
 * Wait until the server's RSS has stayed within 1 MB for 10 s (at least 10 s, at most 45 s): a Node
 * server frees its start-up garbage only when V8's memory reducer runs, some 10-20 s after start-up.
 * Returns the seconds waited.
 */
async function settle(server: PeerServer, bench: BenchRun): Promise<number> {
  const t0 = nowMs();
  const readings: number[] = [];
  for (;;) {
    readings.push(treeRss(server.pid));
    const last = readings.slice(-11);
    const waitedS = (nowMs() - t0) / 1000;
    if ((last.length === 11 && Math.max(...last) - Math.min(...last) <= 1048576) || waitedS >= 45) return Math.round(waitedS);
    await bench.sleep(1000);
    bench.check();
  }
}

/** Wait until every FLV probe saw its first key frame, or `untilMs`. */
async function waitForFlv(probes: FlvProbe[], untilMs: number, bench: BenchRun, alive: () => void): Promise<(number | undefined)[]> {
  while (probes.some((p) => p.firstKeyFrameAtMs === undefined && !p.error) && nowMs() < untilMs) {
    await bench.sleep(50);
    bench.check();
    alive();
  }
  return probes.map((p) => p.firstKeyFrameAtMs);
}
