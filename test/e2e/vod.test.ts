import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage, type OpenedPage } from '../../harness/browser.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * A live run becomes a VOD, seen from headless Chromium: FFmpeg publishes 12 s over RTMP while the watch page
 * plays the run through its video id; the stream stops, the recorder finalizes the run, and the same page
 * offers the recording. The recording plays as a seekable VOD, is listed on the home page with its poster,
 * the watch page's viewing beacons reach the server, and once private it plays through a playback token.
 */
const PUBLISH_SECONDS = 12;

interface MediaState {
  t: number;
  paused: boolean;
  seeking: boolean;
  duration: number;
}

const mediaState = (page: Page): Promise<MediaState> =>
  page.evaluate(() => {
    const v = (window as any).__player?.video as HTMLVideoElement | undefined;
    return { t: v?.currentTime ?? 0, paused: v?.paused ?? true, seeking: v?.seeking ?? false, duration: v?.duration ?? NaN };
  });

/** Waits until the page's media clock has advanced by `by` seconds while playing. */
async function playing(page: Page, timeoutMs: number, by = 0.5): Promise<MediaState> {
  const first = await until(
    async () => {
      const s = await mediaState(page);
      return s.t > 0 && !s.paused ? s : undefined;
    },
    timeoutMs,
    100,
  );
  return until(
    async () => {
      const s = await mediaState(page);
      return s.t >= first.t + by ? s : undefined;
    },
    5_000,
    50,
  );
}

const playerInfo = (page: Page) =>
  page.evaluate(() => {
    const p = (window as any).__player;
    return {
      kind: p.kind as string | null,
      src: p.src as string | null,
      lowLatencyMode: Boolean(p.hls?.config?.lowLatencyMode),
      live: (p.hls?.levels?.find((l: any) => l?.details)?.details?.live ?? null) as boolean | null,
      fatal: (p.errors as { fatal: boolean; details: string }[]).filter((e) => e.fatal),
      viewerId: p.stats.viewerId as string,
      startupMs: p.stats.startupMs as number | null,
      title: document.getElementById('title')?.textContent ?? '',
      badge: document.getElementById('badge')?.textContent ?? '',
    };
  });

/** Sum of a Prometheus counter over its label sets, or 0 when it is absent. */
function counterValue(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

describe('VOD: a recorded live run on the watch page, the home page and through a playback token', () => {
  let srv: TestServer;
  let browser: Browser;
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  let liveVideoId = '';
  let livePage: OpenedPage | undefined;
  let video: any;
  let watch: OpenedPage | undefined;
  let vodViewerId = '';
  const pages: OpenedPage[] = [];

  const open = async (path: string) => {
    const p = await openPage(browser, srv.base + path);
    pages.push(p);
    return p;
  };

  beforeAll(async () => {
    srv = await startTestServer({ RECONNECT_GRACE_MS: '500' });
    const created = await srv.api('POST', '/api/v1/streams', { name: 'vod-e2e' });
    expect(created.status).toBe(201);
    stream = created.json;
    // 2 s keyframes at 30 fps; FFmpeg ends the stream itself after PUBLISH_SECONDS of real time.
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '640x360', fps: 30, gop: 60, seconds: PUBLISH_SECONDS });
    [browser] = await Promise.all([
      launchBrowser(),
      until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).status === 200, 15_000, 100),
    ]);
  });

  afterAll(async () => {
    for (const p of pages) await p.close();
    await browser?.close().catch(() => {});
    await kill(publisher);
    await srv?.stop();
  });

  it('plays the live run through its video id while it is published', async () => {
    const live = await until(
      async () => {
        const res = await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=live`);
        return res.json?.items?.find((v: any) => v.status === 'live');
      },
      5_000,
      100,
    );
    liveVideoId = live.id;
    expect(liveVideoId).not.toBe(stream.id);
    expect(live.playback.hls).toMatch(new RegExp(`/live/${stream.id}/master\\.m3u8$`));

    livePage = await open(`/watch/${liveVideoId}`);
    await playing(livePage.page, 8_000);
    const p = await playerInfo(livePage.page);
    expect(p.kind).toBe('live');
    expect(p.src).toBe(`/live/${stream.id}/master.m3u8`);
    expect(p.lowLatencyMode).toBe(true);
    expect(p.title).toBe(live.title);
    expect(p.fatal).toEqual([]);
    expect(livePage.pageErrors).toEqual([]);
  });

  it('becomes a ready VOD at the same id when the stream ends, which the live watch page offers', async () => {
    const code = await waitExit(publisher!, (PUBLISH_SECONDS + 10) * 1000);
    expect(code, publisher!.stderrText()).toBe(0);
    const ended = performance.now();

    // The live audience's beacons go on while the run ends (as a watch page sends one every 10 s and on leaving).
    let audience = true;
    const beaconing = (async () => {
      for (let i = 0; audience; i++) {
        await fetch(`${srv.base}/api/v1/videos/${liveVideoId}/watch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ viewerId: 'audience-0001', position: PUBLISH_SECONDS + i * 0.3 }),
        });
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      video = await until(
        async () => {
          const res = await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=vod`);
          const v = res.status === 200 ? res.json.items[0] : undefined;
          if (v?.status === 'failed') throw new Error(`recording failed: ${v.error}`);
          return v?.status === 'ready' ? v : undefined;
        },
        20_000,
        250,
      ).catch(async (err) => {
        const last = await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`);
        throw new Error(`${String(err)}; videos of the stream: ${JSON.stringify(last.json)}`);
      });
    } finally {
      audience = false;
      await beaconing;
    }
    console.log(`[e2e vod] recording ready ${((performance.now() - ended) / 1000).toFixed(1)} s after the publisher stopped`);
    // Once the API says ready, the asset plays.
    const master = await fetch(`${srv.base}/vod/${video.id}/master.m3u8`);
    expect(master.status, `GET /vod/<id>/master.m3u8 right after "ready": ${await master.text()}`).toBe(200);

    expect(video).toMatchObject({
      id: liveVideoId,
      type: 'vod',
      source: 'recording',
      streamId: stream.id,
      status: 'ready',
      visibility: 'public',
    });
    expect(video.duration).toBeGreaterThan(PUBLISH_SECONDS - 3);
    expect(video.duration).toBeLessThan(PUBLISH_SECONDS + 2);
    expect(video.renditions.length).toBeGreaterThanOrEqual(1);
    expect(video.thumbnailUrl).toMatch(new RegExp(`/vod/${video.id}/poster\\.jpg$`));
    expect(video.playback.hls).toMatch(new RegExp(`/vod/${video.id}/master\\.m3u8$`));
    // Public: the watch page reads it without the operator token.
    expect((await fetch(`${srv.base}/api/v1/videos/${video.id}`)).status).toBe(200);

    // The page that watched the run live says it ended and links to the recording, which then plays as VOD.
    const { page, pageErrors } = livePage!;
    const link = page.locator('#status a');
    await link.waitFor({ state: 'attached', timeout: 10_000 });
    expect(await link.getAttribute('href')).toBe(`/watch/${video.id}`);
    expect((await playerInfo(page)).badge).toBe('ENDED');
    await Promise.all([page.waitForURL(`${srv.base}/watch/${video.id}`, { timeout: 5_000 }), link.click()]);
    await playing(page, 15_000);
    const p = await playerInfo(page);
    expect(p.kind).toBe('vod');
    expect(p.fatal).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('plays the recording as VOD with its title and description, and resumes near the position it was seeked to', async () => {
    const edited = await srv.api('PATCH', `/api/v1/videos/${video.id}`, {
      title: 'Lighthouse keeper <diaries>',
      description: 'Waves at dawn.\nSecond line & more',
    });
    expect(edited.status).toBe(200);
    video = edited.json;
    watch = await open(`/watch/${video.id}`);
    const { page, pageErrors, requests } = watch;
    await playing(page, 15_000);

    const p = await playerInfo(page);
    vodViewerId = p.viewerId;
    expect(p.kind).toBe('vod');
    expect(p.lowLatencyMode).toBe(false);
    expect(p.live).toBe(false);
    expect(p.startupMs).toBeGreaterThan(0);
    expect(p.title).toBe('Lighthouse keeper <diaries>');
    expect(await page.locator('#description').textContent()).toBe('Waves at dawn.\nSecond line & more');
    expect(Math.abs((await mediaState(page)).duration - video.duration)).toBeLessThan(1);

    // Seek to 8 s as the native controls would; playback resumes there and goes on.
    await page.evaluate(() => {
      (window as any).__player.video.currentTime = 8;
    });
    const resumed = await until(
      async () => {
        const s = await mediaState(page);
        return !s.seeking && !s.paused && s.t >= 7.5 ? s : undefined;
      },
      8_000,
      50,
    );
    expect(resumed.t).toBeLessThanOrEqual(11);
    const later = await until(
      async () => {
        const s = await mediaState(page);
        return s.t > resumed.t + 0.3 ? s : undefined;
      },
      4_000,
      50,
    );
    expect(later.t).toBeGreaterThanOrEqual(7.5);
    expect(later.t).toBeLessThanOrEqual(11);

    // It came from the VOD asset, never from the live path, without a fatal error.
    expect(requests.some((u) => u.endsWith(`/vod/${video.id}/master.m3u8`))).toBe(true);
    expect(requests.some((u) => new RegExp(`/vod/${video.id}/.+\\.m4s$`).test(u))).toBe(true);
    expect(requests.some((u) => u.includes('/live/'))).toBe(false);
    expect((await playerInfo(page)).fatal).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('lists the recording on the home page with a loaded poster, finds it by search; the watch page sent viewing beacons', async () => {
    expect(watch, 'the watch page of the previous test').toBeDefined();
    const { page, pageErrors } = watch!;
    // Leaving the watch page fires 'pagehide', which sends a beacon.
    await page.goto(`${srv.base}/`, { waitUntil: 'load', timeout: 15_000 });

    const item = page.locator(`#library li[data-id="${video.id}"]`);
    await item.waitFor({ state: 'attached', timeout: 10_000 });
    await item.scrollIntoViewIfNeeded();
    expect(await item.locator('a').getAttribute('href')).toBe(`/watch/${video.id}`);
    expect(await item.locator('.card-title').textContent()).toBe(video.title);
    expect(await item.locator('.duration').textContent()).toMatch(/^0:\d\d$/);
    const poster = await until(
      async () => {
        const s = await item.locator('img').evaluate((img: HTMLImageElement) => ({ complete: img.complete, width: img.naturalWidth }));
        return s.complete && s.width > 0 ? s : undefined;
      },
      10_000,
      100,
    );
    expect(poster.width).toBeGreaterThan(0);
    // Listed without the operator token; nothing is live any more.
    expect(await page.locator('#live li').count()).toBe(0);
    // The search box finds it by a word of its title.
    await page.fill('#q', 'lighthouse');
    await page.locator(`#results li[data-id="${video.id}"]`).waitFor({ state: 'attached', timeout: 5_000 });
    expect(pageErrors).toEqual([]);

    const beacons = await until(
      async () => {
        const res = await fetch(`${srv.base}/metrics`, { headers: { authorization: `Bearer ${srv.apiToken}` } });
        const n = counterValue(await res.text(), 'livepack_vod_watch_beacons_total');
        return n > 0 ? n : undefined;
      },
      10_000,
      200,
    );
    expect(beacons).toBeGreaterThan(0);
    // This viewer's session, with the position it left at (after the seek to 8 s) and its startup time.
    const views = await srv.api('GET', `/api/v1/videos/${video.id}/views`);
    expect(views.status).toBe(200);
    const mine = views.json.items.find((v: any) => v.viewerId === vodViewerId);
    expect(mine, JSON.stringify(views.json.items)).toBeDefined();
    expect(mine.position).toBeGreaterThanOrEqual(8);
    expect(mine.startupMs).toBeGreaterThan(0);
  });

  it('plays the recording through a playback token once it is private', async () => {
    const patched = await srv.api('PATCH', `/api/v1/videos/${video.id}`, { visibility: 'private' });
    expect(patched.status).toBe(200);
    const minted = await srv.api('POST', `/api/v1/videos/${video.id}/playback-token`, {});
    expect(minted.status).toBe(201);
    const token: string = minted.json.token;
    // Without the token the asset is refused.
    expect((await fetch(`${srv.base}/vod/${video.id}/master.m3u8`)).status).toBe(403);

    const { page, pageErrors, requests } = await open(`/watch/${video.id}?token=${encodeURIComponent(token)}`);
    await playing(page, 15_000);
    const p = await playerInfo(page);
    expect(p.kind).toBe('vod');
    expect(p.src).toBe(`/t/${token}/vod/${video.id}/master.m3u8`);
    expect(p.fatal).toEqual([]);
    expect(requests.some((u) => new RegExp(`/t/[^/]+/vod/${video.id}/.+\\.m4s$`).test(u))).toBe(true);
    expect(pageErrors).toEqual([]);
  });
});
