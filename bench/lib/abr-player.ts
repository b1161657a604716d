/**
 * The ABR bench's player: the watch page in headless Chromium sampling hls.js (latency, level, target,
 * buffer) and noting slow or failed requests, what it read at the end, and the figures of one window.
 */
import type { Browser, Request } from 'playwright-core';
import { launchBrowser, openPage, type OpenedPage } from '../../harness/browser.js';
import type { ServerProcess } from '../../harness/server-process.js';
import type { BenchRun } from './run.js';
import { rounded, summarize } from './stats.js';

const SAMPLE_EVERY_MS = 250;
const SLOW_REQUEST_MS = 1000;

interface PageSample {
  t: number;
  latencyMs: number | null;
  paused: boolean;
  level: number;
  height: number | null;
  /** hls.targetLatency (s): hls.js raises it by a second on each stall. */
  target: number | null;
  rate: number;
  /** Seconds buffered ahead of the playhead. */
  ahead: number | null;
  /** How many hls.js error events there were so far. */
  errors: number;
}

/** A request of the page that took over SLOW_REQUEST_MS or failed. */
interface SlowRequest {
  endedAt: number;
  ms: number;
  url: string;
  failure?: string;
}

/** What the page itself gives at the end. */
interface PageReadout {
  samples: PageSample[];
  waiting: number[];
  playing: number[];
  errors: { type: string; details: string; fatal: boolean }[];
  levels: { height: number; width: number; bitrate: number }[];
  bandwidthEstimate: number | null;
  hlsVersion: string;
}

/** The page's readout and the slow requests noted from outside (still growing until the browser closes). */
export interface PageDump extends PageReadout {
  slowRequests: readonly SlowRequest[];
}

export interface Player {
  readonly browser: Browser;
  readonly page: OpenedPage;
  readonly openedAt: number;
  readonly slowRequests: SlowRequest[];
}

/**
 * 2. The watch page of `streamId` in headless Chromium, sampling hls.js every SAMPLE_EVERY_MS and noting
 * the requests that took over a second (blocking reloads and preload hints are held for about a part,
 * 0.2 s) or failed: what the player waited for when it stalls.
 */
export async function openPlayer(bench: BenchRun, server: ServerProcess, streamId: string): Promise<Player> {
  const slowRequests: SlowRequest[] = [];
  const browser: Browser = await launchBrowser();
  bench.cleanups.push(() => browser.close());
  const page = await openPage(browser, `${server.base}/watch/${streamId}`);
  const openedAt = Date.now();
  const sentAt = new WeakMap<object, number>();
  page.page.on('request', (req) => sentAt.set(req, Date.now()));
  const settled = (req: Request, failure?: string) => {
    const t = sentAt.get(req);
    const ms = t === undefined ? 0 : Date.now() - t;
    if ((failure || ms > SLOW_REQUEST_MS) && slowRequests.length < 500) {
      slowRequests.push({ endedAt: Date.now(), ms, url: req.url().replace(server.base, ''), ...(failure ? { failure } : {}) });
    }
  };
  page.page.on('requestfinished', (req) => settled(req));
  page.page.on('requestfailed', (req) => settled(req, req.failure()?.errorText ?? 'failed'));
  await page.page.evaluate((every) => {
    const w = window as any;
    const out: unknown[] = (w.__bench = []);
    w.__benchWaiting = [];
    w.__benchPlaying = [];
    w.__player.video.addEventListener('waiting', () => w.__benchWaiting.push(Date.now()));
    w.__player.video.addEventListener('playing', () => w.__benchPlaying.push(Date.now()));
    setInterval(() => {
      const hls = w.__player.hls;
      const video = w.__player.video as HTMLVideoElement;
      const pd: Date | null = hls ? hls.playingDate : null;
      const level: number = hls ? hls.currentLevel : -1;
      out.push({
        t: Date.now(),
        latencyMs: pd ? Date.now() - pd.getTime() : null,
        paused: video.paused,
        level,
        height: hls && level >= 0 ? (hls.levels[level]?.height ?? null) : null,
        target: hls && typeof hls.targetLatency === 'number' ? Number(hls.targetLatency.toFixed(2)) : null,
        rate: video.playbackRate,
        ahead: video.buffered.length ? Number((video.buffered.end(video.buffered.length - 1) - video.currentTime).toFixed(3)) : null,
        errors: w.__player.errors.length,
      });
    }, every);
  }, SAMPLE_EVERY_MS);
  return { browser, page, openedAt, slowRequests };
}

/** What the page sampled, and the hls.js levels, errors and bandwidth estimate at the end. */
export async function readPlayer(player: Player): Promise<PageDump> {
  const readout = await player.page.page.evaluate<PageReadout>(() => {
    const w = window as any;
    const hls = w.__player.hls;
    return {
      samples: w.__bench,
      waiting: w.__benchWaiting,
      playing: w.__benchPlaying,
      errors: w.__player.errors.map((e: any) => ({ type: String(e.type), details: String(e.details), fatal: Boolean(e.fatal) })),
      levels: (hls?.levels ?? []).map((l: any) => ({ height: l.height, width: l.width, bitrate: l.bitrate })),
      bandwidthEstimate: hls ? Math.round(hls.bandwidthEstimate) : null,
      hlsVersion: String(w.Hls?.version ?? ''),
    };
  });
  return { ...readout, slowRequests: player.slowRequests };
}

/** The player's figures between `from` and `to` (epoch ms). */
export function playerFigures(dump: PageDump, from: number, to: number) {
  const inWindow = dump.samples.filter((s) => s.t >= from && s.t <= to);
  const playing = inWindow.filter((s) => s.latencyMs !== null && !s.paused);
  const latency = rounded(summarize(playing.map((s) => s.latencyMs! / 1000)), 3);
  const heights: Record<string, number> = {};
  for (const s of inWindow) {
    const k = s.height ? `${s.height}p` : `level ${s.level}`;
    heights[k] = (heights[k] ?? 0) + 1;
  }
  const levelShare = Object.fromEntries(
    Object.entries(heights).map(([k, n]) => [k, Number((n / Math.max(1, inWindow.length)).toFixed(3))]),
  );
  let switches = 0;
  for (let i = 1; i < inWindow.length; i++) if (inWindow[i].level !== inWindow[i - 1].level) switches++;
  const first = inWindow.at(0);
  const last = inWindow.at(-1);
  const errors = first && last ? dump.errors.slice(first.errors, last.errors) : [];
  // Stalled time: from each 'waiting' to the next 'playing' (or the window's end), clipped to the window.
  const stalls = dump.waiting.filter((t) => t >= from && t <= to);
  let stalledMs = 0;
  for (const w of dump.waiting) {
    const resumed = dump.playing.find((p) => p >= w) ?? to;
    stalledMs += Math.max(0, Math.min(resumed, to) - Math.max(w, from));
  }
  return {
    latency,
    samplesWithoutDate: inWindow.length - playing.length,
    waitingEvents: stalls.length,
    stalledS: Number((stalledMs / 1000).toFixed(2)),
    hlsErrors: errors,
    hlsTargetLatencyS: { atStart: first?.target ?? null, atEnd: last?.target ?? null },
    levelAtEnd: last ? { level: last.level, height: last.height } : null,
    levelShare,
    levelSwitches: switches,
    samples: inWindow.map((s) => [s.t - from, s.latencyMs, s.height, s.target, s.rate, s.ahead, s.paused ? 1 : 0]),
    samplesColumns: [
      'ms since window start',
      'latency ms (null: no playing date)',
      'height played',
      'hls.targetLatency s',
      'playbackRate',
      'buffered ahead s',
      'paused',
    ],
    slowRequests: dump.slowRequests
      .filter((x) => x.endedAt >= from && x.endedAt - x.ms <= to)
      .map(({ endedAt, ...x }) => ({ sentAtMsInWindow: endedAt - x.ms - from, ...x })),
  };
}
