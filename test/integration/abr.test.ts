import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, run } from '../../harness/processes.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

type Playlist = ReturnType<typeof parseMediaPlaylist>;

/** One frame at 30 fps, in ms: how far aligned segments may be apart. */
const FRAME_MS = 1000 / 30;

/**
 * The ABR ladder end to end: a real FFmpeg publishes 1280x720 over RTMP, the server's own supervised
 * FFmpeg makes the 480p and 360p rungs, and ffprobe checks what the origin serves for every rung.
 */
describe('ABR ladder: 720p source -> source + 480p + 360p', () => {
  let srv: TestServer;
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-abr-'));

  const get = (path: string) => fetch(`${srv.base}/live/${stream.id}/${path}`);
  const playlist = async (rung: string): Promise<Playlist> => {
    const res = await get(`${rung}/index.m3u8`);
    expect(res.status, `${rung}/index.m3u8`).toBe(200);
    return parseMediaPlaylist(await res.text());
  };
  const live = async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).json;

  /** init + segments of one rung as a file ffprobe can read. */
  const download = async (rung: string, segs: Playlist['segments']): Promise<{ file: string; bytes: number }> => {
    const init = Buffer.from(await (await get(`${rung}/${segs[0].map}`)).arrayBuffer());
    const bodies: Buffer[] = [];
    for (const s of segs) {
      const res = await get(`${rung}/${s.uri}`);
      expect(res.status, `${rung}/${s.uri}`).toBe(200);
      bodies.push(Buffer.from(await res.arrayBuffer()));
    }
    const file = join(tmp, `${rung}-${segs[0].msn}.mp4`);
    writeFileSync(file, Buffer.concat([init, ...bodies]));
    return { file, bytes: bodies.reduce((n, b) => n + b.byteLength, 0) };
  };

  const firstVideoPts = async (file: string): Promise<number> => {
    const { stdout } = await run('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v',
      '-show_entries',
      'packet=pts_time',
      '-read_intervals',
      '%+#1',
      '-of',
      'csv=p=0',
      file,
    ]);
    return Number(stdout.trim().split('\n')[0]);
  };

  const audioPts = async (file: string): Promise<number[]> => {
    const { stdout } = await run('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'a',
      '-show_entries',
      'packet=pts_time',
      '-of',
      'csv=p=0',
      file,
    ]);
    return stdout.trim().split('\n').filter(Boolean).map(Number);
  };

  beforeAll(async () => {
    // Other test files run FFmpeg beside this one: do not let a busy machine make it shed rungs here
    // (shedding has its own test, abr-overload.test.ts).
    srv = await startTestServer({ RECONNECT_GRACE_MS: '8000', TRANSCODE_SLOW_SECONDS: '600' });
    const created = await srv.api('POST', '/api/v1/streams', { name: 'abr' });
    expect(created.status).toBe(201);
    expect(created.json.profile).toBe('abr');
    stream = created.json;
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { size: '1280x720', fps: 30, gop: 60, extraArgs: ['-b:v', '2500k'] });
    await until(async () => (await live())?.transcode?.state === 'running', 20_000);
    // Every rung has a few complete segments.
    await until(
      async () => {
        for (const r of ['source', '480p', '360p']) if ((await playlist(r)).segments.filter((s) => !s.gap).length < 3) return false;
        return true;
      },
      30_000,
      250,
    );
  });

  afterAll(async () => {
    await kill(publisher);
    await srv?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists three variants with CODECS, RESOLUTION, FRAME-RATE and a measured BANDWIDTH', async () => {
    const text = await (await get('master.m3u8')).text();
    const variants = [...text.matchAll(/#EXT-X-STREAM-INF:([^\n]+)\n([^\n]+)/g)].map((m) => ({ attrs: m[1], uri: m[2] }));
    expect(variants.map((v) => v.uri)).toEqual(['source/index.m3u8', '480p/index.m3u8', '360p/index.m3u8']);
    expect(variants.map((v) => /RESOLUTION=(\d+x\d+)/.exec(v.attrs)?.[1])).toEqual(['1280x720', '854x480', '640x360']);
    for (const v of variants) {
      expect(v.attrs).toMatch(/CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/);
      expect(v.attrs).toContain('FRAME-RATE=30.000');
    }
    const bw = (i: number) => Number(/BANDWIDTH=(\d+)/.exec(variants[i].attrs)![1]);
    // Peak of 1400k / 800k video plus 96k audio: within a wide band (rate control per 2 s segment).
    expect(bw(1)).toBeGreaterThan(1_000_000);
    expect(bw(1)).toBeLessThan(2_600_000);
    expect(bw(2)).toBeGreaterThan(550_000);
    expect(bw(2)).toBeLessThan(1_600_000);
  });

  it('serves rungs whose resolution and bitrate ffprobe confirms', async () => {
    const expected = {
      '480p': { w: 854, h: 480, kbps: 1400 },
      '360p': { w: 640, h: 360, kbps: 800 },
      source: { w: 1280, h: 720, kbps: 2500 },
    };
    for (const [rung, want] of Object.entries(expected)) {
      const segs = (await playlist(rung)).segments.filter((s) => !s.gap).slice(-3);
      const { file } = await download(rung, segs);
      const { stdout } = await run('ffprobe', [
        '-v',
        'error',
        '-show_entries',
        'stream=codec_type,codec_name,width,height',
        '-of',
        'json',
        file,
      ]);
      const streams = JSON.parse(stdout).streams as Array<{ codec_type: string; codec_name: string; width?: number; height?: number }>;
      const video = streams.find((s) => s.codec_type === 'video')!;
      expect(video).toMatchObject({ codec_name: 'h264', width: want.w, height: want.h });
      expect(streams.find((s) => s.codec_type === 'audio')?.codec_name).toBe('aac');
      // Video bitrate from the video packets ffprobe reads, against the rung's target (±35%).
      const pk = await run('ffprobe', [
        '-v',
        'error',
        '-select_streams',
        'v',
        '-show_entries',
        'packet=size,pts_time',
        '-of',
        'csv=p=0',
        file,
      ]);
      const packets = pk.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(',').map(Number));
      const bytes = packets.reduce((n, [, size]) => n + size, 0);
      const pts = packets.map(([t]) => t);
      const seconds = Math.max(...pts) - Math.min(...pts) + 1 / 30;
      const kbps = (bytes * 8) / seconds / 1000;
      expect(kbps, `${rung} video kb/s`).toBeGreaterThan(want.kbps * 0.65);
      expect(kbps, `${rung} video kb/s`).toBeLessThan(want.kbps * 1.35);
    }
  });

  it('aligns the rungs: the same media sequence number starts at the same PDT and media time everywhere', async () => {
    const lists = { source: await playlist('source'), '480p': await playlist('480p'), '360p': await playlist('360p') };
    const common = lists.source.segments
      .filter((s) => !s.gap)
      .map((s) => s.msn)
      .filter(
        (msn) => lists['480p'].segments.some((x) => x.msn === msn && !x.gap) && lists['360p'].segments.some((x) => x.msn === msn && !x.gap),
      );
    expect(common.length).toBeGreaterThanOrEqual(3);
    for (const msn of common) {
      const pdts = Object.values(lists).map((l) => Date.parse(l.segments.find((s) => s.msn === msn)!.pdt!));
      expect(Math.max(...pdts) - Math.min(...pdts), `PDT spread of segment ${msn}`).toBeLessThanOrEqual(FRAME_MS);
    }
    // The media inside says the same, in each of the last three segments: each rung's segment starts with
    // the same presentation time, and carries exactly the source's own audio frames (split where the source
    // split them, although a rung's keyframe lies a reorder delay after the source's cut).
    for (const msn of common.slice(-3)) {
      const pts: number[] = [];
      const audio: Record<string, number[]> = {};
      for (const [rung, l] of Object.entries(lists)) {
        const { file } = await download(rung, [l.segments.find((s) => s.msn === msn)!]);
        pts.push(await firstVideoPts(file));
        audio[rung] = await audioPts(file);
      }
      expect((Math.max(...pts) - Math.min(...pts)) * 1000, `first pts of segment ${msn}: ${pts.join(', ')}`).toBeLessThanOrEqual(
        FRAME_MS + 1,
      );
      expect(audio.source.length).toBeGreaterThan(60); // 2 s of AAC
      for (const rung of ['480p', '360p']) {
        // Within a millisecond (timestamps are rounded to each track's timescale; a frame is 21 ms).
        const near = (t: number, list: number[]) => list.some((u) => Math.abs(u - t) < 0.001);
        const a = audio[rung];
        const extra = a.filter((t) => !near(t, audio.source));
        const missing = audio.source.filter((t) => !near(t, a));
        expect({ extra, missing }, `${rung} audio of segment ${msn} against the source's`).toEqual({ extra: [], missing: [] });
      }
    }
    // Every rung reports the others.
    const text = await (await get('480p/index.m3u8')).text();
    expect(text).toContain('#EXT-X-RENDITION-REPORT:URI="../source/index.m3u8"');
    expect(text).toContain('#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8"');
  });

  it('shows per-rung status and metrics', async () => {
    const t = (await live()).transcode;
    expect(t).toMatchObject({ state: 'running', restarts: 0, droppedRungs: [] });
    expect(t.pid).toBeGreaterThan(0);
    expect(t.speed).toBeGreaterThan(0.8);
    expect(t.lagMs).toBeLessThan(1000);
    expect(t.rungs.map((r: { name: string }) => r.name)).toEqual(['480p', '360p']);
    for (const r of t.rungs) {
      expect(r.state).toBe('running');
      expect(r.fps).toBeGreaterThan(20);
      expect(r.bitrateKbps).toBeGreaterThan(300);
    }
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`livepack_rung_fps\\{stream="${stream.id}",rung="480p"\\} [1-9]`));
    expect(metrics).toMatch(new RegExp(`livepack_transcode_speed\\{stream="${stream.id}"\\} [0-9.]+`));
    expect(metrics).toMatch(/livepack_transcode_streams_total [1-9]/);
  });

  it('restarts FFmpeg after kill -9: the rung playlists go on with a discontinuity and never 404', async () => {
    const before = await live();
    const oldPid: number = before.transcode.pid;
    const lastBefore = (await playlist('480p')).nextMsn;
    process.kill(oldPid, 'SIGKILL');
    const statuses = new Map<number, number>();
    const deadline = Date.now() + 9000;
    while (Date.now() < deadline) {
      for (const r of ['master.m3u8', 'source/index.m3u8', '480p/index.m3u8', '360p/index.m3u8']) {
        const res = await get(r);
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    expect([...statuses.keys()]).toEqual([200]);
    const after = await live();
    expect(after.transcode.restarts).toBe(1);
    expect(after.transcode.pid).not.toBe(oldPid);
    expect(after.transcode.state).toBe('running');
    expect(after.transcode.lastError).toMatch(/SIGKILL/);
    for (const rung of ['480p', '360p']) {
      const pl = await playlist(rung);
      expect(pl.nextMsn).toBeGreaterThan(lastBefore);
      const resumed = pl.segments.find((s) => s.discontinuity && s.msn >= lastBefore - 1);
      expect(resumed, `${rung} has a discontinuity where FFmpeg came back`).toBeDefined();
      // What the playlist lists is there (gaps are not to be loaded).
      for (const s of pl.segments.filter((x) => !x.gap).slice(-4)) expect((await get(`${rung}/${s.uri}`)).status).toBe(200);
    }
    // Still aligned after the restart.
    const src = await playlist('source');
    const rung = await playlist('480p');
    const newest = rung.segments.filter((s) => !s.gap).slice(-2);
    for (const s of newest)
      expect(Math.abs(Date.parse(s.pdt!) - Date.parse(src.segments.find((x) => x.msn === s.msn)!.pdt!))).toBeLessThanOrEqual(FRAME_MS);
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/livepack_transcode_crashes_total 1/);
  });

  it('serves a passthrough stream without rungs', async () => {
    const created = await srv.api('POST', '/api/v1/streams', { name: 'plain', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(created.json.streamKey), { size: '1280x720', fps: 30, gop: 30 });
    try {
      const text = await until(async () => {
        const res = await fetch(`${srv.base}/live/${created.json.id}/master.m3u8`);
        return res.status === 200 && (await res.text());
      }, 20_000);
      expect(text.match(/#EXT-X-STREAM-INF/g)).toHaveLength(1);
      expect((await srv.api('GET', `/api/v1/streams/${created.json.id}/live`)).json.transcode).toBeNull();
    } finally {
      await kill(pub);
    }
  });
});
