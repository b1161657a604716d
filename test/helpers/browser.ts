import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Headless Chromium for e2e tests and the latency bench. Uses the system Chromium (never a downloaded
 * one); every page gets a fresh context, so no profile state carries over between tests.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
] as const;

/** Launch Chromium. Signal handling is left to the caller, which closes the browser itself. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    timeout: 30_000,
  });
}

export interface OpenedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions thrown in the page ('pageerror'). */
  readonly pageErrors: Error[];
  /** Every request URL the page made, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A fresh context and page at `url`, collecting page errors and request URLs from the start. */
export async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors: Error[] = [];
  const requests: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  page.on('request', (req) => {
    if (requests.length < 20_000) requests.push(req.url());
  });
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  return {
    context,
    page,
    pageErrors,
    requests,
    close: () => context.close().catch(() => {}),
  };
}

/** What the watch page shows and what its hls.js instance knows, read from window.__player and the DOM. */
export interface PlayerSnapshot {
  readonly hasHls: boolean;
  readonly currentTime: number;
  readonly paused: boolean;
  readonly readyState: number;
  readonly latency: number | null;
  readonly ended: boolean;
  readonly errors: { type: string; details: string; fatal: boolean }[];
  readonly badge: string;
  readonly status: string;
  /** Quality menu entries other than "Auto". */
  readonly renditions: string[];
  readonly lowLatencyMode: boolean | null;
  readonly partTarget: number | null;
  readonly canBlockReload: boolean | null;
  readonly playingDate: number | null;
  readonly targetLatency: number | null;
}

export function playerSnapshot(page: Page): Promise<PlayerSnapshot> {
  return page.evaluate(() => {
    // The page's globals are untyped here: this function runs in the browser.
    const p = (window as any).__player;
    const hls = p?.hls;
    const video = p?.video as HTMLVideoElement | undefined;
    const levels: any[] = hls?.levels ?? [];
    const details = hls?.latestLevelDetails ?? levels.find((l) => l?.details)?.details ?? null;
    const options = Array.from((document.getElementById('quality') as HTMLSelectElement | null)?.options ?? []);
    const pd: Date | null = hls?.playingDate ?? null;
    return {
      hasHls: Boolean(hls),
      currentTime: video?.currentTime ?? 0,
      paused: video?.paused ?? true,
      readyState: video?.readyState ?? 0,
      latency: typeof p?.latency === 'number' ? p.latency : null,
      ended: Boolean(p?.ended),
      errors: (p?.errors ?? []).map((e: any) => ({ type: String(e.type), details: String(e.details), fatal: Boolean(e.fatal) })),
      badge: document.getElementById('badge')?.textContent ?? '',
      status: document.getElementById('status')?.textContent ?? '',
      renditions: options.filter((o) => o.value !== '-1').map((o) => o.textContent ?? ''),
      lowLatencyMode: hls ? Boolean(hls.config?.lowLatencyMode) : null,
      partTarget: details ? Number(details.partTarget) : null,
      canBlockReload: details ? Boolean(details.canBlockReload) : null,
      playingDate: pd ? pd.getTime() : null,
      targetLatency: typeof hls?.targetLatency === 'number' ? hls.targetLatency : null,
    };
  });
}
