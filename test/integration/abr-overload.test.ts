import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill } from '../../harness/processes.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * When FFmpeg cannot keep up in real time, the most expensive rung is dropped rather than letting latency
 * grow. Made real here with x264's slowest preset on a real FFmpeg pinned to one core at the lowest
 * priority (a wrapper named by FFMPEG_PATH), so it cannot keep up and the other core stays free for
 * the rest of the suite.
 */
describe('ABR ladder under CPU starvation', () => {
  let srv: TestServer;
  const dir = mkdtempSync(join(tmpdir(), 'livepack-starved-'));
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const live = async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json;

  beforeAll(async () => {
    const wrapper = join(dir, 'ffmpeg-one-core');
    writeFileSync(wrapper, '#!/bin/sh\nexec nice -n 19 taskset -c 0 ffmpeg "$@"\n');
    chmodSync(wrapper, 0o755);
    srv = await startTestServer({
      FFMPEG_PATH: wrapper,
      TRANSCODE_X264_PRESET: 'placebo',
      TRANSCODE_SLOW_SECONDS: '2',
      RECONNECT_GRACE_MS: '4000',
    });
    stream = (await srv.api('POST', '/api/v1/streams', { name: 'starved' })).json;
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '1280x720', fps: 30, gop: 60 });
  });

  afterAll(async () => {
    await kill(publisher);
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops the most expensive rung, says so in status and metrics, and keeps its playlist answering', async () => {
    const t = await until(
      async () => {
        const s = (await live())?.transcode;
        return s && s.droppedRungs.length > 0 && s;
      },
      40_000,
      250,
    );
    // 480p costs more than 360p: it goes first.
    expect(t.droppedRungs[0]).toBe('480p');
    expect(t.rungs.find((r: { name: string }) => r.name === '480p').state).toBe('dropped');
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/livepack_transcode_rungs_dropped_total [1-9]/);
    expect(metrics).toMatch(new RegExp(`livepack_rung_dropped\\{stream="${stream.id}",rung="480p"\\} 1`));
    // New players are not offered the dropped rung; the source still plays.
    const master = await (await fetch(`${srv.base}/live/${stream.id}/master.m3u8`)).text();
    expect(master).not.toContain('480p/index.m3u8');
    expect(master).toContain('source/index.m3u8');
    // A player already on it gets a playlist (not a 404) that goes on with gaps.
    const res = await fetch(`${srv.base}/live/${stream.id}/480p/index.m3u8`);
    expect(res.status).toBe(200);
    await res.text();
    // The source's playlist keeps growing in real time: the transcoder never held it back.
    const a = parseMediaPlaylist(await (await fetch(`${srv.base}/live/${stream.id}/source/index.m3u8`)).text()).nextMsn;
    await until(
      async () => parseMediaPlaylist(await (await fetch(`${srv.base}/live/${stream.id}/source/index.m3u8`)).text()).nextMsn >= a + 2,
      8000,
    );
  });
});

/** An encoder this machine does not have: FFmpeg never starts, and the stream is its source alone. */
describe('ABR ladder with an encoder that cannot start', () => {
  let srv: TestServer;
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;

  beforeAll(async () => {
    srv = await startTestServer({ TRANSCODE_READY_TIMEOUT_MS: '3000' });
  });

  afterAll(async () => {
    await kill(publisher);
    await srv?.stop();
  });

  it('gives up after three failed starts, says why, and serves the source', async () => {
    const ladder = [{ height: 360, videoBitrateKbps: 800, encoder: 'h264_nvenc' }];
    const created = await srv.api('POST', '/api/v1/streams', { name: 'no-gpu', ladder });
    expect(created.status).toBe(201);
    publisher = ffmpegPublish(srv.rtmpUrl(created.json.streamKey), { size: '1280x720', fps: 30, gop: 60 });
    const t = await until(
      async () => {
        const s = (await srv.api('GET', `/api/v1/streams/${created.json.id}/live`)).json?.transcode;
        return s?.state === 'failed' && s;
      },
      40_000,
      250,
    );
    expect(t.restarts).toBe(3);
    // FFmpeg's own words: no CUDA / no such encoder on this machine.
    expect(t.lastError).toMatch(/before ready|not ready/);
    expect(t.lastError.length).toBeGreaterThan(30);
    const master = await (await fetch(`${srv.base}/live/${created.json.id}/master.m3u8`)).text();
    expect(master.match(/#EXT-X-STREAM-INF/g)).toHaveLength(1);
    expect(master).toContain('source/index.m3u8');
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/livepack_transcode_exits_total 3/);
    expect(metrics).toMatch(/livepack_transcode_crashes_total 0/);
  });
});
