/**
 * Peers bench: `npm run bench:peers -- [--streams 10] [--seconds 60] [--warmup 10]`.
 *
 * The same ingest workload against livepack and its peers, one server after another on this machine:
 * node-media-server (RTMP in, HTTP-FLV out; no HLS) and nginx-rtmp (RTMP in, MPEG-TS HLS out), each pinned
 * to CPU 0 with N synthetic publishers on CPU 1. Per server: CPU and RSS idle and with N streams, time from
 * publish to the first playable segment, and the live-edge age of one stream's playlist turned into a
 * player latency estimate. Prints a table and writes bench/results/peers-<date>.json. Bounded in time;
 * kills its children on exit and on SIGINT / SIGTERM. Everything on 127.0.0.1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, pinTree } from './lib/cpu.js';
import { figuresOf, HLSJS_LIVE_SYNC_COUNT } from './lib/peers/figures.js';
import { measureServer, type MeasureOptions } from './lib/peers/measure.js';
import { nginxRtmpMissing, startNginxRtmp } from './lib/peers/nginx.js';
import { startNms } from './lib/peers/nms.js';
import { startOurs } from './lib/peers/ours.js';
import { outputOf, type PeerServer } from './lib/peers/peer.js';
import { printPeersReport, type PeersReport, type Ratios, type ServerResult } from './lib/peers/report.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { describeSynthetic, syntheticFlv } from './lib/synthetic.js';
import { gitCommit, resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_CPUS = '0';
const CLIENT_CPUS = '1';
const IDLE_SECONDS = 5;

const cli = parseBenchCli(
  'npm run bench:peers -- [--streams N (default 10)] [--seconds N (default 60)] [--warmup N (default 10)]',
  {},
  { streams: { default: 10, min: 1, max: 200 } },
);
const streams = cli.integers.streams;
const command = `npm run bench:peers -- --streams ${streams} --seconds ${cli.seconds} --warmup ${cli.warmup}`;

// Per server: start (<= 30 s), settling (<= 45 s), idle, first media (<= 20 s) or warm-up, the window, stopping (<= 20 s).
const perServerS = 30 + 45 + IDLE_SECONDS + Math.max(20, cli.warmup) + streams * 0.1 + cli.seconds + 20;
const bench = startBenchRun({ budgetS: Math.ceil(3 * perServerS + 120), forceExitMs: 20_000 });
const log = (s: string) => console.error(`[bench:peers ${new Date().toISOString().slice(11, 19)}] ${s}`);

/** Media time of the source's first video frame in what the publisher sends (its first key frame). */
async function firstVideoSeconds(file: string): Promise<number> {
  const pts = await outputOf('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'packet=pts_time',
    '-read_intervals',
    '%+#1',
    '-of',
    'csv=p=0',
    file,
  ]);
  const start = await outputOf('ffprobe', ['-v', 'error', '-show_entries', 'format=start_time', '-of', 'csv=p=0', file]);
  const v = Number(pts?.split('\n')[0]) - Number(start);
  if (!Number.isFinite(v)) throw new Error(`ffprobe could not read the first video timestamp of ${file}`);
  return v;
}

/** Start one server, measure it, stop it; a failure skips that server instead of ending the bench. */
async function runOne(name: string, start: () => Promise<PeerServer>, o: MeasureOptions, firstVideoS: number): Promise<ServerResult> {
  log(`${name}: starting`);
  const t0 = performance.now();
  let server: PeerServer | undefined;
  try {
    server = await start();
    const s = server;
    bench.cleanups.push(() => s.close());
    const readyMs = Math.round(performance.now() - t0);
    log(`${name}: ready after ${readyMs} ms (pid ${s.pid})`);
    const raw = await measureServer(s, o);
    return {
      name: s.name,
      version: s.version,
      command: s.command,
      settings: s.settings,
      hls: s.hls,
      readyMs,
      figures: figuresOf(raw, o.streams, firstVideoS),
    };
  } catch (err) {
    bench.check();
    const why = `failed: ${(err as Error).message}`;
    log(`${name}: ${why}`);
    return { name: server?.name ?? name, version: server?.version, command: server?.command, settings: server?.settings, skipped: why };
  } finally {
    await server?.close();
  }
}

function ratiosOf(servers: ServerResult[]): Ratios[] {
  const ours = servers.find((s) => s.hls === 'll-hls')?.figures;
  if (!ours) return [];
  const div = (a: number | null | undefined, b: number | null | undefined) =>
    a === null || a === undefined || b === null || b === undefined || !(b > 0) || !(a > 0) ? null : Number((a / b).toFixed(2));
  return servers
    .filter((s) => s.hls !== 'll-hls' && s.figures)
    .map((s) => {
      const p = s.figures!;
      const hls = s.hls !== 'none';
      return {
        peer: s.name,
        cpuPerStream: div(ours.cpu.perStreamPercent, p.cpu.perStreamPercent),
        rssPerStream: div(ours.rssMB.perStream, p.rssMB.perStream),
        firstSegment: hls ? div(p.firstMedia.median, ours.firstMedia.median) : null,
        latencyP50: hls ? div(p.edge?.latency[0]?.p50, ours.edge?.latency[0]?.p50) : null,
      };
    });
}

async function main(): Promise<void> {
  const startedAt = new Date();
  if (!(await outputOf('taskset', ['-V']))) throw new Error('taskset not found (Debian: apt-get install util-linux)');
  if (cpus().length < 2) throw new Error('needs 2 CPUs: the server under test on CPU 0, publishers and this bench on CPU 1');
  // The bench's own pollers run beside the publishers, leaving CPU 0 to the server under test.
  await pinTree(process.pid, CLIENT_CPUS);
  const [commit, hz, ffmpeg] = [
    gitCommit(ROOT),
    await clockTicks(),
    (await outputOf('ffmpeg', ['-hide_banner', '-version']))?.split('\n')[0].replace(/ Copyright.*/, '') ?? 'ffmpeg ?',
  ];
  log('preparing the synthetic source');
  const file = await syntheticFlv();
  const firstVideoS = await firstVideoSeconds(file);
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-peers-'));
  bench.cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  const o: MeasureOptions = {
    streams,
    seconds: cli.seconds,
    warmup: cli.warmup,
    idleSeconds: IDLE_SECONDS,
    file,
    publisherCpus: CLIENT_CPUS,
    hz,
    bench,
    log,
  };

  const servers: ServerResult[] = [];
  servers.push(await runOne('livepack', () => startOurs(ROOT, mkdtempSync(join(tmp, 'ours-')), bench.signal, SERVER_CPUS), o, firstVideoS));
  servers.push(await runOne('node-media-server', () => startNms(ROOT, mkdtempSync(join(tmp, 'nms-')), SERVER_CPUS), o, firstVideoS));
  const missing = nginxRtmpMissing();
  if (missing) {
    log(`nginx-rtmp: skipped, ${missing}`);
    servers.push({ name: 'nginx-rtmp', skipped: missing });
  } else {
    // A prefix of its own right under the temp dir: nginx's workers (an unprivileged user when this runs as
    // root) must reach it, and the bench's other temp dir is private.
    const prefix = mkdtempSync(join(tmpdir(), 'livepack-peers-nginx-'));
    bench.cleanups.push(() => rmSync(prefix, { recursive: true, force: true }));
    servers.push(await runOne('nginx-rtmp', () => startNginxRtmp(prefix, SERVER_CPUS), o, firstVideoS));
  }

  const report: PeersReport = {
    date: startedAt.toISOString(),
    commit,
    command,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memoryGB: Number((totalmem() / 2 ** 30).toFixed(1)),
      platform: `${process.platform} ${process.arch}`,
      node: process.version,
      ffmpeg,
    },
    setup: {
      streams,
      seconds: cli.seconds,
      warmup: cli.warmup,
      idleSeconds: IDLE_SECONDS,
      workload: describeSynthetic(),
      pinning: `servers under test pinned to CPU ${SERVER_CPUS} (taskset, whole process tree); publishers and this bench (pollers) on CPU ${CLIENT_CPUS}`,
      sourceFirstVideoS: firstVideoS,
      clockTicksPerS: hz,
    },
    servers,
    ratios: ratiosOf(servers),
    definitions: DEFINITIONS,
  };
  printPeersReport(report);
  writeResults(resultsDir(ROOT), 'peers', startedAt, report);
}

const DEFINITIONS: Record<string, string> = {
  cpu:
    "CPU time of the server's process tree (/proc utime+stime, sampled every second) over the window, as % of one core. Idle: " +
    `${IDLE_SECONDS} s with the server up (ours: its streams created) and nothing published. Per ingest stream = (with N - idle) / N. ` +
    'During the window one HLS poller (or, for node-media-server, one HTTP-FLV viewer) watches stream 0 on every server.',
  rss:
    'Resident memory of the process tree (nginx: master + its worker and cache processes). Idle: at the end of the idle window, which ' +
    "starts once RSS has stayed within 1 MB for 10 s (a Node server sheds its start-up garbage only when V8's memory reducer runs, " +
    '10-20 s after start). With N streams: the median of once-a-second readings over the second half of the window. Per ingest ' +
    'stream = (with N - idle) / N; for Node servers it still carries the noise of when V8 last collected.',
  firstSegment:
    'From spawning a publisher to the first playlist answer (polled every 50 ms) that lists a complete segment (ours: an EXTINF ' +
    "segment, not only parts) whose file then answers 200; median over the N streams. Includes FFmpeg's start-up and RTMP handshake. " +
    'node-media-server has no HLS: instead, time to the first video key frame on an HTTP-FLV connection opened before publishing.',
  edgeAge:
    "Stream 0's media playlist is polled every 50 ms; when a segment (ours also: an LL-HLS part) first appears, it is downloaded and " +
    'its first video decode time read (TS: PES PTS; fMP4: tfdt, timescale from the init segment). Edge age = the time it appeared - the ' +
    'wall time at which the publisher sent the media time of its end (first video time + EXTINF or part DURATION, on the timeline of ' +
    "the first segment, which starts with the source's first frame). The publisher's send clock C (wall time of media time 0) is the " +
    'least (report arrival - out_time) over FFmpeg -progress reports every 100 ms. Error: C is late by at most about one packet ' +
    '(<= 33 ms) plus pipe delay, which lowers ages; the 50 ms polling adds 0-50 ms (mean 25) to every age. Both are the same for every server.',
  latencyEstimate:
    'Edge age + the hold-back a standard player keeps behind the newest playlist entry: hls.js in low-latency mode keeps PART-HOLD-BACK ' +
    `(from EXT-X-SERVER-CONTROL) behind the last part; for plain HLS it keeps liveSyncDurationCount (${HLSJS_LIVE_SYNC_COUNT}) x ` +
    'EXT-X-TARGETDURATION. The first row per server is the player it is meant for (ours: LL-HLS; nginx-rtmp: plain HLS). It leaves ' +
    "out the player's reload cadence, buffering and decoding, and the encoder: a floor for glass-to-glass rather than a measurement of it.",
  crossCheck:
    "Ours only: the same segment edge age with EXT-X-PROGRAM-DATE-TIME (the server's ingest clock) in place of the publisher clock; it " +
    'should be close to the segment edge age minus the RTMP transfer (~0 on loopback).',
  flvTagAge:
    'node-media-server: arrival time of each video tag on the HTTP-FLV connection - (C + its timestamp). Not comparable to HLS figures (no segmenting).',
};

main().then(
  () => bench.shutdown(0),
  (err: unknown) => {
    if (!bench.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return bench.shutdown(bench.signal.aborted ? 130 : 1);
  },
);
