import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage, type OpenedPage } from '../../harness/browser.js';
import { playerSnapshot, type PlayerSnapshot } from '../helpers/watch-page.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * The watch page in headless Chromium: hls.js plays what the origin serves, in low-latency mode, while a
 * real FFmpeg publishes over RTMP.
 */
describe('watch page (headless Chromium + hls.js)', () => {
  let srv: TestServer;
  let browser: Browser;
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const pages: OpenedPage[] = [];

  const open = async (path: string) => {
    const p = await openPage(browser, srv.base + path);
    pages.push(p);
    return p;
  };

  beforeAll(async () => {
    srv = await startTestServer();
    const created = await srv.api('POST', '/api/v1/streams', { name: 'e2e' });
    expect(created.status).toBe(201);
    stream = created.json;
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '640x360', fps: 30, gop: 30 });
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

  it('plays the live stream in low-latency mode with a latency under 5 s', async () => {
    const { page, pageErrors, requests } = await open(`/watch/${stream.id}`);
    const snap = () => playerSnapshot(page);

    // Playback starts: the media element has frames and its clock moves.
    const first = await until(
      async () => {
        const s = await snap();
        return s.currentTime > 0 && !s.paused ? s : undefined;
      },
      20_000,
      100,
    );
    const wall0 = performance.now();

    // The media clock advances by at least 3 s within a few seconds of wall time.
    let last: PlayerSnapshot = first;
    await until(
      async () => {
        last = await snap();
        return last.currentTime - first.currentTime >= 3;
      },
      8_000,
      100,
    );
    const wall = (performance.now() - wall0) / 1000;
    expect(last.currentTime - first.currentTime).toBeGreaterThanOrEqual(3);
    expect(wall).toBeLessThan(8);

    const s = await snap();
    expect(s.errors.filter((e) => e.fatal)).toEqual([]);
    expect(pageErrors).toEqual([]);

    // Latency from the ingest clock (PROGRAM-DATE-TIME) to what is on screen.
    expect(typeof s.latency).toBe('number');
    console.log(`[e2e] watch page latency ${s.latency!.toFixed(2)} s (hls.js target ${s.targetLatency?.toFixed(2)} s)`);
    expect(s.latency!).toBeGreaterThan(0);
    expect(s.latency!).toBeLessThan(5);
    expect(s.badge).toBe('LIVE');
    expect(s.renditions.length).toBeGreaterThanOrEqual(1);
    expect(s.renditions[0]).toMatch(/^360p/);

    // hls.js runs in low-latency mode on an LL-HLS playlist, and really uses blocking reloads.
    expect(s.lowLatencyMode).toBe(true);
    expect(s.partTarget).toBeCloseTo(0.2, 2);
    expect(s.canBlockReload).toBe(true);
    expect(requests.some((u) => /index\.m3u8\?.*_HLS_msn=\d+/.test(u))).toBe(true);
    expect(requests.some((u) => /_p\d+\.m4s$/.test(u))).toBe(true);
  });

  it('shows OFFLINE for an unknown stream and throws no page errors', async () => {
    const { page, pageErrors } = await open('/watch/AAAAAAAAAAAAAAAAAAAAAAAA');
    // The master playlist answers 404; hls.js reports a fatal network error and the page says so.
    const s = await until(
      async () => {
        const snap = await playerSnapshot(page);
        return snap.errors.some((e) => e.fatal && e.type === 'networkError') ? snap : undefined;
      },
      10_000,
      100,
    );
    expect(s.badge).toBe('OFFLINE');
    expect(s.status).toMatch(/waiting for the stream/);
    expect(s.latency).toBeNull();
    expect(s.currentTime).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});

describe('watch page across a clean stop (headless Chromium + hls.js)', () => {
  let srv: TestServer;
  let browser: Browser;
  let opened: OpenedPage | undefined;
  const publishers: ReturnType<typeof ffmpegPublish>[] = [];

  beforeAll(async () => {
    [srv, browser] = await Promise.all([startTestServer(), launchBrowser()]);
  });
  afterAll(async () => {
    await opened?.close();
    await browser?.close().catch(() => {});
    for (const p of publishers) await kill(p);
    await srv?.stop();
  });

  it("/watch/<streamId> ends with the run, then plays the stream's next run by itself, without a reload", async () => {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'runs', profile: 'passthrough' });
    publishers.push(ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 8 }));
    await until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.fps > 0, 20_000, 100);
    opened = await openPage(browser, `${srv.base}/watch/${stream.id}`);
    const { page, pageErrors } = opened;
    await page.evaluate(() => ((window as any).__sameDocument = true));
    await until(async () => (await playerSnapshot(page)).currentTime > 1, 20_000, 100);
    // The publisher stops cleanly: the page shows the end at once (no reconnect grace to wait out).
    const ended = await until(
      async () => {
        const s = await playerSnapshot(page);
        return s.badge === 'ENDED' ? s : undefined;
      },
      15_000,
      100,
    );
    expect(ended.errors.filter((e) => e.fatal)).toEqual([]);
    const firstHls = await page.evaluate(() => (window as any).__player.hls);
    expect(firstHls).toBeTruthy();
    // The broadcaster goes live again: a new run, which the page finds and plays.
    publishers.push(ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 30 }));
    const again = await until(
      async () => {
        const s = await playerSnapshot(page);
        return s.badge === 'LIVE' && !s.paused && s.currentTime > 1 ? s : undefined;
      },
      30_000,
      200,
    );
    const t0 = again.currentTime;
    await until(async () => (await playerSnapshot(page)).currentTime - t0 >= 2, 10_000, 100);
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    expect(pageErrors).toEqual([]);
  }, 90_000);
});
