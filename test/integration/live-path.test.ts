import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, run, waitExit } from '../../harness/processes.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

/**
 * The live path end to end on loopback: a real FFmpeg publishes RTMP, the origin serves LL-HLS, and
 * ffprobe decodes what it serves.
 */
describe('live path: RTMP -> LL-HLS', () => {
  let srv: TestServer;
  let stream: { id: string; streamKey: string };
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'livepack-probe-'));

  const get = (path: string, init?: RequestInit) => fetch(srv.base + path, init);
  const media = async (query = '') => {
    const res = await get(`/live/${stream.id}/source/index.m3u8${query}`);
    return { res, text: await res.text() };
  };

  beforeAll(async () => {
    srv = await startTestServer({ RECONNECT_GRACE_MS: '4000' });
    const created = await srv.api('POST', '/api/v1/streams', { name: 'it' });
    expect(created.status).toBe(201);
    stream = created.json;
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey));
    await until(async () => (await srv.api('GET', `/api/v1/streams/${stream.id}/live`)).status === 200, 15_000, 100);
  });

  afterAll(async () => {
    await kill(publisher);
    await srv?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves a multivariant playlist with CODECS, RESOLUTION and BANDWIDTH', async () => {
    const res = await get(`/live/${stream.id}/master.m3u8`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('mpegurl');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const text = await res.text();
    expect(text).toMatch(/^#EXTM3U\n/);
    expect(text).toMatch(/CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/);
    expect(text).toContain('RESOLUTION=640x360');
    const bw = Number(/BANDWIDTH=(\d+)/.exec(text)![1]);
    expect(bw).toBeGreaterThan(100_000);
    expect(bw).toBeLessThan(5_000_000);
    expect(text).toContain('source/index.m3u8');
  });

  it('serves an LL-HLS media playlist whose init + segment ffprobe decodes', async () => {
    const { res, text } = await media();
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(text).toContain('#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES');
    expect(text).toMatch(/PART-HOLD-BACK=0\.6/);
    const pl = parseMediaPlaylist(text);
    expect(pl.partTarget).toBeCloseTo(0.2, 2);
    expect(pl.segments.length).toBeGreaterThan(0);
    expect(pl.hint).toBeDefined();
    for (const p of pl.parts) expect(p.duration).toBeLessThanOrEqual(pl.partTarget + 1e-6);
    const seg = pl.segments[0];
    expect(seg.pdt).toBeDefined();
    expect(Math.abs(Date.parse(seg.pdt!) - Date.now())).toBeLessThan(30_000);
    const init = await get(`/live/${stream.id}/source/${seg.map}`);
    expect(init.status).toBe(200);
    expect(init.headers.get('cache-control')).toContain('immutable');
    const segRes = await get(`/live/${stream.id}/source/${seg.uri}`);
    expect(segRes.status).toBe(200);
    const file = join(tmp, 'probe.mp4');
    writeFileSync(file, Buffer.concat([Buffer.from(await init.arrayBuffer()), Buffer.from(await segRes.arrayBuffer())]));
    const probe = await run('ffprobe', [
      '-v',
      'error',
      '-count_frames',
      '-show_entries',
      'stream=codec_name,width,height,nb_read_frames,sample_rate',
      '-of',
      'json',
      file,
    ]);
    expect(probe.code).toBe(0);
    const streams = JSON.parse(probe.stdout).streams as Array<Record<string, string | number>>;
    const v = streams.find((s) => s.codec_name === 'h264')!;
    const a = streams.find((s) => s.codec_name === 'aac')!;
    expect(v.width).toBe(640);
    expect(v.height).toBe(360);
    // A 2 s segment at 30 fps holds 60 frames (one frame of slack for the cut).
    expect(Math.abs(Number(v.nb_read_frames) - seg.duration * 30)).toBeLessThanOrEqual(1);
    expect(a.sample_rate).toBe('48000');
    const decode = await run('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-']);
    expect(decode.code).toBe(0);
    expect(decode.stderr.trim()).toBe('');
  });

  it('holds a blocking reload until the part exists, then answers', async () => {
    const pl = parseMediaPlaylist((await media()).text);
    const last = pl.parts[pl.parts.length - 1];
    const lastIndex = pl.parts.filter((p) => p.msn === last.msn).length - 1;
    const t0 = performance.now();
    const { res, text } = await media(`?_HLS_msn=${last.msn}&_HLS_part=${lastIndex + 1}`);
    const waited = performance.now() - t0;
    expect(res.status).toBe(200);
    const next = parseMediaPlaylist(text);
    // The answer holds the part it asked for (or the next segment began with it).
    const has = next.parts.some(
      (p) => p.msn > last.msn || (p.msn === last.msn && next.parts.filter((q) => q.msn === last.msn).length > lastIndex + 1),
    );
    expect(has).toBe(true);
    expect(waited).toBeLessThan(2000);
  });

  it('refuses a request too far ahead with 400 and bad parameters with 400', async () => {
    const pl = parseMediaPlaylist((await media()).text);
    const far = await media(`?_HLS_msn=${pl.nextMsn + 5}`);
    expect(far.res.status).toBe(400);
    expect(far.text).toContain('E_PLAYLIST_TOO_FAR_AHEAD');
    expect((await media('?_HLS_part=1')).res.status).toBe(400);
    expect((await media('?_HLS_msn=abc')).res.status).toBe(400);
  });

  it('releases a held request when its client goes away', async () => {
    const pl = parseMediaPlaylist((await media()).text);
    const ac = new AbortController();
    const pending = get(`/live/${stream.id}/source/index.m3u8?_HLS_msn=${pl.nextMsn + 2}`, { signal: ac.signal }).catch(() => undefined);
    const held = async () => {
      const m = await (await get('/metrics')).text();
      return Number(/^livepack_hls_blocking_requests_held (\d+)/m.exec(m)?.[1] ?? -1);
    };
    await until(async () => (await held()) >= 1, 3000, 20);
    ac.abort();
    await pending;
    await until(async () => (await held()) === 0, 3000, 20);
  });

  it('answers a delta update with EXT-X-SKIP once the window is long enough', async () => {
    await until(async () => parseMediaPlaylist((await media()).text).segments.length >= 8, 30_000, 500);
    const { text } = await media('?_HLS_skip=YES');
    expect(text).toMatch(/#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+/);
    const full = parseMediaPlaylist((await media()).text);
    const delta = parseMediaPlaylist(text);
    expect(delta.segments.length).toBeLessThan(full.segments.length);
    expect(delta.segments[0].map).toBeDefined();
  });

  it('shows live status through the control API', async () => {
    const res = await srv.api('GET', `/api/v1/streams/${stream.id}/live`);
    expect(res.status).toBe(200);
    expect(res.json.state).toBe('live');
    expect(res.json.video).toMatchObject({ codec: 'h264', width: 640, height: 360 });
    expect(res.json.audio).toMatchObject({ codec: 'aac', sampleRate: 48000 });
    expect(res.json.fps).toBeGreaterThan(20);
    expect(res.json.bitrateKbps).toBeGreaterThan(100);
    expect(res.json.remoteAddress).toContain('127.0.0.1');
  });

  it('keeps serving other streams when garbage arrives on the RTMP port', async () => {
    const before = parseMediaPlaylist((await media()).text).nextMsn;
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const sock = net.connect(srv.rtmpPort, '127.0.0.1', () => {
          sock.write(Buffer.from([0x03, ...Array.from({ length: 1536 }, () => Math.floor(Math.random() * 256))]));
          sock.write(Buffer.from(Array.from({ length: 4000 }, () => Math.floor(Math.random() * 256))));
          setTimeout(() => sock.destroy(), 50);
        });
        sock.on('error', () => {});
        sock.on('close', () => resolve());
      });
    }
    await until(async () => parseMediaPlaylist((await media()).text).nextMsn > before + 1, 10_000, 200);
  });

  it('continues the same playlist across a publisher reconnect, with a discontinuity and no 404', async () => {
    const before = parseMediaPlaylist((await media()).text);
    await kill(publisher);
    // During the gap the playlist is still served.
    const gap = await media();
    expect(gap.res.status).toBe(200);
    publisher = ffmpegPublish(srv.rtmpUrl(stream.streamKey));
    const after = await until(
      async () => {
        const pl = parseMediaPlaylist((await media()).text);
        return pl.segments.some((s) => s.discontinuity && s.msn >= before.nextMsn) ? pl : undefined;
      },
      20_000,
      300,
    );
    const seam = after.segments.find((s) => s.discontinuity && s.msn >= before.nextMsn)!;
    // Media sequence numbers keep counting: no restart at 0.
    expect(seam.msn).toBeGreaterThanOrEqual(before.nextMsn);
    expect(after.mediaSequence).toBeGreaterThanOrEqual(before.mediaSequence);
    expect(seam.map).not.toBe(before.segments[0].map);
    const seg = await get(`/live/${stream.id}/source/${seam.uri}`);
    expect(seg.status).toBe(200);
    // Read the body: an unread response keeps its connection busy and the server's close waiting.
    expect((await seg.arrayBuffer()).byteLength).toBeGreaterThan(1000);
  });

  it('a second publisher with the same key takes over at once', async () => {
    const second = ffmpegPublish(srv.rtmpUrl(stream.streamKey));
    try {
      const code = await waitExit(publisher!, 20_000);
      expect(code).not.toBe(0); // the first publisher was cut off
      const live = await until(
        async () => {
          const r = await srv.api('GET', `/api/v1/streams/${stream.id}/live`);
          return r.status === 200 && r.json.state === 'live' && r.json.fps > 0 ? r.json : undefined;
        },
        10_000,
        200,
      );
      expect(live.sessions).toBeGreaterThanOrEqual(3);
    } finally {
      publisher = second;
    }
  });

  it('ends the playlist with EXT-X-ENDLIST when no publisher returns within the grace period', async () => {
    await kill(publisher);
    publisher = undefined;
    const ended = await until(
      async () => {
        const { text } = await media();
        return text.includes('#EXT-X-ENDLIST') ? text : undefined;
      },
      15_000,
      250,
    );
    expect(ended).not.toContain('#EXT-X-PRELOAD-HINT');
    expect(ended).not.toContain('#EXT-X-SERVER-CONTROL');
  });
});

describe('stream keys', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(async () => srv?.stop());

  it('refuses a wrong key at publish and counts it', async () => {
    await srv.api('POST', '/api/v1/streams', { name: 'keyed' });
    const pub = ffmpegPublish(srv.rtmpUrl('sk_wrong-key'), { seconds: 5 });
    const code = await waitExit(pub, 20_000);
    expect(code).not.toBe(0);
    const m = await (await fetch(`${srv.base}/metrics`)).text();
    expect(Number(/^livepack_ingest_auth_failures_total (\d+)/m.exec(m)![1])).toBeGreaterThanOrEqual(1);
  });

  it('a rotated key stops working and the new one publishes', async () => {
    const s = (await srv.api('POST', '/api/v1/streams', { name: 'rot' })).json;
    const rotated = await srv.api('POST', `/api/v1/streams/${s.id}/rotate-key`, {});
    expect(rotated.status).toBe(200);
    expect(rotated.json.streamKey).not.toBe(s.streamKey);
    const old = ffmpegPublish(srv.rtmpUrl(s.streamKey), { seconds: 5 });
    expect(await waitExit(old, 20_000)).not.toBe(0);
    const fresh = ffmpegPublish(rotated.json.ingest.rtmp.replace(/^rtmp:\/\/localhost:\d+/, `rtmp://127.0.0.1:${srv.rtmpPort}`));
    try {
      await until(async () => (await srv.api('GET', `/api/v1/streams/${s.id}/live`)).status === 200, 15_000, 200);
      const disc = await srv.api('POST', `/api/v1/streams/${s.id}/disconnect`);
      expect(disc.status).toBe(204);
      expect(await waitExit(fresh, 10_000)).not.toBe(0);
    } finally {
      await kill(fresh);
    }
  });
});

describe('server shutdown', () => {
  it('answers held requests without ending the playlist, so players wait for the origin to return', async () => {
    const srv = await startTestServer();
    const s = (await srv.api('POST', '/api/v1/streams', { name: 'shutdown' })).json;
    const pub = ffmpegPublish(srv.rtmpUrl(s.streamKey));
    try {
      const url = `${srv.base}/live/${s.id}/source/index.m3u8`;
      const pl = await until(
        async () => {
          const res = await fetch(url);
          return res.status === 200 ? parseMediaPlaylist(await res.text()) : undefined;
        },
        20_000,
        200,
      );
      const held = fetch(`${url}?_HLS_msn=${pl.nextMsn + 1}`).then(async (r) => ({ status: r.status, text: await r.text() }));
      await until(
        async () => /^livepack_hls_blocking_requests_held [1-9]/m.test(await (await fetch(`${srv.base}/metrics`)).text()),
        5000,
        20,
      );
      await srv.stop();
      const answer = await held;
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('#EXTINF');
      expect(answer.text).not.toContain('#EXT-X-ENDLIST');
    } finally {
      await kill(pub);
    }
  });
});
