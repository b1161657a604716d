/**
 * Soak: `npm run soak -- --streams N --viewers V --minutes M [--report-seconds S] [--churn-seconds S]
 *                        [--out DIR] [--plot yes|no]`
 *
 * Runs the server as its own process (as `npm start` does) and loads it, all on 127.0.0.1, for M minutes:
 *   - N synthetic RTMP publishers (bench/lib/synthetic.ts: a pre-encoded 600 kbit/s H.264/AAC FLV pushed
 *     with `ffmpeg -re -stream_loop -1 -c copy`, so publishing costs almost no CPU), passthrough profile;
 *   - V simulated LL-HLS viewers spread over the streams (harness/llhls-viewer.ts: blocking playlist
 *     reloads, part and preload-hint fetches, as hls.js asks);
 *   - churn: every --churn-seconds one publisher (in turn) is killed with no goodbye, a dropped connection,
 *     and a new one takes its place a second later, a new publish session within the reconnect grace; its
 *     viewers must see no gap. (A clean unpublish would end the run at once instead.) And a
 *     short-lived stream is created, published, watched by two viewers for 1.5 churn periods, stopped and
 *     deleted through the API.
 *
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
 * over the run into --out (default bench/results), and exits 0 on PASS, 1 on FAIL.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { clockTicks, allStats, treeOf } from './lib/cpu.js';
import { request } from '../harness/http.js';
import { inspectorUrl, memoryAfterGc, type GcMemory } from './lib/inspector.js';
import { newTotals, runViewer, type ViewerTotals } from '../harness/llhls-viewer.js';
import { chartSvg, writePng } from './lib/plot.js';
import { rssOf } from '../harness/processes.js';
import { startBenchRun } from './lib/run.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import { describeSynthetic, dropPublisher, startPublisher, stopPublisher, syntheticFlv, type Publisher } from './lib/synthetic.js';
import { summarize } from './lib/stats.js';
import { gitCommit, resultStamp, resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'soak-token-0123456789abcdef';
const USAGE =
  'npm run soak -- --streams N --viewers V --minutes M [--report-seconds S (60)] [--churn-seconds S (20, 0 = none)] [--out DIR (bench/results)] [--plot yes|no (yes)]';
/** CPU and RSS are sampled this often for the plot. */
const SAMPLE_MS = 5000;
/** Server settings of the soak: a short grace and retention, so that stopped streams are released soon. */
const SERVER_ENV = { RECONNECT_GRACE_MS: '3000', HLS_ENDED_RETENTION_MS: '2000' };
/**
 * Heap (after a full GC) may end at most this far above the baseline. Streams stay in the catalog and
 * keep their counters, which is small and bounded; a leak of media buffers or held requests is not.
 */
const HEAP_GROWTH_LIMIT_BYTES = 8 * 1024 * 1024;

// ---- command line ----

function parseCli() {
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
  return {
    streams: int('streams', 4, 1, 500),
    viewers: int('viewers', 40, 0, 20_000),
    minutes: int('minutes', 1, 1, 7 * 24 * 60),
    reportSeconds: int('report-seconds', 60, 5, 3600),
    churnSeconds: int('churn-seconds', 20, 0, 3600),
    out: (values.out as string | undefined) ?? resultsDir(ROOT),
    plot: plot === 'yes',
  };
}

const opts = parseCli();
const bench = startBenchRun({ budgetS: opts.minutes * 60 + 240, forceExitMs: 20_000 });
const { cleanups, shutdown, sleep, check, waitFor } = bench;

// ---- the server and its streams ----

const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };

interface Stream {
  readonly id: string;
  readonly rtmpUrl: string;
  readonly playlistUrl: string;
  publisher: Publisher | undefined;
  /** Set while the soak itself stops the publisher (churn, end). */
  stopping: boolean;
}

async function createStream(server: ServerProcess, name: string): Promise<Stream> {
  const res = await request('POST', `${server.base}/api/v1/streams`, {
    headers: auth,
    body: JSON.stringify({ name, profile: 'passthrough' }),
  });
  if (res.status !== 201) throw new Error(`creating stream ${name} answered ${res.status}: ${res.body}`);
  const s = JSON.parse(res.body) as { id: string; streamKey: string };
  return {
    id: s.id,
    rtmpUrl: `rtmp://127.0.0.1:${server.rtmpPort}/live/${s.streamKey}`,
    playlistUrl: `${server.base}/live/${s.id}/source/index.m3u8`,
    publisher: undefined,
    stopping: false,
  };
}

/** Live streams according to the API (live status not null). */
async function liveCount(server: ServerProcess): Promise<number> {
  const res = await request('GET', `${server.base}/api/v1/streams?limit=1000`, { headers: auth });
  if (res.status !== 200) throw new Error(`listing streams answered ${res.status}`);
  return (JSON.parse(res.body) as { items: { live: unknown }[] }).items.filter((s) => s.live).length;
}

/** Whether a stream's media playlist lists at least one part. */
async function hasParts(s: Stream): Promise<boolean> {
  const r = await request('GET', s.playlistUrl, { timeoutMs: 3000 });
  return r.status === 200 && r.body.includes('#EXT-X-PART:');
}

/** One value of a Prometheus text exposition (the first sample of `name`). */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

// ---- samples and reports ----

interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  /** Server process tree CPU since the previous sample, % of one core. */
  readonly cpuPercent: number;
  readonly rssMB: number;
}

interface Report {
  /** Minutes since the load started. */
  readonly t: number;
  readonly cpuPercent: number;
  readonly rssMB: number;
  readonly heapUsedMB: number;
  readonly eventLoopP99Ms: number;
  readonly streamsLive: number;
  readonly deliveryP50Ms: number;
  readonly deliveryP99Ms: number;
  readonly deliverySamples: number;
  readonly hintP99Ms: number;
  readonly requestsPerS: number;
  readonly gaps: number;
  readonly errors: number;
  readonly churns: number;
  readonly publisherFailures: number;
}

const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
const r1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);

class CpuMeter {
  #last: { ticks: number; at: number };
  constructor(
    private readonly pid: number,
    private readonly hz: number,
  ) {
    this.#last = { ticks: this.#ticks(), at: performance.now() };
  }
  #ticks(): number {
    return treeOf(this.pid, allStats()).reduce((a, s) => a + s.ticks, 0);
  }
  /** % of one core used by the process tree since the previous call. */
  read(): number {
    const now = { ticks: this.#ticks(), at: performance.now() };
    const pct = ((now.ticks - this.#last.ticks) / this.hz / ((now.at - this.#last.at) / 1000)) * 100;
    this.#last = now;
    return r1(pct);
  }
}

function printReportHeader(): void {
  const h = [
    't min',
    'cpu%',
    'rssMB',
    'heapMB',
    'loopP99',
    'live',
    'deliv p50',
    'p99',
    'n',
    'hint p99',
    'req/s',
    'gaps',
    'errors',
    'churns',
  ];
  const w = [6, 7, 7, 7, 8, 5, 10, 7, 7, 9, 7, 5, 7, 7];
  console.log(h.map((x, i) => x.padStart(w[i])).join(''));
}

function printReport(r: Report): void {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const cells = [
    f(r.t, 2),
    f(r.cpuPercent),
    f(r.rssMB),
    f(r.heapUsedMB),
    f(r.eventLoopP99Ms),
    String(r.streamsLive),
    f(r.deliveryP50Ms, 0),
    f(r.deliveryP99Ms, 0),
    String(r.deliverySamples),
    f(r.hintP99Ms, 0),
    f(r.requestsPerS, 0),
    String(r.gaps),
    String(r.errors),
    String(r.churns),
  ];
  const w = [6, 7, 7, 7, 8, 5, 10, 7, 7, 9, 7, 5, 7, 7];
  console.log(cells.map((x, i) => x.padStart(w[i])).join(''));
}

// ---- the soak ----

/** The soak's streams, their publishers and viewers, and the count of what went wrong with them. */
class Soak {
  readonly streams: Stream[] = [];
  readonly totals = newTotals();
  /** Aborted when the load ends: every viewer of the load stops. */
  readonly viewersStop = new AbortController();
  publisherFailures = 0;
  churns = 0;
  shortLivedDone = 0;

  constructor(
    readonly server: ServerProcess,
    readonly file: string,
  ) {
    // Every request of every viewer listens on this one signal.
    setMaxListeners(0, this.viewersStop.signal, bench.signal);
    cleanups.push(() => this.viewersStop.abort());
    cleanups.push(() => Promise.all(this.streams.map((s) => this.unpublish(s))));
  }

  publish(s: Stream): void {
    const p = startPublisher(this.file, s.rtmpUrl);
    s.publisher = p;
    s.stopping = false;
    p.once('exit', (code, sig) => {
      if (s.stopping || bench.signal.aborted) return;
      // A publisher that died on its own: count it (a FAIL) and put a new one in its place.
      this.publisherFailures++;
      console.error(`publisher of ${s.id} exited (${code ?? sig}): ${p.stderrText().trim().slice(-300)}`);
      if (!this.viewersStop.signal.aborted) this.publish(s);
    });
  }

  async unpublish(s: Stream, how: 'clean' | 'drop' = 'clean'): Promise<void> {
    if (!s.publisher) return;
    s.stopping = true;
    await (how === 'drop' ? dropPublisher(s.publisher) : stopPublisher(s.publisher));
    s.publisher = undefined;
  }

  async watch(s: Stream, signal: AbortSignal, into: ViewerTotals): Promise<void> {
    // A viewer that gets an ended playlist joins again, as a page reload would.
    while (!signal.aborted) {
      await runViewer(s.playlistUrl, signal, into);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted changes across the await above
      if (!signal.aborted) await sleep(500);
    }
  }

  /** Until the API lists no live stream, and the ended playlists' retention is over. */
  waitEnded(): Promise<void> {
    return waitFor('every stream to end', async () => (await liveCount(this.server)) === 0, 30_000, { stepMs: 250 }).then(() =>
      sleep(Number(SERVER_ENV.HLS_ENDED_RETENTION_MS) + 1500),
    );
  }

  /** A stream created, published, watched for 1.5 churn periods, stopped and deleted through the API. */
  async shortLivedStream(n: number): Promise<void> {
    const s = await createStream(this.server, `soak-short-${n}`);
    const watching = new AbortController();
    setMaxListeners(0, watching.signal);
    const stopWatching = () => watching.abort();
    this.viewersStop.signal.addEventListener('abort', stopWatching, { once: true });
    try {
      this.publish(s);
      await waitFor(`short-lived stream ${n} to be live`, () => hasParts(s), 20_000, { stepMs: 200, tolerateErrors: true });
      const views = [this.watch(s, watching.signal, this.totals), this.watch(s, watching.signal, this.totals)];
      await sleep(opts.churnSeconds * 1500);
      watching.abort();
      await Promise.all(views);
    } finally {
      this.viewersStop.signal.removeEventListener('abort', stopWatching);
      await this.unpublish(s);
      const del = await request('DELETE', `${this.server.base}/api/v1/streams/${s.id}`, { headers: { authorization: auth.authorization } });
      // Thrown from finally as before: a stream that cannot be deleted fails the bench, and this error then
      // replaces one from the try.
      // eslint-disable-next-line no-unsafe-finally -- kept as it was, see above
      if (del.status !== 204) throw new Error(`deleting short-lived stream ${s.id} answered ${del.status}: ${del.body}`);
      this.shortLivedDone++;
    }
  }
}

/** The server as its own process with the inspector open (for the full-GC memory readings). */
async function startSoakServer(dataDir: string): Promise<{ server: ServerProcess; ws: string }> {
  const server = await startServerProcess(ROOT, dataDir, API_TOKEN, bench.signal, SERVER_ENV, 30_000, 50, ['--inspect=127.0.0.1:0']);
  cleanups.push(() => server.stop(10_000));
  const ws = await waitFor('the server inspector URL', async () => inspectorUrl(server.stderrText()), 5000);
  return { server, ws };
}

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
  for (let i = 1; i < opts.streams; i++) streams.push(await createStream(soak.server, `soak-${i}`));
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

/**
 * Churn, every --churn-seconds: one steady publisher drops and reconnects (a new session within the grace), and one
 * short-lived stream is created, published, watched, stopped and deleted through the API.
 */
function startChurn(soak: Soak): { stop(): void; shortLived: Promise<void>[] } {
  let churnIndex = 0;
  const shortLived: Promise<void>[] = [];
  const churner = opts.churnSeconds
    ? setInterval(() => {
        const s = soak.streams[churnIndex++ % soak.streams.length];
        soak.churns++;
        void soak.unpublish(s, 'drop').then(() => sleep(1000).then(() => !soak.viewersStop.signal.aborted && soak.publish(s)));
        shortLived.push(
          soak.shortLivedStream(churnIndex).catch((err) => {
            if (bench.signal.aborted) return;
            soak.totals.errors++;
            soak.totals.lastErrors.push(`short-lived stream: ${(err as Error).message}`);
          }),
        );
      }, opts.churnSeconds * 1000)
    : undefined;
  cleanups.push(() => clearInterval(churner));
  return { stop: () => clearInterval(churner), shortLived };
}

/** 2. The load measured for --minutes: CPU and RSS every SAMPLE_MS for the plot, a report line every --report-seconds. */
async function measureLoad(soak: Soak, hz: number) {
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
  const churn = startChurn(soak);

  printReportHeader();
  const report = async (): Promise<void> => {
    const metricsText = (await request('GET', `${server.base}/metrics`).catch(() => ({ body: '' }))).body;
    const delays = totals.playlistDelaysMs.splice(0);
    const hints = totals.hintDelaysMs.splice(0);
    allDelays.push(...delays);
    allHintDelays.push(...hints);
    const d = summarize(delays);
    const now = performance.now();
    const r: Report = {
      t: Math.round((elapsedS() / 60) * 100) / 100,
      cpuPercent: cpuForReports.read(),
      rssMB: mb(rssOf(server.pid) ?? Number.NaN),
      heapUsedMB: mb(metric(metricsText, 'nodejs_heap_size_used_bytes')),
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
  return { samples, reports, allDelays, allHintDelays, shortLived: churn.shortLived };
}

type LoadFigures = Awaited<ReturnType<typeof measureLoad>>;

/** 3. Everything stops; memory after the streams are released. */
async function stopAndMeasureAfter(soak: Soak, viewerRuns: Promise<void>[], load: LoadFigures, ws: string): Promise<GcMemory> {
  soak.viewersStop.abort();
  await Promise.all(viewerRuns);
  await Promise.all(load.shortLived);
  await Promise.all(soak.streams.map((s) => soak.unpublish(s)));
  await soak.waitEnded();
  return memoryAfterGc(ws);
}

/** 4. The verdict: no errors, no gaps, no publisher that died on its own, heap back near the baseline. */
function verdict(soak: Soak, load: LoadFigures, baseline: GcMemory, after: GcMemory) {
  const { totals } = soak;
  const heapGrowth = after.heapUsed - baseline.heapUsed;
  const all = summarize(load.allDelays);
  const problems: string[] = [];
  if (totals.errors) problems.push(`${totals.errors} error(s) (last: ${totals.lastErrors.slice(-3).join(' | ')})`);
  if (totals.gaps) problems.push(`${totals.gaps} playlist gap(s)`);
  if (soak.publisherFailures) problems.push(`${soak.publisherFailures} publisher(s) died on their own`);
  if (all.n === 0 && opts.viewers > 0) problems.push('no part delivery was measured');
  if (heapGrowth > HEAP_GROWTH_LIMIT_BYTES)
    problems.push(`heap after the streams stopped is ${mb(heapGrowth)} MB above the baseline (limit ${mb(HEAP_GROWTH_LIMIT_BYTES)} MB)`);
  const cpuAvg = load.reports.reduce((a, r) => a + r.cpuPercent, 0) / Math.max(1, load.reports.length);
  const rssMax = Math.max(...load.samples.map((s) => s.rssMB), ...load.reports.map((r) => r.rssMB));
  return { pass: problems.length === 0, problems, heapGrowth, all, cpuAvg, rssMax };
}

type Verdict = ReturnType<typeof verdict>;

/** 4. The JSON in --out. */
function soakResults(
  startedAt: Date,
  commit: string,
  catalog: string,
  soak: Soak,
  load: LoadFigures,
  baseline: GcMemory,
  after: GcMemory,
  v: Verdict,
) {
  const { totals } = soak;
  const results = {
    date: startedAt.toISOString(),
    commit,
    command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    setup: {
      ...opts,
      out: undefined,
      source: describeSynthetic(),
      server: soak.server.command,
      serverEnv: SERVER_ENV,
      catalog,
      sampleEveryMs: SAMPLE_MS,
    },
    verdict: { pass: v.pass, problems: v.problems },
    totals: {
      requests: totals.requests,
      errors: totals.errors,
      gaps: totals.gaps,
      partsFetched: totals.partsFetched,
      bytesMB: mb(totals.bytes),
      churns: soak.churns,
      shortLivedStreams: soak.shortLivedDone,
      publisherFailures: soak.publisherFailures,
      lastErrors: totals.lastErrors,
    },
    deliveryDelayMs: {
      definition: 'held blocking playlist answer arrived - (PDT + offset + duration of the part it announces)',
      ...roundSummary(v.all),
    },
    hintDelayMs: {
      definition: 'held preload-hint part fully arrived - (PDT + offset + duration of that part)',
      ...roundSummary(summarize(load.allHintDelays)),
    },
    memory: {
      baseline: inMB(baseline),
      afterStop: inMB(after),
      heapGrowthMB: mb(v.heapGrowth),
      heapGrowthLimitMB: mb(HEAP_GROWTH_LIMIT_BYTES),
    },
    cpuAvgPercentOfOneCore: r1(v.cpuAvg),
    rssMaxMB: v.rssMax,
    reports: load.reports,
    samples: load.samples,
  };
  writeResults(opts.out, 'soak', startedAt, results);
  return results;
}

/** 4. The CPU and RSS plot beside the JSON (--plot yes); says where it went or why there is none. */
async function plotSamples(startedAt: Date, commit: string, samples: readonly Sample[]): Promise<string> {
  if (!opts.plot) return 'no plot (--plot no)';
  const pngFile = join(opts.out, `soak-${resultStamp(startedAt)}.png`);
  try {
    const svg = chartSvg(
      `livepack soak ${startedAt.toISOString()} (${commit}): ${opts.streams} streams, ${opts.viewers} viewers`,
      [
        {
          title: 'Server CPU',
          yLabel: '% of one core',
          series: [
            {
              label: `CPU (${SAMPLE_MS / 1000} s windows)`,
              color: '#c0392b',
              points: samples.map((s) => ({ x: s.t / 60, y: s.cpuPercent })),
            },
          ],
        },
        {
          title: 'Server memory',
          yLabel: 'MB',
          series: [{ label: 'RSS', color: '#2471a3', points: samples.map((s) => ({ x: s.t / 60, y: s.rssMB })) }],
        },
      ],
      'minutes of load',
    );
    await writePng(svg, pngFile);
    return `plot written to ${relative(process.cwd(), pngFile)}`;
  } catch (err) {
    return `no plot: ${(err as Error).message.split('\n')[0]}`;
  }
}

function printSummary(soak: Soak, load: LoadFigures, baseline: GcMemory, after: GcMemory, v: Verdict, plotNote: string): void {
  const { totals } = soak;
  const { all } = v;
  console.log(
    `\ndelivery delay over the run: p50 ${r1(all.p50)} ms, p99 ${r1(all.p99)} ms, max ${r1(all.max)} ms (${all.n} held answers); ` +
      `hint p99 ${r1(summarize(load.allHintDelays).p99)} ms; ${totals.requests} requests, ${soak.churns} publisher reconnects, ` +
      `${soak.shortLivedDone} short-lived streams created, watched and deleted`,
  );
  console.log(
    `memory after a full GC: baseline heap ${mb(baseline.heapUsed)} MB / RSS ${mb(baseline.rss)} MB; after the streams stopped heap ${mb(after.heapUsed)} MB / RSS ${mb(after.rss)} MB`,
  );
  console.log(plotNote);
  console.log(
    `soak ${v.pass ? 'PASS' : 'FAIL'}: ${opts.streams} streams, ${opts.viewers} viewers, ${opts.minutes} min; errors ${totals.errors}, gaps ${totals.gaps}, ` +
      `delivery p99 ${r1(all.p99)} ms, CPU ${r1(v.cpuAvg)}% of a core, RSS max ${v.rssMax} MB, heap ${v.heapGrowth >= 0 ? '+' : ''}${mb(v.heapGrowth)} MB after stop` +
      (v.pass ? '' : ` — ${v.problems.join('; ')}`),
  );
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const commit = gitCommit(ROOT);
  const file = await syntheticFlv();
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-soak-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const catalog = process.env.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : 'embedded PGlite';

  const { server, ws } = await startSoakServer(dataDir);
  const hz = await clockTicks();
  const soak = new Soak(server, file);
  const baseline = await warmUpAndBaseline(soak, ws, catalog);
  const viewerRuns = await startLoad(soak);
  const load = await measureLoad(soak, hz);
  const after = await stopAndMeasureAfter(soak, viewerRuns, load, ws);

  const v = verdict(soak, load, baseline, after);
  soakResults(startedAt, commit, catalog, soak, load, baseline, after, v);
  const plotNote = await plotSamples(startedAt, commit, load.samples);
  printSummary(soak, load, baseline, after, v, plotNote);
  await shutdown(v.pass ? 0 : 1);
}

function roundSummary(s: ReturnType<typeof summarize>) {
  return { n: s.n, p50: r1(s.p50), p95: r1(s.p95), p99: r1(s.p99), max: r1(s.max), mean: r1(s.mean) };
}

function inMB(m: GcMemory) {
  return {
    heapUsedMB: mb(m.heapUsed),
    heapTotalMB: mb(m.heapTotal),
    rssMB: mb(m.rss),
    externalMB: mb(m.external),
    arrayBuffersMB: mb(m.arrayBuffers),
  };
}

main().catch((err) => {
  console.error(`soak FAIL: ${(err as Error).message}`);
  void shutdown(1);
});
