/**
 * Recordings across trouble: a publisher that reconnects within the grace gives one asset with a
 * discontinuity in every rendition (source and a transcoded rung); a server killed mid-stream (SIGKILL,
 * no shutdown) finalizes the recorded part at its next start, losing only the segment in progress.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess } from '../../harness/server-process.js';
import { probeDuration } from '../helpers/probe.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

const repoRoot = new URL('../..', import.meta.url).pathname;
const TOKEN = 'recovery-token-0123456789abcdef';

describe('recordings across reconnects and crashes', () => {
  const cleanups: Array<() => unknown> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('a publisher that returns within the grace gives one asset, with a discontinuity in every rendition', async () => {
    const srv: TestServer = await startTestServer({ RECONNECT_GRACE_MS: '4000' });
    cleanups.push(() => srv.stop());
    const { json: stream } = await srv.api('POST', '/api/v1/streams', {
      name: 'reconnecting',
      profile: 'abr',
      ladder: [{ name: '180p', height: 180, videoBitrateKbps: 300, maxFrameRate: 30 }],
    });
    // The first publisher's connection is lost (killed: no unpublish), so the stream waits for it.
    const first = ffmpegPublish(srv.rtmpUrl(stream.streamKey));
    await until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.fps > 0, 20_000, 100);
    await new Promise((r) => setTimeout(r, 6000));
    await kill(first);
    // The second one stops cleanly at the end of its input: the run ends at once.
    const second = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 6 });
    await waitExit(second, 30_000);
    const video = await until(async () => {
      const { json } = await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`);
      return json.items.length === 1 && json.items[0].status === 'ready' ? json.items[0] : undefined;
    }, 20_000);
    expect(video.renditions.map((r: any) => r.name).sort()).toEqual(['180p', 'source']);
    for (const r of ['source', '180p']) {
      const media = await (await fetch(`${srv.base}/vod/${video.id}/${r}/index.m3u8`)).text();
      expect(media.match(/#EXT-X-DISCONTINUITY\n/g)?.length, r).toBe(1);
      // Two publish sessions: two init segments.
      expect(media.match(/#EXT-X-MAP/g)?.length, r).toBe(2);
    }
    // Two sessions of about 6 s; the gap between them is not in the recording.
    expect(video.duration).toBeGreaterThan(10.5);
    expect(video.duration).toBeLessThan(13.5);
    expect(Math.abs((await probeDuration(`${srv.base}/vod/${video.id}/master.m3u8`)) - video.duration)).toBeLessThan(0.6);
  }, 90_000);

  it('a server stopped gracefully mid-stream keeps the segment in progress and finalizes the run on the way down', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'livepack-stop-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const srv = await startTestServer({ DATA_DIR: dataDir, API_TOKEN: TOKEN });
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'stopped', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 60 });
    cleanups.push(() => kill(pub));
    // Stop 1 s into a segment (2 s segments, keyframe every second): the segment in progress has media.
    await until(
      async () => {
        const text = await (await fetch(`${srv.base}/live/${stream.id}/source/index.m3u8`)).text();
        return (text.match(/#EXTINF/g)?.length ?? 0) >= 3 && (text.match(/#EXT-X-PART:/g)?.length ?? 0) > 0;
      },
      30_000,
      100,
    );
    const live = await (await fetch(`${srv.base}/live/${stream.id}/source/index.m3u8`)).text();
    const listed = [...live.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);
    await srv.stop();
    await kill(pub);
    const again = await startTestServer({ DATA_DIR: dataDir, API_TOKEN: TOKEN });
    cleanups.push(() => again.stop());
    const { json } = await again.api('GET', `/api/v1/videos?streamId=${stream.id}`);
    // Ready at once (finalized during the shutdown), and longer than what was complete when we looked.
    expect(json.items[0].status).toBe('ready');
    expect(json.items[0].duration).toBeGreaterThan(listed);
  }, 90_000);

  it('a server killed mid-stream finalizes the recorded part at its next start (only the segment in progress lost)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'livepack-crash-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const ac = new AbortController();
    // The embedded catalog in DATA_DIR for both lives of the server (CI exports a DATABASE_URL, which the
    // child would otherwise inherit while the restarted in-process server does not read it).
    const proc = await startServerProcess(repoRoot, dataDir, TOKEN, ac.signal, { RECONNECT_GRACE_MS: '1000', DATABASE_URL: '' });
    cleanups.push(() => proc.stop(2000));
    const api = (path: string, body?: unknown) =>
      fetch(proc.base + path, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      }).then((r) => r.json());
    const stream = await api('/api/v1/streams', { name: 'doomed', profile: 'passthrough' });
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${proc.rtmpPort}/live/${stream.streamKey}`, { seconds: 60 });
    cleanups.push(() => kill(pub));
    // Let it record a few segments, then read what the live playlist says is complete, and kill at once.
    await until(
      async () => {
        const text = await (await fetch(`${proc.base}/live/${stream.id}/source/index.m3u8`)).text();
        return (text.match(/#EXTINF/g)?.length ?? 0) >= 4;
      },
      30_000,
      200,
    );
    const livePlaylist = await (await fetch(`${proc.base}/live/${stream.id}/source/index.m3u8`)).text();
    proc.child.kill('SIGKILL');
    await waitExit(proc.child, 10_000);
    const completed = [...livePlaylist.matchAll(/#EXTINF:([\d.]+),/g)].map((m) => Number(m[1]));
    const completedSeconds = completed.reduce((a, b) => a + b, 0);

    // Errors of the restarted server are printed: if the run is not finished, they say why.
    const srv = await startTestServer({ DATA_DIR: dataDir, API_TOKEN: TOKEN, TEST_LOG_LEVEL: 'error' });
    cleanups.push(() => srv.stop());
    // Generous: on a loaded machine the restart (PGlite replaying its WAL) and the poster take a while.
    let seen: unknown;
    const video = await until(async () => {
      const { json } = await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`);
      seen = json.items;
      return json.items[0]?.status === 'ready' ? json.items[0] : undefined;
    }, 45_000).catch((err) => {
      throw new Error(`${err}; videos of the stream: ${JSON.stringify(seen)}`);
    });
    console.log(
      `[vod crash] live playlist had ${completed.length} complete segments (${completedSeconds.toFixed(2)} s) at the kill; recovered asset ${video.duration} s`,
    );
    expect(video.type).toBe('vod');
    // Every segment the live playlist listed as complete is in the asset, except perhaps the last one,
    // whose write may have been in flight at the kill; nothing beyond what was published.
    expect(video.duration).toBeGreaterThanOrEqual(completedSeconds - completed[completed.length - 1] - 0.01);
    expect(video.duration).toBeLessThanOrEqual(completedSeconds + 2.5);
    expect(Math.abs((await probeDuration(`${srv.base}/vod/${video.id}/master.m3u8`)) - video.duration)).toBeLessThan(0.5);
    ac.abort();
  }, 120_000);
});
