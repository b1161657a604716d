/**
 * What the soak reports: its samples and report lines while it runs, then the verdict, the results JSON,
 * the CPU and RSS plot, and the closing summary with the PASS or FAIL line.
 */
import { cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import type { GcMemory } from './inspector.js';
import { chartSvg, writePng } from './plot.js';
import { resultStamp, writeResults } from './results.js';
import { SERVER_ENV, type Soak } from './soak-load.js';
import { summarize } from './stats.js';
import { describeSynthetic } from './synthetic.js';

/** The soak's command line. */
export interface SoakOptions {
  readonly streams: number;
  readonly viewers: number;
  readonly minutes: number;
  readonly reportSeconds: number;
  readonly churnSeconds: number;
  /** The first --abr steady streams are published with the ABR profile (a live FFmpeg ladder each). */
  readonly abr: number;
  /** A tus upload every --upload-minutes (0: none), checked ready and of the right duration. */
  readonly uploadMinutes: number;
  readonly out: string;
  readonly plot: boolean;
}

/** CPU and RSS are sampled this often for the plot. */
export const SAMPLE_MS = 5000;
/**
 * Heap (after a full GC) may end at most this far above the baseline. Streams stay in the catalog and
 * keep their counters, which is small and bounded; a leak of media buffers or held requests is not.
 */
const HEAP_GROWTH_LIMIT_BYTES = 8 * 1024 * 1024;
/** Heap and RSS may grow at most this much per 10 minutes of load after the warm-up (a regression slope). */
const SLOPE_LIMIT_MB_PER_10MIN = 1;
/** A slope is judged only over this much load after the warm-up: shorter, it measures noise. */
const SLOPE_MIN_MINUTES = 20;

/** Minutes of load left out of the slope: the first quarter, at most 10. */
export const warmUpMinutes = (minutes: number) => Math.min(10, minutes / 4);

/** Least-squares slope of y over x (per unit of x); NaN with fewer than 3 points. */
export function slope(points: readonly { x: number; y: number }[]): number {
  const p = points.filter((q) => Number.isFinite(q.y));
  if (p.length < 3) return Number.NaN;
  const mx = p.reduce((a, q) => a + q.x, 0) / p.length;
  const my = p.reduce((a, q) => a + q.y, 0) / p.length;
  const sxx = p.reduce((a, q) => a + (q.x - mx) ** 2, 0);
  return sxx === 0 ? Number.NaN : p.reduce((a, q) => a + (q.x - mx) * (q.y - my), 0) / sxx;
}

// ---- samples and reports ----

export interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  /** Server process tree CPU since the previous sample, % of one core. */
  readonly cpuPercent: number;
  readonly rssMB: number;
}

export interface Report {
  /** Minutes since the load started. */
  readonly t: number;
  readonly cpuPercent: number;
  readonly rssMB: number;
  readonly heapUsedMB: number;
  /**
   * Heap used and RSS right after a full GC (over the inspector) at this report: what the growth slopes
   * judge. Without the collection the heap swings by ±40 MB with the GC's timing (a slope's standard
   * error of 3–4 MB per 10 min over an hour, above the 1 MB limit); NaN if the reading failed.
   */
  readonly gcHeapMB: number;
  readonly gcRssMB: number;
  /**
   * The rest of the same reading, to tell where an RSS growth lives: V8's reserved heap (its pages, used
   * or not), memory outside the JS heap that V8 is told of (external), and ArrayBuffers (Buffers, media).
   */
  readonly gcHeapTotalMB: number;
  readonly gcExternalMB: number;
  readonly gcArrayBuffersMB: number;
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

/** What the load measured over --minutes. */
export interface LoadFigures {
  readonly samples: Sample[];
  readonly reports: Report[];
  /** Part delivery delays (ms) of every held playlist answer, and of every preload-hint part. */
  readonly allDelays: number[];
  readonly allHintDelays: number[];
  /** Uploads made during the load: each one's duration when ready, or what went wrong. */
  readonly uploads: { readonly durationS?: number; readonly error?: string }[];
}

/** What the runs and uploads left, checked after the load (checkRunVods). */
export interface VodFigures {
  readonly runsChecked: number;
  readonly problems: readonly string[];
}

/** Length of each upload the soak makes, seconds. */
export const UPLOAD_SECONDS = 10;

export const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
export const r1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);

export function printReportHeader(): void {
  const h = [
    't min',
    'cpu%',
    'rssMB',
    'heapMB',
    'gcHeap',
    'gcRss',
    'gcTot',
    'ext',
    'arrBuf',
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
  const w = [6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 5, 10, 7, 7, 9, 7, 5, 7, 7];
  console.log(h.map((x, i) => x.padStart(w[i])).join(''));
}

export function printReport(r: Report): void {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const cells = [
    f(r.t, 2),
    f(r.cpuPercent),
    f(r.rssMB),
    f(r.heapUsedMB),
    f(r.gcHeapMB),
    f(r.gcRssMB),
    f(r.gcHeapTotalMB),
    f(r.gcExternalMB),
    f(r.gcArrayBuffersMB),
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
  const w = [6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 5, 10, 7, 7, 9, 7, 5, 7, 7];
  console.log(cells.map((x, i) => x.padStart(w[i])).join(''));
}

// ---- the end ----

/**
 * 4. The verdict: no errors, no gaps, no PROGRAM-DATE-TIME that moved between reloads (the anchor is fixed
 * before a session's first part), no publisher that died on its own, heap back near the baseline.
 */
export function verdict(opts: SoakOptions, soak: Soak, load: LoadFigures, baseline: GcMemory, after: GcMemory, vods: VodFigures) {
  const { totals } = soak;
  const heapGrowth = after.heapUsed - baseline.heapUsed;
  const all = summarize(load.allDelays);
  const problems: string[] = [];
  if (totals.errors) problems.push(`${totals.errors} error(s) (last: ${totals.lastErrors.slice(-3).join(' | ')})`);
  if (totals.gaps) problems.push(`${totals.gaps} playlist gap(s)`);
  if (totals.pdtCorrections) problems.push(`${totals.pdtCorrections} PROGRAM-DATE-TIME(s) moved between reloads`);
  if (soak.publisherFailures) problems.push(`${soak.publisherFailures} publisher(s) died on their own`);
  if (all.n === 0 && opts.viewers > 0) problems.push('no part delivery was measured');
  if (heapGrowth > HEAP_GROWTH_LIMIT_BYTES)
    problems.push(`heap after the streams stopped is ${mb(heapGrowth)} MB above the baseline (limit ${mb(HEAP_GROWTH_LIMIT_BYTES)} MB)`);
  problems.push(...vods.problems);
  for (const u of load.uploads) {
    if (u.error) problems.push(`an upload failed: ${u.error}`);
    else if (Math.abs((u.durationS ?? 0) - UPLOAD_SECONDS) > 0.5)
      problems.push(`an upload of ${UPLOAD_SECONDS} s became a VOD of ${u.durationS} s`);
  }
  const warm = warmUpMinutes(opts.minutes);
  const judgedReports = load.reports.filter((r) => r.t >= warm);
  const slopeOf = (y: (r: Report) => number) =>
    slope(judgedReports.filter((r) => Number.isFinite(y(r))).map((r) => ({ x: r.t, y: y(r) }))) * 10;
  const heapSlope = slopeOf((r) => r.gcHeapMB);
  const rssSlope = slopeOf((r) => r.gcRssMB);
  const judged = opts.minutes - warm >= SLOPE_MIN_MINUTES;
  for (const [what, v] of [
    ['heap', heapSlope],
    ['RSS', rssSlope],
  ] as const)
    if (judged && v > SLOPE_LIMIT_MB_PER_10MIN)
      problems.push(`${what} grew ${r1(v)} MB per 10 min after the warm-up (limit ${SLOPE_LIMIT_MB_PER_10MIN})`);
  const cpuAvg = load.reports.reduce((a, r) => a + r.cpuPercent, 0) / Math.max(1, load.reports.length);
  const rssMax = Math.max(...load.samples.map((s) => s.rssMB), ...load.reports.map((r) => r.rssMB));
  const slopes = { heapMBPer10Min: r1(heapSlope), rssMBPer10Min: r1(rssSlope), afterMinutes: r1(warm), judged };
  return { pass: problems.length === 0, problems, heapGrowth, all, cpuAvg, rssMax, slopes, vods };
}

export type Verdict = ReturnType<typeof verdict>;

/** What the run was, for the JSON: when, at which commit, with which options and catalog. */
export interface RunInfo {
  readonly startedAt: Date;
  readonly commit: string;
  readonly catalog: string;
  readonly opts: SoakOptions;
}

/** 4. The JSON in --out. */
export function soakResults(run: RunInfo, soak: Soak, load: LoadFigures, baseline: GcMemory, after: GcMemory, v: Verdict) {
  const { startedAt, commit, catalog, opts } = run;
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
      pdtCorrections: totals.pdtCorrections,
      pdtCorrectionMaxMs: r1(totals.pdtCorrectionMaxMs),
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
      slopes: { ...v.slopes, limitMBPer10Min: SLOPE_LIMIT_MB_PER_10MIN, judgedFromMinutesOfLoad: SLOPE_MIN_MINUTES },
    },
    vods: { liveRunsChecked: v.vods.runsChecked, uploads: load.uploads, problems: v.vods.problems },
    cpuAvgPercentOfOneCore: r1(v.cpuAvg),
    rssMaxMB: v.rssMax,
    reports: load.reports,
    samples: load.samples,
  };
  writeResults(opts.out, 'soak', startedAt, results);
  return results;
}

/** 4. The CPU and RSS plot beside the JSON (--plot yes); says where it went or why there is none. */
export async function plotSamples(opts: SoakOptions, startedAt: Date, commit: string, load: LoadFigures): Promise<string> {
  const { samples, reports } = load;
  if (!opts.plot) return 'no plot (--plot no)';
  const pngFile = join(opts.out, `soak-${resultStamp(startedAt)}.png`);
  try {
    const svg = chartSvg(
      `livepack soak ${startedAt.toISOString()} (${commit}): ${opts.streams} streams (${opts.abr} ABR), ${opts.viewers} viewers`,
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
          series: [
            { label: 'RSS', color: '#2471a3', points: samples.map((s) => ({ x: s.t / 60, y: s.rssMB })) },
            { label: 'JS heap used', color: '#27ae60', points: reports.map((r) => ({ x: r.t, y: r.heapUsedMB })) },
            { label: 'RSS after a full GC', color: '#1a5276', points: reports.map((r) => ({ x: r.t, y: r.gcRssMB })) },
            { label: 'JS heap after a full GC', color: '#145a32', points: reports.map((r) => ({ x: r.t, y: r.gcHeapMB })) },
          ],
        },
        {
          title: 'Part delivery delay',
          yLabel: 'ms',
          series: [
            {
              label: `p99 per ${opts.reportSeconds} s report`,
              color: '#8e44ad',
              points: reports.map((r) => ({ x: r.t, y: r.deliveryP99Ms })),
            },
            { label: 'p50', color: '#7f8c8d', points: reports.map((r) => ({ x: r.t, y: r.deliveryP50Ms })) },
          ],
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

export function printSummary(
  opts: SoakOptions,
  soak: Soak,
  load: LoadFigures,
  baseline: GcMemory,
  after: GcMemory,
  v: Verdict,
  plotNote: string,
): void {
  const { totals } = soak;
  const { all } = v;
  console.log(
    `\ndelivery delay over the run: p50 ${r1(all.p50)} ms, p99 ${r1(all.p99)} ms, max ${r1(all.max)} ms (${all.n} held answers); ` +
      `hint p99 ${r1(summarize(load.allHintDelays).p99)} ms; ${totals.requests} requests, ${soak.churns} publisher reconnects, ` +
      `${soak.shortLivedDone} short-lived streams created, watched and deleted`,
  );
  console.log(
    `PDT corrections seen by viewers (parts listed again with a PROGRAM-DATE-TIME moved by more than 20 ms; not gaps, but a fault): ` +
      `${totals.pdtCorrections}, largest ${r1(totals.pdtCorrectionMaxMs)} ms`,
  );
  console.log(
    `memory after a full GC: baseline heap ${mb(baseline.heapUsed)} MB / RSS ${mb(baseline.rss)} MB; after the streams stopped heap ${mb(after.heapUsed)} MB / RSS ${mb(after.rss)} MB`,
  );
  const sl = v.slopes;
  console.log(
    `growth after the first ${sl.afterMinutes} min: heap ${sl.heapMBPer10Min} MB / RSS ${sl.rssMBPer10Min} MB per 10 min` +
      (sl.judged ? ` (limit ${SLOPE_LIMIT_MB_PER_10MIN})` : ` (not judged: under ${SLOPE_MIN_MINUTES} min of load after the warm-up)`),
  );
  const ups = load.uploads;
  console.log(
    `VODs: ${v.vods.runsChecked} live run(s) checked ready and of their length; ${ups.length} upload(s), ${ups.filter((u) => !u.error).length} ready` +
      (ups.length ? ` (durations ${ups.map((u) => u.durationS ?? 'failed').join(', ')} s)` : ''),
  );
  console.log(plotNote);
  console.log(
    `soak ${v.pass ? 'PASS' : 'FAIL'}: ${opts.streams} streams (${opts.abr} ABR), ${opts.viewers} viewers, ${opts.minutes} min; errors ${totals.errors}, gaps ${totals.gaps}, ` +
      `delivery p99 ${r1(all.p99)} ms, CPU ${r1(v.cpuAvg)}% of a core, RSS max ${v.rssMax} MB, heap ${v.heapGrowth >= 0 ? '+' : ''}${mb(v.heapGrowth)} MB after stop` +
      (v.pass ? '' : ` — ${v.problems.join('; ')}`),
  );
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
