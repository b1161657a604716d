import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage, type OpenedPage } from '../../harness/browser.js';
import { playerSnapshot } from '../helpers/watch-page.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * hls.js in Chromium on an ABR stream: it sees every rung, and moves between them on request (through the
 * watch page's quality menu) while playback goes on, without a fatal error or a stall.
 */
describe.each([
  { gop: 60, what: 'keyframe interval = segment target (2 s)' },
  // OBS "auto" keyframes and the like: an interval that does not divide the 2 s target. Segments are cut
  // at the source's keyframes (every 2.5 s) and the rungs' keyframes are forced at the same instants.
  { gop: 75, what: 'keyframe interval 2.5 s, not dividing the segment target' },
])('ABR playback and rung switching (headless Chromium + hls.js), $what', ({ gop }) => {
  let srv: TestServer;
  let browser: Browser;
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  let opened: OpenedPage | undefined;

  beforeAll(async () => {
    // No rung shedding while other test files load the machine (it has its own test).
    srv = await startTestServer({ TRANSCODE_SLOW_SECONDS: '600' });
    stream = (await srv.api('POST', '/api/v1/streams', { name: 'abr-e2e' })).json;
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '1280x720', fps: 30, gop });
    [browser] = await Promise.all([
      launchBrowser(),
      until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.transcode?.state === 'running', 20_000),
    ]);
  });

  afterAll(async () => {
    await opened?.close();
    await browser?.close().catch(() => {});
    await kill(publisher);
    await srv?.stop();
  });

  it('plays, lists three renditions and switches rung on request, playback going on', async () => {
    opened = await openPage(browser, `${srv.base}/watch/${stream.id}`);
    const { page, pageErrors } = opened;
    const snap = () => playerSnapshot(page);
    await until(
      async () => {
        const s = await snap();
        return s.currentTime > 0 && !s.paused && s.renditions.length === 3;
      },
      25_000,
      100,
    );
    expect((await snap()).renditions.map((r) => r.split(' ')[0]).sort()).toEqual(['360p', '480p', '720p']);

    const state = () =>
      page.evaluate(() => {
        const p = (window as any).__player;
        const v = p.video as HTMLVideoElement;
        return {
          level: p.level as number | undefined,
          height: v.videoHeight,
          time: v.currentTime,
          levels: (p.hls.levels as any[]).map((l) => l.height),
        };
      });
    const heights = (await state()).levels;
    // Let the start settle (the player catches up to its target latency in the first seconds); the
    // switches are judged from here on.
    const settled = (await state()).time;
    await until(async () => (await state()).time - settled >= 3, 20_000, 100);
    // Time the video element spends waiting for data from here on ('waiting' until 'playing').
    await page.evaluate(() => {
      const w = window as any;
      const v = w.__player.video as HTMLVideoElement;
      w.__stalls = [] as number[];
      let since: number | undefined;
      v.addEventListener('waiting', () => (since ??= performance.now()));
      v.addEventListener('playing', () => {
        if (since !== undefined) w.__stalls.push(performance.now() - since);
        since = undefined;
      });
    });
    // Every rung in turn, lowest first, then back to the top: each switch lands and playback goes on.
    for (const height of [360, 480, 720]) {
      const index = heights.indexOf(height);
      await page.selectOption('#quality', String(index));
      await until(
        async () => {
          const s = await state();
          return s.level === index && s.height === height;
        },
        15_000,
        100,
      );
      const t0 = (await state()).time;
      // Generous: a loaded CI machine is slower to load and decode.
      await until(async () => (await state()).time - t0 >= 1.5, 12_000, 100);
    }
    const s = await snap();
    expect(s.errors.filter((e) => e.fatal)).toEqual([]);
    // Each switch above landed and had playback advance 1.5 s, and without a stall: the video element
    // may wait for data for a moment, never as long as a stall a viewer sees (hls.js itself reports one
    // after 1 s). Recent runs, CI included, had no wait at all; earlier code had 0.1-2.4 s waits.
    const stalls = (await page.evaluate(() => (window as any).__stalls)) as number[];
    console.log(`[e2e] GOP ${gop}: waits for data while switching: ${stalls.map((ms) => ms.toFixed(0)).join(', ') || 'none'} ms`);
    expect(
      stalls.filter((ms) => ms >= 1000),
      'waits for data of 1 s or more while switching',
    ).toEqual([]);
    expect(stalls.reduce((a, b) => a + b, 0)).toBeLessThan(1500);
    expect(pageErrors).toEqual([]);
    // hls.js raises its target latency after a stall; the bound is a sanity check, not the latency figure.
    expect(s.latency!).toBeLessThan(10);
  });
});
