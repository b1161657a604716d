/**
 * Fault: FFmpeg breaks under a running server. FFMPEG_PATH is a small script whose behaviour a file beside
 * it sets: crash at once (SIGSEGV), exit 1 at once saying nothing, or be gone (the file renamed away: spawn
 * ENOENT); "FFmpeg is back" is the script handing over to the real FFmpeg. Nothing is restarted.
 * Passthrough streams need no FFmpeg and keep playing; an ABR stream serves its source alone, says why in
 * its status, gives up after a bounded number of starts (no crash loop) and gets its rungs back once FFmpeg
 * works; /healthz says FFmpeg is down, then ok; a recording that ends meanwhile is ready without a poster;
 * an upload waits for FFmpeg, its attempts not counted (not failed as bad media, nor out of attempts), and
 * is packaged once FFmpeg works. A wrong FFMPEG_PATH at
 * start-up is refused with a message that says so.
 */
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { findFfmpeg } from '../../src/process/index.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';
import { health, liveNextMsn, makeClip, metric, readyVideo, settledVideo, upload, watchLive, expectKeptWatching } from './helpers.js';

const PUBLISH_SECONDS = 50;
const LADDER = [{ name: '180p', height: 180, videoBitrateKbps: 300, maxFrameRate: 30 }];

describe('fault: FFmpeg missing or crashing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'livepack-faults-ffmpeg-'));
  const script = join(dir, 'ffmpeg');
  const away = join(dir, 'ffmpeg.away');
  const realFfmpeg = findFfmpeg({ PATH: process.env.PATH });
  const mode = (m: 'crash' | 'exit1' | 'ok') => writeFileSync(join(dir, 'mode'), m);
  let srv: TestServer;
  let clip: Buffer;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        `case "$(cat '${join(dir, 'mode')}' 2>/dev/null)" in`,
        `  ok) exec '${realFfmpeg}' "$@" ;;`,
        // No core file: only the signal is wanted.
        '  crash) ulimit -c 0; kill -SEGV $$ ;;',
        'esac',
        'exit 1',
        '',
      ].join('\n'),
    );
    chmodSync(script, 0o755);
    mode('crash');
    clip = await makeClip(join(dir, 'clip.mp4'), 4);
    // VOD_JOB_ATTEMPTS is left at its default (3): an outage longer than three backoffs fails no upload.
    srv = await startTestServer({ FFMPEG_PATH: script, RECONNECT_GRACE_MS: '500' });
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start with an FFMPEG_PATH that is not there, saying so', async () => {
    const data = mkdtempSync(join(tmpdir(), 'livepack-faults-ffmpeg-data-'));
    try {
      await expect(startTestServer({ DATA_DIR: data, FFMPEG_PATH: join(dir, 'no-such-ffmpeg') })).rejects.toThrow(
        /FFMPEG_PATH=.*no-such-ffmpeg is not an executable file/,
      );
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('passthrough plays on, ABR serves its source with a reason and no crash loop, uploads retry; all resumes', async () => {
    const { json: pass } = await srv.api('POST', '/api/v1/streams', { name: 'passthrough', profile: 'passthrough' });
    const { json: abr } = await srv.api('POST', '/api/v1/streams', { name: 'abr', profile: 'abr', ladder: LADDER });
    const { json: short } = await srv.api('POST', '/api/v1/streams', { name: 'ends-unfixed', profile: 'passthrough' });
    const pubs = [pass, abr].map((s) => ffmpegPublish(srv.rtmpUrl(s.streamKey), { seconds: PUBLISH_SECONDS }));
    const shortPub = ffmpegPublish(srv.rtmpUrl(short.streamKey), { seconds: 6 });
    cleanups.push(...[...pubs, shortPub].map((p) => () => kill(p)));
    await until(async () => (await liveNextMsn(srv, pass.id)) >= 2 && (await liveNextMsn(srv, abr.id)) >= 2, 25_000, 200);
    const watching = [watchLive(srv, pass.id, 14_000), watchLive(srv, abr.id, 14_000)];

    // Crashing on every start: the ladder gives up after its bounded tries and says why.
    const failed = await until(async () => {
      const t = (await srv.api('GET', `/api/v1/streams/${abr.id}`)).json?.live?.transcode;
      return t?.state === 'failed' ? t : undefined;
    }, 15_000);
    expect(failed.lastError).toMatch(/SIGSEGV/);
    const exits = await metric(srv, 'livepack_transcode_exits_total');
    expect(exits).toBeGreaterThanOrEqual(3);
    expect((await health(srv)).dependencies.ffmpeg).toBe('down');
    expect((await health(srv)).status).toBe('degraded');

    // Exiting 1 at once, saying nothing: an upload is FFmpeg's failure, retried, not the file's.
    mode('exit1');
    const up = await upload(srv, clip, 'clip.mp4');
    expect(up.patch?.status, up.patch?.body).toBe(204);
    const videoId: string = up.initiate.json.videoId;
    const retrying = await until(async () => {
      const { json: v } = await srv.api('GET', `/api/v1/videos/${videoId}`);
      return v?.error?.includes('retrying') ? v : undefined;
    }, 15_000);
    expect(retrying.status).not.toBe('failed');
    expect(retrying.error).toContain('waits for FFmpeg');
    expect(await metric(srv, 'livepack_vod_jobs_retried_total')).toBeGreaterThanOrEqual(1);

    // The recording that ended meanwhile is a VOD without a poster (FFmpeg cuts posters).
    expect(await waitExit(shortPub, 20_000)).toBe(0);
    const unposted = await readyVideo(srv, short.id);
    expect(unposted.thumbnailUrl).toBeNull();

    // Gone: spawns fail with ENOENT; still no crash loop, the server answers.
    renameSync(script, away);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await srv.api('GET', `/api/v1/streams/${abr.id}`)).json.live.transcode.state).not.toBe('running');
    // Bounded: three starts, then a try every 10 s and more (doubling), not a crash loop.
    expect(await metric(srv, 'livepack_transcode_exits_total')).toBeLessThanOrEqual(exits + 3);
    const seen = await Promise.all(watching);
    for (const s of seen) expectKeptWatching(s, 4);
    // LL-HLS parts keep coming on the passthrough stream.
    const parts = parseMediaPlaylist(await (await fetch(`${srv.base}/live/${pass.id}/source/index.m3u8`)).text()).parts;
    expect(parts.length).toBeGreaterThan(0);
    const videoWhileGone = (await srv.api('GET', `/api/v1/videos/${videoId}`)).json;
    expect(videoWhileGone.status).not.toBe('failed');

    // FFmpeg is back: the ladder's next try brings the rung back, the upload is packaged, /healthz says ok.
    mode('ok');
    renameSync(away, script);
    // The next try comes at most 20 s after the last one failed (10 s, then 20 s).
    await until(async () => (await srv.api('GET', `/api/v1/streams/${abr.id}`)).json?.live?.transcode?.state === 'running', 30_000, 250);
    await until(async () => {
      const res = await fetch(`${srv.base}/live/${abr.id}/180p/index.m3u8`);
      return res.status === 200 && parseMediaPlaylist(await res.text()).segments.length > 0;
    }, 15_000);
    const packaged = await settledVideo(srv, videoId, 45_000);
    expect(packaged.status, JSON.stringify(packaged)).toBe('ready');
    // The upload worker's own probe (2 s doubling to 30 s) has found FFmpeg again by now, as has the ladder.
    expect((await health(srv)).dependencies.ffmpeg).toBe('ok');
    console.log(
      `[fault ffmpeg] ladder exits ${await metric(srv, 'livepack_transcode_exits_total')}, upload retried ${await metric(srv, 'livepack_vod_jobs_retried_total')} times`,
    );

    // The runs that were live through it all are recorded, with a poster now that FFmpeg works.
    for (const p of pubs) expect(await waitExit(p, (PUBLISH_SECONDS + 20) * 1000)).toBe(0);
    const recorded = await readyVideo(srv, pass.id, 30_000);
    expect(recorded.duration).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
    expect(recorded.thumbnailUrl).toBeTruthy();
    expect(await metric(srv, 'livepack_recorder_failed_segments_total')).toBe(0);
  }, 150_000);
});
