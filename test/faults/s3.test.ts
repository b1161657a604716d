/**
 * Fault: S3 stops answering. s3rver behind a TCP proxy that is cut for 9 s (connections refused), then
 * restored; nothing is restarted. Live viewers keep watching (live media is served from memory), the
 * recorder holds the segments it could not store and stores them once S3 is back (none is lost), VOD
 * playback answers 503 with E_UNAVAILABLE and Retry-After rather than hanging, and /healthz says storage
 * is down. Then the proxy holds (accepts connections and never answers): a VOD read still answers 503
 * within S3_REQUEST_TIMEOUT_MS (twice: the SDK tries once more) instead of hanging.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.js';
import { S3RVER_BUCKET, S3RVER_CREDENTIALS, startS3rver } from '../helpers/s3rver.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';
import { health, liveNextMsn, metric, readyVideo, vodSegments, watchLive, expectKeptWatching } from './helpers.js';

const PUBLISH_SECONDS = 24;
const OUTAGE_MS = 9000;
/** S3_REQUEST_TIMEOUT_MS of the server under test (default 10 s; shorter keeps the hung case quick). */
const S3_TIMEOUT_MS = 2000;

describe('fault: S3 stops answering', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let proxy: TcpProxy;
  let srv: TestServer;
  const dir = mkdtempSync(join(tmpdir(), 'livepack-faults-s3-'));
  const cleanups: Array<() => unknown> = [];
  /** A segment of a VOD asset recorded before the outage (set by the first case, read by the second). */
  let segmentUrl = '';

  // The SDK takes credentials from its chain (the environment here), as in production.
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

  beforeAll(async () => {
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    s3 = await startS3rver(dir);
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    srv = await startTestServer({
      RECONNECT_GRACE_MS: '500',
      S3_BUCKET: S3RVER_BUCKET,
      S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
      S3_FORCE_PATH_STYLE: 'true',
      S3_REQUEST_TIMEOUT_MS: String(S3_TIMEOUT_MS),
    });
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await srv?.stop();
    await proxy?.close();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  });

  it('viewers keep watching, VOD answers 503 + Retry-After, /healthz says storage down; no segment is lost', async () => {
    const { json: live } = await srv.api('POST', '/api/v1/streams', { name: 'live-through', profile: 'passthrough' });
    const { json: short } = await srv.api('POST', '/api/v1/streams', { name: 'vod-before', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(live.streamKey), { seconds: PUBLISH_SECONDS });
    const first = ffmpegPublish(srv.rtmpUrl(short.streamKey), { seconds: 4 });
    cleanups.push(
      () => kill(pub),
      () => kill(first),
    );
    expect(await waitExit(first, 20_000)).toBe(0);
    const before = await readyVideo(srv, short.id);
    segmentUrl = `${srv.base}/vod/${before.id}/source/${(await vodSegments(srv, before.id)).segments[0].uri}`;
    expect((await fetch(segmentUrl)).status).toBe(200);
    expect((await health(srv)).dependencies.storage).toBe('ok');
    await until(async () => (await liveNextMsn(srv, live.id)) >= 2, 25_000, 200);

    await proxy.cut();
    const watching = watchLive(srv, live.id, OUTAGE_MS);
    const t0 = Date.now();
    const res = await fetch(segmentUrl, { signal: AbortSignal.timeout(15_000) });
    const vodMs = Date.now() - t0;
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(503);
    expect(body.error.code).toBe('E_UNAVAILABLE');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(vodMs).toBeLessThan(5000);
    const down = await health(srv);
    expect(down.dependencies.storage).toBe('down');
    expect(down.status).toBe('degraded');
    expect((await fetch(`${srv.base}/readyz`)).status).toBe(503);
    const seen = await watching;
    expectKeptWatching(seen, 3);

    await proxy.restore();
    await until(async () => (await fetch(segmentUrl)).status === 200, 10_000, 200);
    expect((await health(srv)).dependencies.storage).toBe('ok');

    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000)).toBe(0);
    const video = await readyVideo(srv, live.id, 30_000);
    const { segments, gaps } = await vodSegments(srv, video.id);
    const failed = await metric(srv, 'livepack_recorder_failed_segments_total');
    console.log(`[fault s3] recording ${video.duration} s in ${segments.length} segments, ${gaps} gaps, ${failed} failed segments`);
    // The recorder held what S3 could not take and stored it once S3 was back: nothing is missing.
    expect(gaps).toBe(0);
    expect(failed).toBe(0);
    expect(video.renditions.map((r: { gaps?: number }) => r.gaps)).toEqual([0]);
    expect(video.duration).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
    // Every segment the playlist lists is there.
    for (const s of segments) expect((await fetch(`${srv.base}/vod/${video.id}/source/${s.uri}`)).status, s.uri).toBe(200);
  }, 80_000);

  it('S3 that accepts connections and never answers: a VOD read answers 503 within the timeout, not never', async () => {
    expect(segmentUrl).not.toBe('');
    await proxy.hold();
    try {
      const t0 = Date.now();
      const res = await fetch(segmentUrl, { signal: AbortSignal.timeout(20_000) });
      const ms = Date.now() - t0;
      const body = await res.json();
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error.code).toBe('E_UNAVAILABLE');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      // Two tries of S3_TIMEOUT_MS each and the SDK's backoff between them.
      expect(ms).toBeGreaterThanOrEqual(S3_TIMEOUT_MS);
      expect(ms).toBeLessThan(3 * S3_TIMEOUT_MS + 2000);
      // The probe gives its HeadBucket up after 1 s.
      const t1 = Date.now();
      expect((await health(srv)).dependencies.storage).toBe('down');
      expect(Date.now() - t1).toBeLessThan(2500);
    } finally {
      await proxy.restore();
    }
    await until(async () => (await fetch(segmentUrl)).status === 200, 15_000, 200);
  }, 40_000);
});
