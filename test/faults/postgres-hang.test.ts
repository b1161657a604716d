/**
 * Fault: PostgreSQL hangs mid-query. Unlike postgres.test.ts (a refused connection, which every client
 * sees at once), the TCP proxy between the server and the shared PostgreSQL (the test's own database)
 * goes silent: the open connections stay open and nothing more comes back on them, and new ones are
 * accepted and never answered. Only the catalog's own timeouts (src/catalog/db.ts) can end what waits on
 * it. Live viewers keep watching; the API answers 503 E_UNAVAILABLE with Retry-After within those
 * timeouts, not never; /healthz says the catalog is down; once the proxy forwards again everything works
 * without a restart, and the recording of the stream that was live is complete.
 */
import { describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { PG_CONNECT_TIMEOUT_MS, PG_QUERY_TIMEOUT_MS } from '../../src/catalog/db.js';
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

/** Longer than the query timeout: every connection open when it began has been given up by its end. */
const OUTAGE_MS = PG_QUERY_TIMEOUT_MS + 6000;
const PUBLISH_SECONDS = Math.ceil(OUTAGE_MS / 1000) + 16;
/** What a request may wait for an answer during the hang: a query's timeout, or a new connection's. */
const ANSWER_WITHIN_MS = Math.max(PG_QUERY_TIMEOUT_MS, PG_CONNECT_TIMEOUT_MS) + 3000;

describe('fault: PostgreSQL hangs mid-query', () => {
  const ctx = serverBehindPostgresProxy('faults_pghang');

  it('viewers keep watching, the API answers 503 within the timeouts, /healthz says down; all resumes and the recording is whole', async () => {
    const { proxy, srv, cleanups } = ctx;
    const { json: live } = await srv.api('POST', '/api/v1/streams', { name: 'live-through-hang', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(live.streamKey), { seconds: PUBLISH_SECONDS });
    cleanups.push(() => kill(pub));
    await until(async () => (await liveNextMsn(srv, live.id)) >= 2, 25_000, 200);
    // Warm the pool: several connections are open (and idle) when the hang begins.
    await Promise.all(Array.from({ length: 4 }, () => srv.api('GET', '/api/v1/streams')));

    await proxy.stall();
    const stalledAt = Date.now();
    const watching = watchLive(srv, live.id, OUTAGE_MS - 2000);
    // /healthz has its own bound on every probe.
    const t0 = Date.now();
    expect((await health(srv)).dependencies.catalog).toBe('down');
    const healthMs = Date.now() - t0;
    // Two API requests at once: each ends with a 503 and a time to come back, within the catalog's timeouts.
    const answers = await Promise.all(
      [0, 1].map(async () => {
        const t = Date.now();
        const res = await fetch(`${srv.base}/api/v1/streams`, { headers: { authorization: `Bearer ${srv.apiToken}` } });
        return { status: res.status, body: await res.json(), retryAfter: res.headers.get('retry-after'), ms: Date.now() - t };
      }),
    );
    console.log(
      `[fault pg hang] /healthz down in ${healthMs} ms; API answers ${answers.map((a) => `${a.status} in ${a.ms} ms`).join(', ')}`,
    );
    for (const a of answers) {
      expect(a.status, JSON.stringify(a.body)).toBe(503);
      expect(a.body.error.code).toBe('E_UNAVAILABLE');
      expect(Number(a.retryAfter)).toBeGreaterThan(0);
      expect(a.ms).toBeLessThan(ANSWER_WITHIN_MS);
    }
    // The catalog is now known to be away: what asks it next is refused at once, not held for the timeouts.
    const t1 = Date.now();
    const next = await fetch(`${srv.base}/api/v1/streams`, { headers: { authorization: `Bearer ${srv.apiToken}` } });
    const nextMs = Date.now() - t1;
    expect(next.status).toBe(503);
    expect(Number(next.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(nextMs).toBeLessThan(1000);
    const t2 = Date.now();
    const create = await srv.api('POST', '/api/v1/streams', { name: 'in-hang', profile: 'passthrough' });
    expect(create.status, JSON.stringify(create.json)).toBe(503);
    expect(Date.now() - t2).toBeLessThan(1000);
    console.log(`[fault pg hang] then: GET ${nextMs} ms, POST ${Date.now() - t2} ms`);
    const seen = await watching;
    expectKeptWatching(seen, Math.floor((OUTAGE_MS - 2000) / 1000 / 2) - 2);
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - stalledAt))));

    await proxy.restore();
    await until(async () => (await health(srv)).dependencies.catalog === 'ok', 15_000, 200);
    expect((await srv.api('GET', '/api/v1/streams')).status).toBe(200);
    const { json: later } = await srv.api('POST', '/api/v1/streams', { name: 'after-hang', profile: 'passthrough' });
    const again = ffmpegPublish(srv.rtmpUrl(later.streamKey), { seconds: 4 });
    cleanups.push(() => kill(again));
    expect(await waitExit(again, 20_000)).toBe(0);

    // The run that was live through the hang: every segment in the recording, none a gap.
    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000)).toBe(0);
    const video = await readyVideo(srv, live.id, 40_000);
    const { segments, gaps } = await vodSegments(srv, video.id);
    console.log(`[fault pg hang] recording ${video.duration} s in ${segments.length} segments, ${gaps} gaps`);
    expect(gaps).toBe(0);
    expect(video.duration).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
    expect(await metric(srv, 'livepack_recorder_failed_segments_total')).toBe(0);
  }, 150_000);
});
