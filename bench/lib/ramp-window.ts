import { setMaxListeners } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { busyPercent, TreeCpu } from './cpu.js';
import type { ViewerTotals } from '../../harness/llhls-viewer.js';
import { rssOf } from '../../harness/processes.js';
import { coreCpu, LOAD_CORE, mb, round, SERVER_CORE } from './ramp.js';
import { scrapeMetrics } from './ramp-server.js';
import type { BenchRun } from './run.js';
import { rounded, summarize, type Summary } from './stats.js';

/** Pools of simulated viewers and the measured windows of a ramp step: the origin's CPU, memory and loop, both cores, this client. */

// ---- viewers ----

/** Many concurrent viewers (any async loop that ends when its signal aborts), stopped together. */
export class ViewerPool {
  readonly #stop = new AbortController();
  readonly #running: Promise<void>[] = [];

  constructor(benchSignal: AbortSignal) {
    // Every request of every viewer listens on this signal.
    setMaxListeners(0, this.#stop.signal);
    benchSignal.addEventListener('abort', () => this.#stop.abort(), { once: true });
  }

  /**
   * Start `count` viewers spread over `spreadMs`: a thousand joins in the same millisecond would measure
   * the join, not the steady state.
   */
  async add(count: number, run: (signal: AbortSignal) => Promise<void>, spreadMs = 1000): Promise<void> {
    for (let i = 0; i < count && !this.#stop.signal.aborted; i++) {
      this.#running.push(run(this.#stop.signal).catch(() => {}));
      if (count > 1) await new Promise((r) => setTimeout(r, spreadMs / count));
    }
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#running);
  }
}

// ---- measured windows ----

export interface WindowResult {
  readonly wallS: number;
  /** The measured server's process tree (our server or nginx), % of one core. */
  readonly serverCpuPercent: number;
  /** Mean of one RSS reading a second over the window. */
  readonly serverRssMB: number | undefined;
  /** Busy % of the two cores from /proc/stat. */
  readonly serverCoreBusyPercent: number;
  readonly loadCoreBusyPercent: number;
  /** What else kept the server's core busy (busy % minus the server's own), % of the core: other work on the machine. */
  readonly othersOnServerCorePercent: number;
  /** The same for the load core, minus this process and the publishers. */
  readonly othersOnLoadCorePercent: number;
  /** This process (the viewers), % of one core. */
  readonly clientCpuPercent: number;
  /** This process's children (the publishers), % of one core. */
  readonly publishersCpuPercent: number;
  /** This process's event loop lag p99, ms: a late client inflates every delay it measures. */
  readonly clientLoopP99Ms: number;
  /** The server's event loop lag p99 (nodejs_eventloop_lag_p99_seconds) over the window, ms (our server only). */
  readonly serverLoopP99Ms: number | undefined;
}

/**
 * Start a measuring window over the server `serverPid` (with its /metrics at `metricsBase`, if any), the two
 * cores and this process; `stop()` ends it. Scraping /metrics at the start resets prom-client's event loop
 * histogram, so the scrape at the end covers just the window.
 */
export async function openWindow(serverPid: number, hz: number, metricsBase?: string): Promise<{ stop(): Promise<WindowResult> }> {
  if (metricsBase) await scrapeMetrics(metricsBase);
  const server = new TreeCpu(serverPid, hz);
  const self = new TreeCpu(process.pid, hz);
  const loop = monitorEventLoopDelay({ resolution: LOOP_TIMER_MS });
  const c0 = [coreCpu(SERVER_CORE), coreCpu(LOAD_CORE)];
  // RSS moves with every garbage collection: average a sample a second rather than trust one reading.
  const rss: number[] = [];
  const sampleRss = () => {
    const b = rssOf(serverPid);
    if (b !== undefined) rss.push(b);
  };
  const rssTimer = setInterval(sampleRss, 1000);
  sampleRss();
  server.start();
  self.start();
  loop.enable();
  return {
    async stop() {
      loop.disable();
      clearInterval(rssTimer);
      sampleRss();
      const s = server.stop();
      const mine = self.stop();
      const c1 = [coreCpu(SERVER_CORE), coreCpu(LOAD_CORE)];
      const ownS = mine.processes.find((p) => p.pid === process.pid)?.cpuS ?? 0;
      const pct = (cpuS: number) => round((cpuS / mine.wallS) * 100, 1);
      const lag = metricsBase ? (await scrapeMetrics(metricsBase)).get('nodejs_eventloop_lag_p99_seconds') : undefined;
      const serverCoreBusyPercent = busyPercent(c0[0], c1[0]);
      const loadCoreBusyPercent = busyPercent(c0[1], c1[1]);
      const clientCpuPercent = pct(ownS);
      // The tree also holds the server when this process started it: count only the publishers (ffmpeg).
      const publishersCpuPercent = pct(mine.processes.filter((p) => p.comm === 'ffmpeg').reduce((a, p) => a + p.cpuS, 0));
      return {
        wallS: s.wallS,
        serverCpuPercent: s.percentOfOneCore,
        serverRssMB: rss.length ? mb(rss.reduce((a, b) => a + b, 0) / rss.length) : undefined,
        serverCoreBusyPercent,
        loadCoreBusyPercent,
        othersOnServerCorePercent: round(Math.max(0, serverCoreBusyPercent - s.percentOfOneCore), 1),
        othersOnLoadCorePercent: round(Math.max(0, loadCoreBusyPercent - clientCpuPercent - publishersCpuPercent), 1),
        clientCpuPercent,
        publishersCpuPercent,
        clientLoopP99Ms: loopLagMs(loop.percentile(99)),
        serverLoopP99Ms: lag === undefined ? undefined : loopLagMs(lag * 1e9),
      };
    },
  };
}

/**
 * Both histograms (ours here, prom-client's in the server, default precision alike) time a 10 ms timer and
 * record the whole interval: an idle loop reads 10 ms. The lag is what exceeds it.
 */
const LOOP_TIMER_MS = 10;
const loopLagMs = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_TIMER_MS), 1);

/**
 * Other work on the machine (others share it) took this much of either core during a window: a step over
 * its limit in such a window is measured again once.
 */
export const DISTURBED_PERCENT = 15;

/** How other work disturbed a window ("32 % of core 0, ..."), or undefined when it did not. */
export function disturbance(w: WindowResult): string | undefined {
  const parts = [
    w.othersOnServerCorePercent >= DISTURBED_PERCENT ? `${w.othersOnServerCorePercent} % of core ${SERVER_CORE}` : '',
    w.othersOnLoadCorePercent >= DISTURBED_PERCENT ? `${w.othersOnLoadCorePercent} % of core ${LOAD_CORE}` : '',
  ].filter(Boolean);
  return parts.length ? `other work took ${parts.join(' and ')}` : undefined;
}

/** Sleep `seconds`, checking `alive` every second so that a dead child ends the bench at once. */
export async function measureFor(bench: BenchRun, seconds: number, alive: () => void): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await bench.sleep(Math.min(1000, end - Date.now()));
    bench.check();
    alive();
  }
}

// ---- what the LL-HLS viewers saw in a window ----

export interface ViewerWindow {
  /** Part delivery delay of held playlist answers, ms (see llhls-viewer.ts). */
  readonly playlistDelayMs: Summary;
  /** The same for held preload-hint part fetches (whole body), ms. */
  readonly hintDelayMs: Summary;
  readonly requests: number;
  readonly errors: number;
  readonly gaps: number;
  readonly lastErrors: string[];
}

/**
 * Start counting what viewers sharing `totals` see: the delay samples gathered so far are dropped (they
 * belong to the settling time) and the counters are read, so that `end()` gives this window alone.
 */
export function viewerWindow(totals: ViewerTotals): { end(): ViewerWindow } {
  totals.playlistDelaysMs.length = 0;
  totals.hintDelaysMs.length = 0;
  const at = { requests: totals.requests, errors: totals.errors, gaps: totals.gaps };
  return {
    end() {
      const w: ViewerWindow = {
        playlistDelayMs: rounded(summarize(totals.playlistDelaysMs), 1),
        hintDelayMs: rounded(summarize(totals.hintDelaysMs), 1),
        requests: totals.requests - at.requests,
        errors: totals.errors - at.errors,
        gaps: totals.gaps - at.gaps,
        lastErrors: totals.errors > at.errors ? [...totals.lastErrors] : [],
      };
      totals.playlistDelaysMs.length = 0;
      totals.hintDelaysMs.length = 0;
      return w;
    },
  };
}
