import type { Page } from 'playwright-core';

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
