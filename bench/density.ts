/**
 * Ingest density bench: `npm run bench:density -- [--step N] [--max N] [--step-seconds S]`.
 *
 * How many passthrough streams one core of the server packages with every part on time. The server runs
 * as its own process pinned to core 0; the synthetic publishers (ffmpeg -c copy, 600 kbit/s 360p30) and
 * this process (the viewers) are pinned to core 1. Each step adds `step` streams, waits until they list
 * parts, lets them settle, then measures for `step-seconds`: one playlist-only LL-HLS viewer per stream
 * gives the part delivery delay (part complete -> held playlist answer announcing it), and the server's
 * CPU, RSS and event loop p99 are read. The ramp stops at the first step whose p99 delay exceeds one
 * PART-TARGET (or with errors or gaps), at --max, or when core 1 saturates (then the figure is only a
 * lower bound: the publishers, not the server, were the limit).
 * Prints a table and writes bench/results/density-<date>.json. Bounded in time; kills its children on exit.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, pinTree } from './lib/cpu.js';
import { newTotals, runViewer, type ViewerTotals } from '../harness/llhls-viewer.js';
import {
  LOAD_CORE,
  linearFit,
  parseRampCli,
  printProvenance,
  printTable,
  provenance,
  requireTwoCores,
  round,
  SATURATED_PERCENT,
  SERVER_CORE,
  writeRampResults,
  type Provenance,
} from './lib/ramp.js';
import { assertRunning, partTargetOf, startLiveStreams, startPinnedServer, type LiveStream } from './lib/ramp-server.js';
import {
  DISTURBED_PERCENT,
  disturbance,
  measureFor,
  openWindow,
  viewerWindow,
  ViewerPool,
  type ViewerWindow,
  type WindowResult,
} from './lib/ramp-window.js';
import { startBenchRun } from './lib/run.js';
import type { ServerProcess } from '../harness/server-process.js';
import { describeSynthetic, syntheticFlv } from './lib/synthetic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** After a step's streams list parts and their viewers joined, before the window opens. */
const SETTLE_MS = 3000;
/** Length of the window with no stream at all (the baseline of the RSS and CPU fits). */
const IDLE_SECONDS = 5;

const cli = parseRampCli('npm run bench:density -- [--step N (default 5)] [--max N (default 200)] [--step-seconds S (default 20)]', {
  step: { default: 5, min: 1, max: 100 },
  max: { default: 200, min: 1, max: 500 },
  'step-seconds': { default: 20, min: 5, max: 600 },
});
const stepSeconds = cli['step-seconds'];
const stepCount = Math.ceil(cli.max / cli.step);
// Per step: the window, settling, and up to ~30 s for the new streams to start; plus start-up and the idle window.
const bench = startBenchRun({ budgetS: 120 + IDLE_SECONDS + stepCount * (stepSeconds + 45), forceExitMs: 30_000 });

interface Step {
  readonly streams: number;
  readonly viewers: ViewerWindow | undefined;
  readonly window: WindowResult;
  /** p99 delay within PART-TARGET, no errors, no gaps. */
  readonly onTime: boolean;
  /** Core 1 (publishers and viewers) was saturated: the step says more about the load than the server. */
  readonly loadSaturated: boolean;
  /** A late first measurement disturbed by other work on the machine, measured again. */
  readonly firstAttempt?: Step;
}

type StopReason = 'late' | 'max' | 'load core saturated';

const log = (s: string) => console.error(`[density] ${s}`);

/** What a measuring window watches: the server, and the viewers' shared totals. */
interface Watch {
  readonly server: ServerProcess;
  readonly totals: ViewerTotals;
  readonly hz: number;
  readonly alive: () => void;
}

/** One window of step-seconds with `streams` streams live; undefined `partTargetMs` for the idle window. */
async function measureStep(w: Watch, streams: number, seconds: number, partTargetMs?: number): Promise<Step> {
  const win = await openWindow(w.server.pid, w.hz, w.server.base);
  const seen = viewerWindow(w.totals);
  await measureFor(bench, seconds, w.alive);
  const viewers = partTargetMs === undefined ? undefined : seen.end();
  const window = await win.stop();
  const onTime = !viewers || (viewers.playlistDelayMs.p99 <= partTargetMs! && viewers.errors === 0 && viewers.gaps === 0);
  return { streams, viewers, window, onTime, loadSaturated: window.loadCoreBusyPercent >= SATURATED_PERCENT };
}

function logStep({ streams, viewers: v, window: w }: Step): void {
  if (!v) return log(`idle: server ${w.serverCpuPercent} % CPU, RSS ${w.serverRssMB} MB`);
  log(
    `${streams} streams: delay p50 ${v.playlistDelayMs.p50} / p99 ${v.playlistDelayMs.p99} ms (n ${v.playlistDelayMs.n}), ${v.errors} errors, ${v.gaps} gaps; ` +
      `server ${w.serverCpuPercent} % CPU, RSS ${w.serverRssMB} MB; core ${LOAD_CORE} ${w.loadCoreBusyPercent} % busy`,
  );
  if (v.lastErrors.length) log(`  last errors: ${v.lastErrors.slice(-3).join(' | ')}`);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const prov = await provenance(startedAt, 'bench:density', ROOT);
  requireTwoCores();
  // This process runs the viewers: keep it off the server's core.
  await pinTree(process.pid, LOAD_CORE);
  const flv = await syntheticFlv();
  const server = await startPinnedServer(bench, ROOT);
  const pool = new ViewerPool(bench.signal);
  bench.cleanups.push(() => pool.close());
  const streams: LiveStream[] = [];
  const watch: Watch = { server, totals: newTotals(), hz: await clockTicks(), alive: () => assertRunning(server, streams) };

  const steps: Step[] = [await measureStep(watch, 0, IDLE_SECONDS)];
  logStep(steps[0]);
  let partTargetMs = Number.NaN;
  let stopReason: StopReason = 'max';
  while (streams.length < cli.max) {
    const added = await startLiveStreams(bench, server, flv, Math.min(cli.step, cli.max - streams.length), streams.length);
    streams.push(...added);
    if (Number.isNaN(partTargetMs)) partTargetMs = (await partTargetOf(added[0].mediaUrl)) * 1000;
    for (const s of added) await pool.add(1, (signal) => runViewer(s.mediaUrl, signal, watch.totals, { fetchParts: false }));
    await bench.sleep(SETTLE_MS);
    bench.check();

    let step = await measureStep(watch, streams.length, stepSeconds, partTargetMs);
    const disturbed = disturbance(step.window);
    if ((!step.onTime || step.loadSaturated) && disturbed) {
      // Others share this machine: a step that ends the ramp while they took a core says little about the server.
      log(`${streams.length} streams: ${step.onTime ? 'core ' + LOAD_CORE + ' saturated' : 'late'} while ${disturbed}; measuring again`);
      step = { ...(await measureStep(watch, streams.length, stepSeconds, partTargetMs)), firstAttempt: step };
    }
    steps.push(step);
    logStep(step);
    if (!step.onTime) {
      stopReason = 'late';
      break;
    }
    if (step.loadSaturated) {
      stopReason = 'load core saturated';
      break;
    }
  }

  report(prov, steps, partTargetMs, stopReason);
}

/** Who kept the load core busy. */
const loadShares = (w: WindowResult) =>
  `publishers ${w.publishersCpuPercent} %, viewers ${w.clientCpuPercent} %, other work ${w.othersOnLoadCorePercent} %`;

function report(prov: Provenance, steps: Step[], partTargetMs: number, stopReason: StopReason): void {
  const measured = steps.filter((s) => s.viewers);
  const lastOnTime = [...measured].reverse().find((s) => s.onTime);
  const streamsPerCore = lastOnTime?.streams ?? 0;
  // Memory and CPU grow with streams whether or not parts are late: fit every step, the idle one included.
  const xs = steps.map((s) => s.streams);
  const rss = linearFit(
    xs,
    steps.map((s) => s.window.serverRssMB ?? Number.NaN),
  );
  const cpu = linearFit(
    xs,
    steps.map((s) => s.window.serverCpuPercent),
  );
  // Only a late step with the load core unsaturated bounds the server from above.
  const lowerBound = stopReason !== 'late' || measured.some((s) => s.loadSaturated);
  const summary = {
    streamsPerCore,
    streamsPerCoreIsLowerBound: lowerBound,
    stopReason,
    partTargetMs,
    rssPerStreamMB: round(rss.slope, 2),
    rssInterceptMB: round(rss.intercept, 1),
    cpuPerStreamPercentOfCore: round(cpu.slope, 3),
    cpuInterceptPercent: round(cpu.intercept, 2),
    cpuPerStreamAtLastOnTimeStep: lastOnTime
      ? round((lastOnTime.window.serverCpuPercent - steps[0].window.serverCpuPercent) / lastOnTime.streams, 3)
      : undefined,
  };

  printProvenance('livepack ingest density bench', prov);
  console.log(`  source: ${describeSynthetic()}, one publisher per stream pinned to core ${LOAD_CORE}`);
  console.log(
    `  server: own process, passthrough streams, pinned to core ${SERVER_CORE}; one playlist-only LL-HLS viewer per stream on core ${LOAD_CORE}`,
  );
  console.log(
    `  limit: p99 part delivery delay <= PART-TARGET (${partTargetMs} ms), no errors, no gaps; ${stepSeconds} s per step after ${SETTLE_MS / 1000} s settling\n`,
  );
  printTable(
    [
      'streams',
      'delay p50',
      'p99',
      'max',
      'n',
      'err',
      'gaps',
      'srv CPU %',
      'RSS MB',
      'srv lag p99',
      `others c${SERVER_CORE} %`,
      'pub CPU %',
      'client CPU %',
      `others c${LOAD_CORE} %`,
      'on time',
    ],
    steps.map((s) => [
      s.streams,
      s.viewers?.playlistDelayMs.p50,
      s.viewers?.playlistDelayMs.p99,
      s.viewers?.playlistDelayMs.max,
      s.viewers?.playlistDelayMs.n,
      s.viewers?.errors,
      s.viewers?.gaps,
      s.window.serverCpuPercent,
      s.window.serverRssMB,
      s.window.serverLoopP99Ms,
      s.window.othersOnServerCorePercent,
      s.window.publishersCpuPercent,
      s.window.clientCpuPercent,
      s.window.othersOnLoadCorePercent,
      s.viewers ? (s.onTime ? 'yes' : 'NO') + (s.loadSaturated ? ' (load sat.)' : '') + (s.firstAttempt ? ' (2nd try)' : '') : 'idle',
    ]),
  );
  console.log(
    '  (delays in ms; CPU in % of one core; "srv lag p99" = the server\'s event loop lag p99 in ms; "others" = busy time of that core not\n' +
      `   ours: other work on the machine; "2nd try" = measured again after a window that would have ended the ramp while others took\n` +
      `   >= ${DISTURBED_PERCENT} % of a core)\n`,
  );
  const stopText = {
    late: 'the next step was over the limit',
    max: `--max ${cli.max} reached`,
    'load core saturated': `core ${LOAD_CORE} saturated (${loadShares(steps[steps.length - 1].window)}): the load, not the server, was the limit`,
  }[stopReason];
  console.log(`  streams per core: ${lowerBound ? '>= ' : ''}${streamsPerCore} (stopped: ${stopText})`);
  if (lowerBound) {
    const why = stopReason === 'max' ? 'the ramp ended on time' : `core ${LOAD_CORE} reached ${SATURATED_PERCENT} % busy during the ramp`;
    console.log(`  this is a lower bound: ${why}`);
  }
  console.log(
    `  RSS per stream: ${summary.rssPerStreamMB} MB (least squares over ${steps.length} steps, idle ${summary.rssInterceptMB} MB)`,
  );
  console.log(
    `  CPU per stream: ${summary.cpuPerStreamPercentOfCore} % of a core (least squares; at the last on-time step ${summary.cpuPerStreamAtLastOnTimeStep ?? '-'} %)`,
  );

  writeRampResults(ROOT, 'density', new Date(prov.date), {
    ...prov,
    setup: {
      source: describeSynthetic(),
      serverCore: SERVER_CORE,
      loadCore: LOAD_CORE,
      step: cli.step,
      max: cli.max,
      stepSeconds,
      settleMs: SETTLE_MS,
      idleSeconds: IDLE_SECONDS,
      viewer: 'harness/llhls-viewer.ts runViewer, fetchParts false, one per stream',
      definitions: {
        delay: 'part delivery delay: arrival of the held playlist answer announcing a part - (PDT + offset + duration of that part)',
        onTime: 'p99 delay <= PART-TARGET, no viewer errors, no gaps in the window',
        serverCpuPercent: 'CPU of the server process tree over the window, % of one core',
        loadSaturated: `core ${LOAD_CORE} busy >= ${SATURATED_PERCENT} % over the window (/proc/stat)`,
      },
    },
    summary,
    steps,
  });
}

main().then(
  () => bench.shutdown(0),
  (err: unknown) => {
    if (!bench.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return bench.shutdown(bench.signal.aborted ? 130 : 1);
  },
);
