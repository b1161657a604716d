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
}

export const mb = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
export const r1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);

export function printReportHeader(): void {
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

export function printReport(r: Report): void {
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

// ---- the end ----

/** 4. The verdict: no errors, no gaps, no publisher that died on its own, heap back near the baseline. */
export function verdict(opts: SoakOptions, soak: Soak, load: LoadFigures, baseline: GcMemory, after: GcMemory) {
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
export async function plotSamples(opts: SoakOptions, startedAt: Date, commit: string, samples: readonly Sample[]): Promise<string> {
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
    `memory after a full GC: baseline heap ${mb(baseline.heapUsed)} MB / RSS ${mb(baseline.rss)} MB; after the streams stopped heap ${mb(after.heapUsed)} MB / RSS ${mb(after.rss)} MB`,
  );
  console.log(plotNote);
  console.log(
    `soak ${v.pass ? 'PASS' : 'FAIL'}: ${opts.streams} streams, ${opts.viewers} viewers, ${opts.minutes} min; errors ${totals.errors}, gaps ${totals.gaps}, ` +
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
