import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchPublisherBrowser, publishFromPage, type PublishPage } from '../../harness/whip-clients.js';
import { launchBrowser } from '../../harness/browser.js';
import { openStockPlayer, type StockPlayer, type StockSnapshot } from '../helpers/stock-player.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * Stock hls.js (the library most sites embed, with its default configuration and `lowLatencyMode: true`,
 * none of our /watch page's retry or catch-up logic) through every publisher seam: a publisher that
 * drops and comes back, one that is taken over by a second publisher before the server noticed anything,
 * and a clean stop. A seam that the player does not survive fails the test: a fatal hls.js error, a
 * playhead that does not move past the seam, or a player that does not end at EXT-X-ENDLIST.
 */

/** The playhead moves this far past where it was at the seam: it plays the new session's media. */
const PAST_SEAM_S = 4;

function fatal(s: StockSnapshot) {
  return s.errors.filter((e) => e.fatal);
}

async function playing(player: StockPlayer, minTime = 2): Promise<StockSnapshot> {
  return until(
    async () => {
      const s = await player.snapshot();
      if (fatal(s).length) throw new Error(`fatal hls.js error before the seam: ${JSON.stringify(fatal(s))}`);
      return s.currentTime >= minTime && !s.paused ? s : undefined;
    },
    30_000,
    100,
  );
}

/** The playhead passes the seam by PAST_SEAM_S with no fatal error on the way. */
async function playsThrough(player: StockPlayer, atSeam: number, what: string): Promise<StockSnapshot> {
  let last: StockSnapshot | undefined;
  try {
    await until(
      async () => {
        last = await player.snapshot();
        if (fatal(last).length) return true;
        return last.currentTime >= atSeam + PAST_SEAM_S;
      },
      30_000,
      100,
    );
  } catch {
    // Reported below with what the player showed.
  }
  const s = last ?? (await player.snapshot());
  expect(fatal(s), `${what}: fatal hls.js errors`).toEqual([]);
  expect(s.currentTime, `${what}: playhead past the seam (it was at ${atSeam.toFixed(2)} s)`).toBeGreaterThanOrEqual(atSeam + PAST_SEAM_S);
  console.log(
    `[e2e seams] ${what}: played through, waited ${(s.waitingMs / 1000).toFixed(2)} s for data, non-fatal errors: ${s.errors.map((e) => e.details).join(', ') || 'none'}`,
  );
  return s;
}

describe.each([
  { profile: 'passthrough' as const, ladder: undefined },
  // One small rung keeps two cores able to run FFmpeg, the browser and the publisher at once.
  { profile: 'abr' as const, ladder: [{ name: '180p', height: 180, videoBitrateKbps: 300, maxFrameRate: 30 }] },
])('stock hls.js through publisher seams, RTMP $profile', ({ profile, ladder }) => {
  let srv: TestServer;
  let browser: Browser;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    [srv, browser] = await Promise.all([startTestServer({ RECONNECT_GRACE_MS: '20000', TRANSCODE_SLOW_SECONDS: '600' }), launchBrowser()]);
  });
  // Each case's publishers and player stop with it: a case left running would starve the next one of CPU
  // (an ABR stream is a transcoder as well), and what a case measures must be its own seam.
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });
  afterAll(async () => {
    await browser?.close().catch(() => {});
    await srv?.stop();
  });

  /** A new stream published by FFmpeg, watched by stock hls.js once every rendition is offered. */
  async function live(name: string, seconds?: number) {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name, profile, ladder });
    const publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { gop: 30, seconds });
    cleanups.push(() => kill(publisher));
    const variants = profile === 'abr' ? 2 : 1;
    await until(
      async () => {
        const r = await fetch(`${srv.base}/live/${stream.id}/master.m3u8`);
        return r.status === 200 && ((await r.text()).match(/#EXT-X-STREAM-INF/g)?.length ?? 0) >= variants;
      },
      30_000,
      200,
    );
    const player = await openStockPlayer(browser, srv.base, `${srv.base}/live/${stream.id}/master.m3u8`);
    cleanups.push(() => player.close());
    return { stream, publisher, player };
  }

  it('plays through a dropped publisher (SIGKILL) that comes back 2 s later', async () => {
    const { stream, publisher, player } = await live('drop');
    const before = await playing(player, 3);
    await kill(publisher, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    const again = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { gop: 30 });
    cleanups.push(() => kill(again));
    await playsThrough(player, before.currentTime, `${profile} drop`);
  }, 90_000);

  it('plays through a takeover by a second publisher (the first one not yet noticed gone)', async () => {
    const { stream, publisher, player } = await live('takeover');
    const before = await playing(player, 3);
    const second = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { gop: 30 });
    cleanups.push(() => kill(second));
    // The server cuts the first publisher off.
    expect(await waitExit(publisher, 20_000)).not.toBe(0);
    await playsThrough(player, before.currentTime, `${profile} takeover`);
  }, 90_000);

  it('ends cleanly at EXT-X-ENDLIST after a clean stop', async () => {
    const { publisher, player } = await live('stop', 12);
    await playing(player, 2);
    expect(await waitExit(publisher, 30_000)).toBe(0);
    let last: StockSnapshot | undefined;
    const s = await until(
      async () => {
        last = await player.snapshot();
        return last.ended || fatal(last).length ? last : undefined;
      },
      20_000,
      100,
    ).catch(() => last ?? player.snapshot());
    expect(fatal(s)).toEqual([]);
    expect(s.ended, `${profile} clean stop: the player did not end; it showed ${JSON.stringify(s)}`).toBe(true);
    console.log(
      `[e2e seams] ${profile} clean stop: ended at ${s.currentTime.toFixed(2)} s, non-fatal errors: ${s.errors.map((e) => e.details).join(', ') || 'none'}`,
    );
  }, 90_000);
});

describe('stock hls.js through a WHIP publisher seam', () => {
  let srv: TestServer;
  let browser: Browser;
  const publishers: PublishPage[] = [];
  let player: StockPlayer | undefined;

  beforeAll(async () => {
    [srv, browser] = await Promise.all([startTestServer({ RECONNECT_GRACE_MS: '20000' }), launchPublisherBrowser()]);
  });
  afterAll(async () => {
    await player?.close();
    for (const p of publishers) await p.close().catch(() => {});
    await browser?.close().catch(() => {});
    await srv?.stop();
  });

  it('plays through a browser publisher whose connection is cut and who comes back in a new WHIP session', async () => {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'whip-seam', profile: 'passthrough' });
    publishers.push(await publishFromPage(browser, srv.base, stream.streamKey, { resolution: '640x360', bitrateKbps: 1000 }));
    await until(
      async () => {
        const r = await fetch(`${srv.base}/live/${stream.id}/source/index.m3u8`);
        return r.status === 200 && (await r.text()).includes('#EXTINF');
      },
      30_000,
      200,
    );
    player = await openStockPlayer(browser, srv.base, `${srv.base}/live/${stream.id}/master.m3u8`);
    const before = await playing(player, 3);
    // The connection is cut (here by the operator API: a drop, not an unpublish) and the page goes away;
    // the broadcaster comes back from a new page, in a new WHIP session with the same key.
    expect((await srv.api('POST', `/api/v1/streams/${stream.id}/disconnect`)).status).toBe(204);
    await publishers[0].close();
    expect((await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json.state).toBe('reconnecting');
    publishers.push(await publishFromPage(browser, srv.base, stream.streamKey, { resolution: '640x360', bitrateKbps: 1000 }));
    await playsThrough(player, before.currentTime, 'whip reconnect');
    expect((await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json.sessions).toBe(2);
  }, 120_000);
});
