/**
 * Fault: S3 stops answering. s3rver behind a TCP proxy that is cut for 9 s, then restored; nothing is
 * restarted. Live viewers keep watching (live media is served from memory), the recorder marks the
 * segments it could not store as gaps, VOD playback answers 503 with
 * E_UNAVAILABLE and Retry-After rather than hanging; afterwards the
 * recording is complete and every segment that could not be stored is a counted EXT-X-GAP.
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
import { liveNextMsn, metric, readyVideo, vodSegments, watchLive } from './helpers.js';

const PUBLISH_SECONDS = 24;
const OUTAGE_MS = 9000;

describe('fault: S3 stops answering', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let proxy: TcpProxy;
  let srv: TestServer;
  const dir = mkdtempSync(join(tmpdir(), 'livepack-faults-s3-'));
  const cleanups: Array<() => unknown> = [];

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

  it('viewers keep watching, VOD answers 503 + Retry-After; every segment S3 missed is a counted gap', async () => {
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
    const segmentUrl = `${srv.base}/vod/${before.id}/source/${(await vodSegments(srv, before.id)).segments[0].uri}`;
    expect((await fetch(segmentUrl)).status).toBe(200);
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
    // Not checked: /healthz has no storage probe yet (a finding of this suite; see docs/OPERATIONS.md "Faults").
    const seen = await watching;
    expect(
      seen.statuses.filter((s) => s !== 200),
      `statuses ${seen.statuses.join(',')}`,
    ).toEqual([]);
    expect(seen.last - seen.first).toBeGreaterThanOrEqual(3);

    await proxy.restore();
    await until(async () => (await fetch(segmentUrl)).status === 200, 10_000, 200);

    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000)).toBe(0);
    const video = await readyVideo(srv, live.id, 30_000);
    const { segments, gaps } = await vodSegments(srv, video.id);
    const failed = await metric(srv, 'livepack_recorder_failed_segments_total');
    console.log(`[fault s3] recording ${video.duration} s in ${segments.length} segments, ${gaps} gaps, ${failed} failed segments`);
    // What could not be stored (the recorder tries a write 3 times over ~0.6 s) is a gap, counted, in the
    // asset's playlist; nothing else is missing. Holding writes through a longer outage is left to do.
    expect(gaps).toBe(failed);
    const gapSeconds = segments.filter((s) => s.gap).reduce((n, s) => n + s.duration, 0);
    expect(video.duration + gapSeconds).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
  }, 80_000);
});
