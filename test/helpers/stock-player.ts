import type { Browser, Page } from 'playwright-core';

/**
 * Stock hls.js as a third-party page embeds it: `new Hls({ lowLatencyMode: true })` and nothing else (no
 * retry, no catch-up, no error handling of ours), loaded from the server's own copy of the library. The
 * page records every ERROR event and the media element's state for the test to read.
 */
export interface StockPlayer {
  readonly page: Page;
  snapshot(): Promise<StockSnapshot>;
  close(): Promise<void>;
}

export interface StockSnapshot {
  readonly currentTime: number;
  readonly paused: boolean;
  readonly ended: boolean;
  readonly errors: { type: string; details: string; fatal: boolean; reason: string }[];
  /** hls.js's live edge estimate of the latency (s). */
  readonly latency: number | null;
  /** PROGRAM-DATE-TIME at the playhead (ms since epoch). */
  readonly playingDate: number | null;
  /** Total time the media element spent waiting for data ('waiting' until 'playing'), ms. */
  readonly waitingMs: number;
  /** The media element's duration, buffered ranges and readyState, for a failure to show where it stuck. */
  readonly duration: number;
  readonly buffered: [number, number][];
  readonly readyState: number;
}

export async function openStockPlayer(
  browser: Browser,
  base: string,
  src: string,
  config: Record<string, unknown> = {},
): Promise<StockPlayer> {
  // The document is a third-party page of our own, not one of the server's: the server's CSP (meant for its
  // own pages and answers, see src/api/security-headers.ts) is not that page's.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  // Any page of the server's origin, then our own document: the player's requests are same-origin.
  await page.goto(`${base}/healthz`, { waitUntil: 'load', timeout: 15_000 });
  await page.setContent('<!doctype html><html><body><video id="v" muted autoplay playsinline></video></body></html>');
  await page.addScriptTag({ url: `${base}/player/hls.min.js` });
  await page.evaluate(
    ({ src, config }) => {
      const w = window as any;
      const video = document.getElementById('v') as HTMLVideoElement;
      const rec = { errors: [] as unknown[], waitingMs: 0, since: undefined as number | undefined };
      w.__rec = rec;
      video.addEventListener('waiting', () => (rec.since ??= performance.now()));
      video.addEventListener('playing', () => {
        if (rec.since !== undefined) rec.waitingMs += performance.now() - rec.since;
        rec.since = undefined;
      });
      const hls = new w.Hls({ lowLatencyMode: true, ...config });
      w.__hls = hls;
      hls.on(w.Hls.Events.ERROR, (_e: unknown, d: any) => {
        rec.errors.push({
          type: String(d.type),
          details: String(d.details),
          fatal: Boolean(d.fatal),
          reason: String(d.error?.message ?? d.reason ?? '').slice(0, 600),
        });
      });
      hls.loadSource(src);
      hls.attachMedia(video);
      void video.play().catch(() => {});
    },
    { src, config },
  );
  return {
    page,
    snapshot: () =>
      page.evaluate(() => {
        const w = window as any;
        const video = document.getElementById('v') as HTMLVideoElement;
        const hls = w.__hls;
        const rec = w.__rec;
        const pd: Date | null = hls?.playingDate ?? null;
        const waiting = rec.since !== undefined ? performance.now() - rec.since : 0;
        return {
          currentTime: video.currentTime,
          paused: video.paused,
          ended: video.ended,
          errors: rec.errors,
          latency: typeof hls?.latency === 'number' ? hls.latency : null,
          playingDate: pd ? pd.getTime() : null,
          waitingMs: rec.waitingMs + waiting,
          duration: video.duration,
          buffered: Array.from(
            { length: video.buffered.length },
            (_, i) => [video.buffered.start(i), video.buffered.end(i)] as [number, number],
          ),
          readyState: video.readyState,
        };
      }),
    close: () => context.close().catch(() => {}),
  };
}
