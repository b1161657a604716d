import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, openPage, type OpenedPage } from '../../harness/browser.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/** The home page in headless Chromium: a live card shows the stream's thumbnail and loads a new one as the list refreshes. */
describe('home page live thumbnails (headless Chromium)', () => {
  let srv: TestServer;
  let browser: Browser;
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  let opened: OpenedPage | undefined;

  beforeAll(async () => {
    srv = await startTestServer({ LIVE_THUMBNAIL_INTERVAL_MS: '2000' });
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'on the home page', profile: 'passthrough' });
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey));
    [browser] = await Promise.all([
      launchBrowser(),
      until(async () => (await fetch(`${srv.base}/live/${stream.id}/thumbnail.jpg`)).status === 200, 15_000, 200),
    ]);
  });
  afterAll(async () => {
    await opened?.close();
    await browser?.close().catch(() => {});
    await kill(publisher);
    await srv?.stop();
  });

  it('shows the live thumbnail on the live card and swaps in a newer one on the next list refresh', async () => {
    opened = await openPage(browser, `${srv.base}/`);
    const img = opened.page.locator('#live li img');
    const shown = async () => img.evaluate((i: HTMLImageElement) => ({ src: i.src, width: i.complete ? i.naturalWidth : 0 }));
    const first = await until(async () => ((await img.count()) > 0 && (await shown()).width > 0 ? shown() : undefined), 15_000, 200);
    expect(first.width).toBe(640);
    expect(first.src).toMatch(/\/live\/[\w-]+\/thumbnail\.jpg\?t=\d+$/);
    // The page reloads the live list every 10 s; the card stays and its image moves to the new period's URL.
    const next = await until(
      async () => {
        const s = await shown();
        return s.src !== first.src && s.width > 0 ? s : undefined;
      },
      15_000,
      250,
    );
    expect(next.src.split('?')[0]).toBe(first.src.split('?')[0]);
    expect(opened.requests.filter((u) => u.includes('/thumbnail.jpg')).length).toBeGreaterThanOrEqual(2);
    expect(opened.pageErrors).toEqual([]);
  });
});
