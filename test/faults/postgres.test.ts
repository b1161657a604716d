/**
 * Fault: PostgreSQL stops answering mid-stream. A TCP proxy between the server and the shared PostgreSQL
 * (the test's own database) is cut for longer than any cache of the catalog, then restored; nothing is
 * restarted. Live viewers keep watching, new publishes are refused clearly, the API answers 503 with
 * E_UNAVAILABLE and Retry-After, /healthz says the catalog is down; afterwards everything works again and
 * the recording of the stream that was live is complete.
 */
import { describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { until } from '../helpers/server.js';
import {
  expectKeptWatching,
  health,
  liveNextMsn,
  metric,
  readyVideo,
  serverBehindPostgresProxy,
  vodSegments,
  watchLive,
} from './helpers.js';

const PUBLISH_SECONDS = 24;
const OUTAGE_MS = 9000;
/** Long enough to be live before the cut, short enough to end during it. */
const ENDING_SECONDS = 10;

describe('fault: PostgreSQL stops mid-stream', () => {
  const ctx = serverBehindPostgresProxy('faults_pg');

  it('viewers keep watching, the API answers 503 + Retry-After, publishes are refused; all resumes and the recording is whole', async () => {
    const { proxy, srv, cleanups } = ctx;
    const { json: live } = await srv.api('POST', '/api/v1/streams', { name: 'live-through', profile: 'passthrough' });
    const { json: later } = await srv.api('POST', '/api/v1/streams', { name: 'published-later', profile: 'passthrough' });
    const { json: ending } = await srv.api('POST', '/api/v1/streams', { name: 'ends-in-outage', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(live.streamKey), { seconds: PUBLISH_SECONDS });
    const short = ffmpegPublish(srv.rtmpUrl(ending.streamKey), { seconds: ENDING_SECONDS });
    cleanups.push(
      () => kill(pub),
      () => kill(short),
    );
    await until(async () => (await liveNextMsn(srv, live.id)) >= 2 && (await liveNextMsn(srv, ending.id)) >= 2, 25_000, 200);

    await proxy.cut();
    const watching = watchLive(srv, live.id, OUTAGE_MS);
    // The API answers at once with a code and when to come back, rather than hanging.
    const t0 = Date.now();
    const res = await fetch(`${srv.base}/api/v1/streams`, { headers: { authorization: `Bearer ${srv.apiToken}` } });
    const apiMs = Date.now() - t0;
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(503);
    expect(body.error.code).toBe('E_UNAVAILABLE');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(apiMs).toBeLessThan(3000);
    expect((await health(srv)).dependencies.catalog).toBe('down');
    // A new publisher cannot be authorized: it is refused, it does not hang.
    const refused = ffmpegPublish(srv.rtmpUrl(later.streamKey), { seconds: 10 });
    cleanups.push(() => kill(refused));
    expect(await waitExit(refused, 8000)).not.toBe(0);
    // The other stream ends while the catalog is away: its session end and its recording wait for it.
    expect(await waitExit(short, OUTAGE_MS)).toBe(0);
    expect(proxy.up).toBe(false);
    const seen = await watching;
    // ~2 s segments: 9 s of outage is at least 3 more.
    expectKeptWatching(seen, 3);

    await proxy.restore();
    await until(async () => (await health(srv)).dependencies.catalog === 'ok', 10_000, 200);
    expect((await srv.api('GET', '/api/v1/streams')).status).toBe(200);
    const again = ffmpegPublish(srv.rtmpUrl(later.streamKey), { seconds: 4 });
    cleanups.push(() => kill(again));
    expect(await waitExit(again, 20_000)).toBe(0);

    // The run that was live through the outage: every segment in the recording, none a gap.
    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000)).toBe(0);
    const video = await readyVideo(srv, live.id);
    const { segments, gaps } = await vodSegments(srv, video.id);
    console.log(`[fault pg] recording ${video.duration} s in ${segments.length} segments, ${gaps} gaps`);
    expect(gaps).toBe(0);
    expect(video.duration).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
    expect(await metric(srv, 'livepack_recorder_failed_segments_total')).toBe(0);
    for (const s of [live, ending]) {
      const { json: sessions } = await srv.api('GET', `/api/v1/streams/${s.id}/sessions`);
      expect(sessions.items[0].endedAt, `${s.name}: ${JSON.stringify(sessions)}`).toBeTruthy();
    }
    // The run that ended during the outage was finished once the catalog came back, whole.
    const endedVideo = await readyVideo(srv, ending.id);
    expect((await vodSegments(srv, endedVideo.id)).gaps).toBe(0);
    expect(endedVideo.duration).toBeGreaterThan(ENDING_SECONDS - 2.5);
  }, 75_000);
});
