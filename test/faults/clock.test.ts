/**
 * Fault: the host's wall clock steps +1 h, then -1 h, during a live RTMP publish (NTP stepping a drifted
 * clock, an operator's `date -s`). The server runs in this process, so the step is made here: Date.now()
 * and `new Date()` (what every module and library reads) and the server's injected clock move by the
 * offset; performance.now() does not, as a step of the system clock does not move CLOCK_MONOTONIC.
 *
 * Checked: parts keep coming and an LL-HLS viewer sees no error and no hole; the PROGRAM-DATE-TIMEs of the
 * run stay continuous (no 1 h jump, no discontinuity); the publisher is never cut off; a key rotated before
 * the clock stepped back does not refuse the new key afterwards (revocation is monotonic); live thumbnails
 * keep refreshing after the step back; a playback token is judged by the wall clock (a +1 h step expires a
 * 10 min token: documented, expected); the recording stays one run, is never taken as stale, and its VOD is
 * ready with the published duration (within 1 s, not 1 h).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { newTotals, runViewer } from '../../harness/llhls-viewer.js';
import { createDatabase, databaseUrl, dropDatabase } from '../../harness/postgres.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { liveNextMsn, metric, readyVideo } from './helpers.js';

const PG = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DB = `faults_clock_${randomBytes(4).toString('hex')}`;
const PUBLISH_SECONDS = 30;
const HOUR_MS = 3_600_000;

// The process's wall clock, stepped by hand. The subclass answers `instanceof Date` for dates made before
// it was installed, so libraries (pg) still recognize them.
const RealDate = Date;
let offsetMs = 0;
const wallNow = (): number => RealDate.now() + offsetMs;
class SteppedDate extends RealDate {
  constructor(...args: unknown[]) {
    // Every other form (a time, a string, fields) is passed on as it came.
    if (args.length === 0) super(wallNow());
    else super(...(args as [number]));
  }
  static override now(): number {
    return wallNow();
  }
  static override [Symbol.hasInstance](v: unknown): boolean {
    return v instanceof RealDate;
  }
}

/** Polls `fn` on the monotonic clock (the helpers' until() reads Date.now(), which this test steps). */
async function waitFor<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = performance.now() + ms;
  let last: unknown;
  while (performance.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within ${ms} ms${last instanceof Error ? ` (${last.message})` : ''}`);
}

interface PdtSegment {
  msn: number;
  pdt: number | undefined;
  durationMs: number;
  discontinuity: boolean;
}

/** Each segment of a media playlist with its own PROGRAM-DATE-TIME (undefined when it has none). */
function pdtSegments(text: string): PdtSegment[] {
  const out: PdtSegment[] = [];
  let msn = 0;
  let pdt: number | undefined;
  let dur = 0;
  let disc = false;
  for (const l of text.split('\n')) {
    if (l.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(l.slice(22));
    else if (l === '#EXT-X-DISCONTINUITY') disc = true;
    else if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = RealDate.parse(l.slice(25));
    else if (l.startsWith('#EXTINF:')) dur = Number(l.slice(8).split(',')[0]) * 1000;
    else if (l.length > 0 && !l.startsWith('#')) {
      out.push({ msn: msn++, pdt, durationMs: dur, discontinuity: disc });
      pdt = undefined;
      disc = false;
    }
  }
  return out;
}

/** Where consecutive segments do not follow in wall time (each starts where the one before ended, ±50 ms). */
function pdtBreaks(segments: PdtSegment[]): string[] {
  const breaks: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const [a, b] = [segments[i - 1], segments[i]];
    if (b.msn !== a.msn + 1) continue;
    if (b.discontinuity) breaks.push(`discontinuity before msn ${b.msn}`);
    if (a.pdt === undefined || b.pdt === undefined) breaks.push(`no PDT at msn ${a.pdt === undefined ? a.msn : b.msn}`);
    else if (Math.abs(b.pdt - (a.pdt + a.durationMs)) > 50) breaks.push(`msn ${b.msn}: PDT off by ${b.pdt - (a.pdt + a.durationMs)} ms`);
  }
  return breaks;
}

describe('fault: the wall clock steps +1 h and -1 h mid-stream', () => {
  let srv: TestServer;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    await createDatabase(PG, DB);
    globalThis.Date = SteppedDate as DateConstructor;
    srv = await startTestServer(
      { DATABASE_URL: databaseUrl(PG, DB), RECONNECT_GRACE_MS: '500', LIVE_THUMBNAIL_INTERVAL_MS: '2000' },
      { deps: { clock: { now: wallNow } } },
    );
  });
  afterAll(async () => {
    offsetMs = 0;
    for (const c of cleanups.reverse()) await c();
    await srv?.stop();
    globalThis.Date = RealDate;
    await dropDatabase(PG, DB);
  });

  it('keeps the stream, its PDTs, timeouts and recording on time; tokens follow the wall clock', async () => {
    const { json: live } = await srv.api('POST', '/api/v1/streams', { name: 'clock-steps', profile: 'passthrough' });
    const { json: other } = await srv.api('POST', '/api/v1/streams', { name: 'rotated', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(live.streamKey), { seconds: PUBLISH_SECONDS });
    cleanups.push(() => kill(pub));
    const published = performance.now();
    await waitFor(async () => (await liveNextMsn(srv, live.id)) >= 2, 25_000, 'live');

    // Every segment the live playlist lists, by msn, as a viewer polling it sees them.
    const seen = new Map<number, PdtSegment>();
    const poll = async () => {
      const res = await fetch(`${srv.base}/live/${live.id}/source/index.m3u8`);
      if (res.status === 200) for (const s of pdtSegments(await res.text())) if (s.pdt !== undefined) seen.set(s.msn, s);
      return res.status;
    };
    // Polled all along, every 500 ms, so the segments cut across both steps are all seen.
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await poll().catch(() => 0);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    cleanups.push(() => (polling = false));
    const ac = new AbortController();
    const totals = newTotals();
    const viewer = runViewer(`${srv.base}/live/${live.id}/source/index.m3u8`, ac.signal, totals);
    cleanups.push(() => ac.abort());
    const { json: runs } = await srv.api('GET', `/api/v1/videos?streamId=${live.id}&type=live`);
    const runId = runs.items[0].id;
    const { status: minted, json: token } = await srv.api('POST', `/api/v1/videos/${runId}/playback-token`, { ttlSeconds: 600 });
    expect(minted).toBe(201);
    const withToken = async () => (await fetch(`${srv.base}/t/${token.token}/live/${live.id}/master.m3u8`)).status;
    expect(await withToken()).toBe(200);
    const thumb = async () => (await fetch(`${srv.base}/live/${live.id}/thumbnail.jpg`)).headers.get('etag');
    await waitFor(thumb, 10_000, 'a first live thumbnail');
    await poll();

    // +1 h.
    offsetMs = HOUR_MS;
    const atStep = await liveNextMsn(srv, live.id);
    await waitFor(async () => (await poll()) === 200 && (await liveNextMsn(srv, live.id)) >= atStep + 2, 10_000, 'segments after +1 h');
    // The 10 min token minted an hour ago (by the wall clock) has expired: expected, documented.
    expect(await withToken()).toBe(403);
    expect((await srv.api('GET', `/api/v1/streams/${live.id}`)).json.live?.state).toBe('live');
    expect((await srv.api('GET', `/api/v1/videos/${runId}`)).json.status).toBe('live');
    // A key rotated now, while the clock is an hour ahead...
    const { json: rotated } = await srv.api('POST', `/api/v1/streams/${other.id}/rotate-key`, {});
    const thumbAhead = await thumb();

    // -1 h: back to the true time.
    offsetMs = 0;
    const atBack = await liveNextMsn(srv, live.id);
    // ...does not refuse its new key once the clock is back (a revocation is not "an hour in the future").
    const again = ffmpegPublish(srv.rtmpUrl(rotated.streamKey), { seconds: 4 });
    cleanups.push(() => kill(again));
    await waitFor(async () => (await poll()) === 200 && (await liveNextMsn(srv, live.id)) >= atBack + 2, 10_000, 'segments after -1 h');
    expect(await withToken()).toBe(200);
    // Live thumbnails keep refreshing (their next cut is not an hour away).
    await waitFor(async () => (await thumb()) !== thumbAhead, 10_000, 'a new live thumbnail after -1 h');
    expect(await waitExit(again, 20_000), again.stderrText()).toBe(0);
    ac.abort();
    await viewer;
    polling = false;
    await poller;

    expect(totals.errors, totals.lastErrors.join('\n')).toBe(0);
    expect(totals.gaps).toBe(0);
    expect(totals.partsFetched).toBeGreaterThan(10);
    const segments = [...seen.values()].sort((a, b) => a.msn - b.msn);
    expect(segments.length).toBeGreaterThanOrEqual(6);
    expect(pdtBreaks(segments)).toEqual([]);

    // The publisher was never cut off: one session, FFmpeg published all it had.
    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000), pub.stderrText()).toBe(0);
    const publishedSeconds = (performance.now() - published) / 1000;
    const { json: sessions } = await srv.api('GET', `/api/v1/streams/${live.id}/sessions`);
    expect(sessions.items).toHaveLength(1);
    // One recording, ready, as long as what was published (not an hour more or less), PDTs continuous.
    const video = await readyVideo(srv, live.id);
    expect(video.id).toBe(runId);
    console.log(
      `[fault clock] published ${publishedSeconds.toFixed(1)} s, recording ${video.duration} s, ${segments.length} live segments seen, ${totals.partsFetched} parts fetched`,
    );
    expect(Math.abs(video.duration - PUBLISH_SECONDS)).toBeLessThanOrEqual(1);
    const vod = await (await fetch(`${srv.base}/vod/${video.id}/source/index.m3u8`)).text();
    expect(pdtBreaks(pdtSegments(vod))).toEqual([]);
    const { json: vods } = await srv.api('GET', `/api/v1/videos?streamId=${live.id}`);
    expect(vods.items).toHaveLength(1);
    expect(await metric(srv, 'livepack_recorder_failed_segments_total')).toBe(0);
  }, 90_000);
});
