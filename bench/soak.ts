/**
 * Soak: `npm run soak -- --streams N --viewers V --minutes M [--abr K] [--upload-minutes U] [--report-seconds S]
 *                        [--churn-seconds S] [--out DIR] [--plot yes|no]`
 *
 * Runs the server as its own process (as `npm start` does) and loads it, all on 127.0.0.1, for M minutes:
 *   - N synthetic RTMP publishers (bench/lib/synthetic.ts: a pre-encoded 600 kbit/s H.264/AAC FLV pushed
 *     with `ffmpeg -re -stream_loop -1 -c copy`, so publishing costs almost no CPU), passthrough profile,
 *     the first --abr K of them with the ABR profile instead (a live FFmpeg ladder each: the CPU goes there);
 *   - V simulated LL-HLS viewers spread over the streams (harness/llhls-viewer.ts: blocking playlist
 *     reloads, part and preload-hint fetches, as hls.js asks);
 *   - churn: every --churn-seconds one publisher (in turn) is killed with no goodbye, a dropped connection,
 *     and a new one takes its place a second later, a new publish session within the reconnect grace; its
 *     viewers must see no gap. (A clean unpublish would end the run at once instead.) And a
 *     short-lived stream is created, published, watched by two viewers for 1.5 churn periods, stopped and
 *     deleted through the API.
 *   - uploads: every --upload-minutes (0 = none) a 10 s 720p MP4 is uploaded over tus; it must become ready
 *     and last 10 s.
 *
 * After the load, every steady stream's run must be a ready VOD about as long as it was published.
 * Before the load, one stream is published, watched and stopped once (so that one-time allocations
 * happen), then the server's memory is read after a full garbage collection over its inspector: the
 * baseline. After the load every stream stops; once they have ended and been released, memory is read the
 * same way and compared with the baseline.
 *
 * The server's RSS includes the embedded catalog (PGlite, a PostgreSQL compiled to WASM), about 240 MB
 * before any stream; run with DATABASE_URL set to use PostgreSQL instead.
 *
 * Every --report-seconds (default 60) it prints server CPU, RSS, heap, event-loop delay p99, part delivery
 * delay p50/p99 (part complete -> held playlist answer), preload-hint delay p99, gaps and errors. It ends
 * with one verdict line (PASS or FAIL and why), writes soak-<date>.json and a PNG plot of CPU and RSS
 * over the run into --out (default bench/results), and exits 0 on PASS, 1 on FAIL. The verdict also judges the
 * heap's and RSS's growth (regression slope) after the warm-up on runs with 20 minutes of load after it,
 * from readings taken after a full GC at each report.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from '../harness/http.js';
import { newTotals } from '../harness/llhls-viewer.js';
import { rssOf } from '../harness/processes.js';
import { clockTicks, allStats, treeOf } from './lib/cpu.js';
import { memoryAfterGc, type GcMemory } from './lib/inspector.js';
import { gitCommit, resultsDir } from './lib/results.js';
import { startBenchRun } from './lib/run.js';
import { API_TOKEN, checkRunVods, createStream, hasParts, liveCount, SERVER_ENV, Soak, startSoakServer } from './lib/soak-load.js';
import { uploadFile, uploadSource, waitUploadReady } from './lib/vod-upload.js';
import type { ServerProcess } from '../harness/server-process.js';
import {
  mb,
  plotSamples,
  printReport,
  printReportHeader,
  printSummary,
  r1,
  SAMPLE_MS,
  soakResults,
  UPLOAD_SECONDS,
  verdict,
  type LoadFigures,
  type Report,
  type Sample,
  type SoakOptions,
} from './lib/soak-report.js';
import { summarize } from './lib/stats.js';
import { describeSynthetic, syntheticFlv } from './lib/synthetic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE =
  'npm run soak -- --streams N --viewers V --minutes M [--abr K (0)] [--upload-minutes U (0 = none)] [--report-seconds S (60)] [--churn-seconds S (20, 0 = none)] [--out DIR (bench/results)] [--plot yes|no (yes)]';

// ---- command line ----

function parseCli(): SoakOptions {
  const fail = (msg?: string): never => {
    if (msg) console.error(msg);
    console.error(`usage: ${USAGE}`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        streams: { type: 'string' },
        viewers: { type: 'string' },
        minutes: { type: 'string' },
        abr: { type: 'string' },
        'upload-minutes': { type: 'string' },
        'report-seconds': { type: 'string' },
        'churn-seconds': { type: 'string' },
        out: { type: 'string' },
        plot: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.help) {
    console.log(`usage: ${USAGE}`);
    process.exit(0);
  }
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = values[name] as string | undefined;
    const n = raw === undefined ? dflt : Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  const plot = (values.plot as string | undefined) ?? 'yes';
  if (plot !== 'yes' && plot !== 'no') fail('--plot must be yes or no');
  const streams = int('streams', 4, 1, 500);
  return {
    streams,
    abr: int('abr', 0, 0, streams),
    uploadMinutes: int('upload-minutes', 0, 0, 24 * 60),
    viewers: int('viewers', 40, 0, 20_000),
    minutes: int('minutes', 1, 1, 7 * 24 * 60),
    reportSeconds: int('report-seconds', 60, 5, 3600),
    churnSeconds: int('churn-seconds', 20, 0, 3600),
    out: (values.out as string | undefined) ?? resultsDir(ROOT),
    plot: plot === 'yes',
  };
}

const opts = parseCli();
/** The server under load (set once it runs). */
let soakServer: ServerProcess;
const bench = startBenchRun({ budgetS: opts.minutes * 60 + 240, forceExitMs: 20_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;

// ---- measuring ----

/** One value of a Prometheus text exposition (the first sample of `name`). */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * CPU of a process tree between readings, process by process: a child that exits (an ABR ladder's FFmpeg
 * when its stream ends) takes its ticks with it, which a sum over the tree would read as negative CPU.
 * A process new since the last reading counts all its ticks; one gone since loses its last interval.
 */
class CpuMeter {
  #last: { ticks: Map<string, number>; at: number };
  constructor(
    private readonly pid: number,
    private readonly hz: number,
  ) {
    this.#last = { ticks: this.#ticks(), at: performance.now() };
  }
  #ticks(): Map<string, number> {
    return new Map(treeOf(this.pid, allStats()).map((s) => [`${s.pid}:${s.starttime}`, s.ticks]));
  }
  /** % of one core used by the process tree since the previous call. */
  read(): number {
    const now = { ticks: this.#ticks(), at: performance.now() };
    let used = 0;
    for (const [id, ticks] of now.ticks) used += ticks - (this.#last.ticks.get(id) ?? 0);
    const pct = (used / this.hz / ((now.at - this.#last.at) / 1000)) * 100;
    this.#last = now;
    return r1(pct);
  }
}

// ---- the soak, phase by phase ----

/** 1. One stream published, watched and stopped once, then the baseline. */
async function warmUpAndBaseline(soak: Soak, ws: string, catalog: string): Promise<GcMemory> {
  const { server } = soak;
  console.log(`soak: ${opts.streams} stream(s), ${opts.viewers} viewer(s), ${opts.minutes} min; source ${describeSynthetic()}`);
  console.log(
    `server: ${server.command} (pid ${server.pid}), ${Object.entries(SERVER_ENV)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}, catalog ${catalog}`,
  );
  const warm = await createStream(server, 'soak-0');
  soak.streams.push(warm);
  soak.publish(warm);
  await waitFor('the warm-up stream to be live', () => hasParts(warm), 30_000, { stepMs: 200, tolerateErrors: true });
  const warmStop = new AbortController();
  const warmViewers = [soak.watch(warm, warmStop.signal, newTotals()), soak.watch(warm, warmStop.signal, newTotals())];
  await sleep(6000);
  warmStop.abort();
  await Promise.all(warmViewers);
  await soak.unpublish(warm);
  await soak.waitEnded();
  const baseline = await memoryAfterGc(ws);
  console.log(`baseline after a warm-up stream and a full GC: heap ${mb(baseline.heapUsed)} MB, RSS ${mb(baseline.rss)} MB\n`);
  check();
  return baseline;
}

/** 2. The load: N publishers, then V viewers; resolves with the viewers' runs (they end with soak.viewersStop). */
async function startLoad(soak: Soak): Promise<Promise<void>[]> {
  const { streams } = soak;
  // Stream 0 (the warm-up's) stays passthrough; the next --abr ones get a live ladder.
  for (let i = 1; i < opts.streams; i++) streams.push(await createStream(soak.server, `soak-${i}`, i <= opts.abr ? 'abr' : 'passthrough'));
  for (const s of streams) soak.publish(s);
  await waitFor('every stream to be live', async () => (await Promise.all(streams.map(hasParts))).every(Boolean), 45_000, {
    stepMs: 500,
    tolerateErrors: true,
  });
  const viewerRuns: Promise<void>[] = [];
  for (let v = 0; v < opts.viewers; v++) {
    viewerRuns.push(soak.watch(streams[v % streams.length], soak.viewersStop.signal, soak.totals));
    // Joins spread over about two seconds, not one burst.
    if (v % 20 === 19) await sleep(Math.min(100, 2000 / Math.max(1, opts.viewers / 20)));
  }
  return viewerRuns;
}

/** 2. The load measured for --minutes: CPU and RSS every SAMPLE_MS for the plot, a report line every --report-seconds. */
async function measureLoad(soak: Soak, hz: number, ws: string): Promise<LoadFigures & { shortLived: Promise<void>[] }> {
  const { server, totals } = soak;
  const t0 = performance.now();
  const elapsedS = () => (performance.now() - t0) / 1000;
  const samples: Sample[] = [];
  const reports: Report[] = [];
  const cpuForSamples = new CpuMeter(server.pid, hz);
  const cpuForReports = new CpuMeter(server.pid, hz);
  await request('GET', `${server.base}/metrics`).catch(() => undefined); // resets the event-loop histogram
  let lastRequests = totals.requests;
  let lastReportAt = performance.now();
  let seenGaps = 0;
  let seenErrors = 0;
  let seenChurns = 0;
  const allDelays: number[] = [];
  const allHintDelays: number[] = [];

  const sampler = setInterval(() => {
    samples.push({ t: r1(elapsedS()), cpuPercent: cpuForSamples.read(), rssMB: mb(rssOf(server.pid) ?? Number.NaN) });
  }, SAMPLE_MS);
  cleanups.push(() => clearInterval(sampler));
  const churn = soak.startChurn();
  const uploads = startUploads();

  printReportHeader();
  const report = async (): Promise<void> => {
    const metricsText = (await request('GET', `${server.base}/metrics`).catch(() => ({ body: '' }))).body;
    const delays = totals.playlistDelaysMs.splice(0);
    const hints = totals.hintDelaysMs.splice(0);
    allDelays.push(...delays);
    allHintDelays.push(...hints);
    const d = summarize(delays);
    // After the other readings: the collection's pause (tens of ms) shows in the next report's delays.
    const gc = await memoryAfterGc(ws).catch(() => undefined);
    const now = performance.now();
    const r: Report = {
      t: Math.round((elapsedS() / 60) * 100) / 100,
      cpuPercent: cpuForReports.read(),
      rssMB: mb(rssOf(server.pid) ?? Number.NaN),
      heapUsedMB: mb(metric(metricsText, 'nodejs_heap_size_used_bytes')),
      gcHeapMB: gc ? mb(gc.heapUsed) : Number.NaN,
      gcRssMB: gc ? mb(gc.rss) : Number.NaN,
      gcHeapTotalMB: gc ? mb(gc.heapTotal) : Number.NaN,
      gcExternalMB: gc ? mb(gc.external) : Number.NaN,
      gcArrayBuffersMB: gc ? mb(gc.arrayBuffers) : Number.NaN,
      eventLoopP99Ms: r1(metric(metricsText, 'nodejs_eventloop_lag_p99_seconds') * 1000),
      streamsLive: await liveCount(server).catch(() => -1),
      deliveryP50Ms: r1(d.p50),
      deliveryP99Ms: r1(d.p99),
      deliverySamples: d.n,
      hintP99Ms: r1(summarize(hints).p99),
      requestsPerS: r1((totals.requests - lastRequests) / ((now - lastReportAt) / 1000)),
      gaps: totals.gaps - seenGaps,
      errors: totals.errors - seenErrors,
      churns: soak.churns - seenChurns,
      publisherFailures: soak.publisherFailures,
    };
    seenChurns = soak.churns;
    lastRequests = totals.requests;
    lastReportAt = now;
    seenGaps = totals.gaps;
    seenErrors = totals.errors;
    reports.push(r);
    printReport(r);
  };

  const endAt = t0 + opts.minutes * 60_000;
  for (;;) {
    const next = Math.min(endAt, lastReportAt + opts.reportSeconds * 1000);
    await sleep(Math.max(0, next - performance.now()));
    check();
    if (!server.alive()) throw new Error(`the server exited during the soak: ${server.stderrText().trim().slice(-1000)}`);
    await report();
    if (performance.now() >= endAt - 50) break;
  }
  churn.stop();
  clearInterval(sampler);
  await uploads.stop();
  return { samples, reports, allDelays, allHintDelays, uploads: uploads.results, shortLived: churn.shortLived };
}

/**
 * 2. Uploads during the load: every --upload-minutes a 10 s MP4 over tus, waited for until ready (or failed);
 * each one's VOD duration or error. stop() waits for the one in flight.
 */
function startUploads(): { results: LoadFigures['uploads']; stop(): Promise<void> } {
  const results: { durationS?: number; error?: string }[] = [];
  if (!opts.uploadMinutes) return { results, stop: async () => {} };
  const inFlight: Promise<void>[] = [];
  const once = async (n: number): Promise<void> => {
    try {
      const file = await uploadSource(UPLOAD_SECONDS, bench.signal);
      const id = await uploadFile(soakServer.base, API_TOKEN, file, `soak upload ${n}`);
      results.push({ durationS: await waitUploadReady(soakServer.base, API_TOKEN, id, 300_000, waitFor) });
    } catch (err) {
      if (!bench.signal.aborted) results.push({ error: (err as Error).message.slice(0, 300) });
    }
  };
  let n = 0;
  const timer = setInterval(() => inFlight.push(once(++n)), opts.uploadMinutes * 60_000);
  cleanups.push(() => clearInterval(timer));
  return {
    results,
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/** 3. Everything stops; memory after the streams are released. */
async function stopAndMeasureAfter(soak: Soak, viewerRuns: Promise<void>[], shortLived: Promise<void>[], ws: string): Promise<GcMemory> {
  soak.viewersStop.abort();
  await Promise.all(viewerRuns);
  await Promise.all(shortLived);
  await Promise.all(soak.streams.map((s) => soak.unpublish(s)));
  await soak.waitEnded();
  return memoryAfterGc(ws);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const commit = gitCommit(ROOT);
  const file = await syntheticFlv();
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-soak-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const catalog = process.env.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : 'embedded PGlite';

  const { server, ws } = await startSoakServer(bench, ROOT, dataDir);
  soakServer = server;
  const hz = await clockTicks();
  const soak = new Soak(bench, server, file, opts.churnSeconds);
  const baseline = await warmUpAndBaseline(soak, ws, catalog);
  const viewerRuns = await startLoad(soak);
  const load = await measureLoad(soak, hz, ws);
  const after = await stopAndMeasureAfter(soak, viewerRuns, load.shortLived, ws);
  const runVods = await checkRunVods(server, soak.streams, waitFor);

  const v = verdict(opts, soak, load, baseline, after, { runsChecked: runVods.checked, problems: runVods.problems });
  soakResults({ startedAt, commit, catalog, opts }, soak, load, baseline, after, v);
  const plotNote = await plotSamples(opts, startedAt, commit, load);
  printSummary(opts, soak, load, baseline, after, v, plotNote);
  await shutdown(v.pass ? 0 : 1);
}

main().catch((err) => {
  console.error(`soak FAIL: ${(err as Error).message}`);
  void shutdown(1);
});
