import type { Browser, BrowserContext, Page } from 'playwright-core';

/**
 * The player page of the latency bench, instrumented the same way whichever player runs:
 *   - `ours`: the watch page (/watch/<id>, player/player.js with its own catch-up), unchanged;
 *   - `stock`: a blank page of the server's origin that loads the server's /player/hls.min.js and runs
 *     `new Hls({ lowLatencyMode: true })` with nothing else, as a third-party page embeds it (the approach of
 *     test/helpers/stock-player.ts).
 * A probe in the page records, for every hls.js instance the page makes, the start-up timeline (first
 * playlist and how stale its live edge was, first part requested, first 'playing') and samples the latency
 * every `sampleEveryMs`. `hlsConfig` is merged over the page's own hls.js config (empty: the page as is).
 */
export type PlayerKind = 'stock' | 'ours';

export interface LatencySample {
  /** Date.now() in the page. */
  readonly t: number;
  /** Date.now() - hls.playingDate (PROGRAM-DATE-TIME at the playhead), ms; null without a date. */
  readonly latencyMs: number | null;
  readonly paused: boolean;
  /** hls.js's own estimate: (playlist edge + time since it was loaded) - currentTime, s. */
  readonly hlsLatency: number | null;
  readonly targetLatency: number | null;
  readonly playbackRate: number;
  /** Buffered media ahead of the playhead, s. */
  readonly aheadS: number | null;
  readonly level: number;
  /** media.currentTime, s. */
  readonly currentTime: number;
}

/** What the probe saw when the player started (every time is Date.now() in the page). */
export interface StartTimeline {
  readonly probeAt: number;
  readonly manifestLoadedAt?: number;
  /** The first media playlist: when it arrived and what hls.js made of it. */
  readonly firstLevel?: {
    readonly at: number;
    /** How long before its arrival the last listed part was complete at ingest (PDT + offset + duration), ms. */
    readonly edgeStaleMs: number | null;
    readonly partHoldBack: number;
    readonly partTarget: number;
    readonly targetDuration: number;
    readonly targetLatency: number | null;
    readonly level: number;
  };
  /** The first media request: where in the playlist hls.js starts and where it will put the playhead. */
  readonly firstFrag?: {
    readonly at: number;
    readonly sn: number | string;
    readonly part: number | null;
    readonly independent: boolean | null;
    /** Media time the first loaded part (or segment) starts at. */
    readonly start: number;
    /** hls.startPosition and hls.liveSyncPosition at that moment, media time. */
    readonly startPosition: number | null;
    readonly liveSyncPosition: number | null;
    readonly edge: number | null;
    readonly bitrateTest: boolean;
  };
  readonly firstPlaying?: {
    readonly at: number;
    readonly currentTime: number;
    readonly bufferStart: number | null;
    readonly latencyMs: number | null;
    readonly hlsLatency: number | null;
    readonly targetLatency: number | null;
  };
}

export interface ProbeReadout {
  readonly samples: LatencySample[];
  /** Date.now() of each 'waiting' event after the first 'playing'. */
  readonly waiting: number[];
  /** Time spent waiting ('waiting' to 'playing') after the first 'playing', ms. */
  readonly waitingMs: number;
  readonly errors: { t: number; type: string; details: string; fatal: boolean }[];
  readonly start: StartTimeline | null;
  /** hls.js instances the page made (ours makes a new one after a fatal error). */
  readonly instances: number;
  readonly levelSwitches: number;
  readonly hlsVersion: string;
}

export interface LatencyPage {
  readonly page: Page;
  /** Date.now() (in this process) when the player was told to load. */
  readonly openedAt: number;
  read(): Promise<ProbeReadout>;
  close(): Promise<void>;
}

/**
 * Runs in the page before any of its scripts (as an init script) or right after a blank document was set
 * (stock). Defines window.__probeAttach(hls) and, for pages that make their own hls.js, wraps window.Hls
 * the moment hls.min.js assigns it so that every instance is probed and gets `overrides` in its config.
 */
function probeSource(arg: { every: number; overrides: Record<string, unknown>; wrap: boolean }): void {
  const w = window as any;
  if (w.__probe) return;
  const probe: any = (w.__probe = {
    samples: [],
    waiting: [],
    waitingMs: 0,
    waitingSince: undefined,
    errors: [],
    start: { probeAt: Date.now() },
    hls: null,
    media: null,
    instances: 0,
    levelSwitches: 0,
  });
  const pdtOf = (hls: any): number | null => {
    const d: Date | null = hls.playingDate;
    return d ? d.getTime() : null;
  };
  const ahead = (m: HTMLMediaElement): number | null => (m.buffered.length ? m.buffered.end(m.buffered.length - 1) - m.currentTime : null);
  const onMedia = (media: HTMLMediaElement) => {
    if (probe.media === media) return;
    probe.media = media;
    media.addEventListener('waiting', () => {
      if (!probe.start.firstPlaying) return;
      probe.waiting.push(Date.now());
      probe.waitingSince ??= performance.now();
    });
    media.addEventListener('playing', () => {
      if (probe.waitingSince !== undefined) probe.waitingMs += performance.now() - probe.waitingSince;
      probe.waitingSince = undefined;
      if (probe.start.firstPlaying) return;
      const hls = probe.hls;
      const pdt = hls ? pdtOf(hls) : null;
      probe.start.firstPlaying = {
        at: Date.now(),
        currentTime: media.currentTime,
        bufferStart: media.buffered.length ? media.buffered.start(0) : null,
        latencyMs: pdt ? Date.now() - pdt : null,
        hlsLatency: hls && typeof hls.latency === 'number' ? hls.latency : null,
        targetLatency: hls?.targetLatency ?? null,
      };
    });
  };
  w.__probeAttach = (hls: any) => {
    const H = w.Hls;
    probe.hls = hls;
    probe.instances++;
    const E = H.Events;
    hls.on(E.MEDIA_ATTACHED, (_e: unknown, d: any) => onMedia(d.media));
    hls.on(E.MANIFEST_LOADED, () => (probe.start.manifestLoadedAt ??= Date.now()));
    hls.on(E.LEVEL_LOADED, (_e: unknown, d: any) => {
      if (probe.start.firstLevel) return;
      const det = d.details;
      const parts: any[] = det.partList ?? [];
      const last = parts[parts.length - 1];
      const f = last?.fragment;
      const edgePdt =
        last && f && Number.isFinite(f.programDateTime) ? f.programDateTime + (last.start + last.duration - f.start) * 1000 : null;
      probe.start.firstLevel = {
        at: Date.now(),
        edgeStaleMs: edgePdt === null ? null : Date.now() - edgePdt,
        partHoldBack: det.partHoldBack,
        partTarget: det.partTarget,
        targetDuration: det.targetduration,
        targetLatency: null,
        level: d.level,
      };
      // hls.js reads latestLevelDetails after this event; take its target latency on the next task.
      setTimeout(() => (probe.start.firstLevel.targetLatency = hls.targetLatency ?? null), 0);
    });
    hls.on(E.FRAG_LOADING, (_e: unknown, d: any) => {
      if (d.frag?.sn === 'initSegment') return;
      if (probe.start.firstFrag) return;
      const det = hls.latestLevelDetails;
      probe.start.firstFrag = {
        at: Date.now(),
        sn: d.frag.sn,
        part: d.part ? d.part.index : null,
        independent: d.part ? Boolean(d.part.independent) : null,
        start: d.part ? d.part.start : d.frag.start,
        startPosition: typeof hls.startPosition === 'number' ? hls.startPosition : null,
        liveSyncPosition: hls.liveSyncPosition ?? null,
        edge: det ? det.edge : null,
        bitrateTest: Boolean(d.frag.bitrateTest),
      };
    });
    hls.on(E.LEVEL_SWITCHED, () => probe.levelSwitches++);
    hls.on(E.ERROR, (_e: unknown, d: any) => {
      if (probe.errors.length < 500)
        probe.errors.push({ t: Date.now(), type: String(d.type), details: String(d.details), fatal: Boolean(d.fatal) });
    });
  };
  setInterval(() => {
    const hls = probe.hls;
    const m: HTMLMediaElement | null = probe.media;
    if (!hls || !m) return;
    const pdt = pdtOf(hls);
    probe.samples.push({
      t: Date.now(),
      latencyMs: pdt ? Date.now() - pdt : null,
      paused: m.paused,
      hlsLatency: typeof hls.latency === 'number' && hls.latency > 0 ? hls.latency : null,
      targetLatency: hls.targetLatency ?? null,
      playbackRate: m.playbackRate,
      aheadS: ahead(m),
      level: hls.currentLevel,
      currentTime: m.currentTime,
    });
  }, arg.every);
  if (!arg.wrap) return;
  let wrapped: unknown;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get: () => wrapped,
    set: (Real: any) => {
      wrapped = class ProbedHls extends Real {
        constructor(config: Record<string, unknown>) {
          super({ ...config, ...arg.overrides });
          w.__probeAttach(this);
        }
      };
    },
  });
}

/**
 * The probe as script text. tsx compiles with esbuild's keepNames, which wraps named functions in the
 * probe with a `__name` helper the page does not have: the text brings a stand-in.
 */
function probeScript(arg: Parameters<typeof probeSource>[0]): string {
  return `window.__name = window.__name || ((f) => f);\n(${probeSource.toString()})(${JSON.stringify(arg)});`;
}

export async function openLatencyPage(
  browser: Browser,
  opts: { kind: PlayerKind; base: string; streamId: string; sampleEveryMs: number; hlsConfig: Record<string, unknown> },
): Promise<LatencyPage> {
  // The stock page is a third-party document of our own: the server's CSP (for its own pages and answers)
  // is not that page's. Our page (/watch) keeps the server's CSP.
  const context: BrowserContext = await browser.newContext(opts.kind === 'stock' ? { bypassCSP: true } : {});
  const page = await context.newPage();
  const every = opts.sampleEveryMs;
  if (opts.kind === 'ours') {
    await context.addInitScript({ content: probeScript({ every, overrides: opts.hlsConfig, wrap: true }) });
    const openedAt = Date.now();
    await page.goto(`${opts.base}/watch/${opts.streamId}`, { waitUntil: 'load', timeout: 15_000 });
    return { page, openedAt, read: () => readProbe(page), close: () => context.close().catch(() => {}) };
  }
  // Any page of the server's origin, then a document of our own: the player's requests are same-origin.
  await page.goto(`${opts.base}/healthz`, { waitUntil: 'load', timeout: 15_000 });
  await page.setContent('<!doctype html><html><body><video id="v" muted autoplay playsinline></video></body></html>');
  await page.addScriptTag({ url: `${opts.base}/player/hls.min.js` });
  await page.addScriptTag({ content: probeScript({ every, overrides: {}, wrap: false }) });
  const openedAt = Date.now();
  await page.evaluate(
    ({ src, config }) => {
      const w = window as any;
      const video = document.getElementById('v') as HTMLVideoElement;
      const hls = new w.Hls({ lowLatencyMode: true, ...config });
      w.__probeAttach(hls);
      hls.loadSource(src);
      hls.attachMedia(video);
      void video.play().catch(() => {});
    },
    { src: `${opts.base}/live/${opts.streamId}/master.m3u8`, config: opts.hlsConfig },
  );
  return { page, openedAt, read: () => readProbe(page), close: () => context.close().catch(() => {}) };
}

function readProbe(page: Page): Promise<ProbeReadout> {
  return page.evaluate(() => {
    const w = window as any;
    const p = w.__probe;
    const waitingNow = p.waitingSince !== undefined ? performance.now() - p.waitingSince : 0;
    return {
      samples: p.samples,
      waiting: p.waiting,
      waitingMs: Math.round(p.waitingMs + waitingNow),
      errors: p.errors,
      start: p.start ?? null,
      instances: p.instances,
      levelSwitches: p.levelSwitches,
      hlsVersion: String(w.Hls?.version ?? ''),
    };
  });
}
