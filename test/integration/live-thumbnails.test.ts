/**
 * Live thumbnails with real FFmpeg publishers over RTMP: an ABR stream gets a JPEG that ffprobe decodes,
 * cut from its lowest rung, within 15 s, and a new one after a refresh (every 2 s here); a private stream's
 * needs its playback token; both are gone (404) once the streams end. And the cutter's failure paths.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/index.js';
import { cutWithFfmpeg, ThumbnailTooLargeError } from '../../src/vod/recording/live-thumbnails.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, run } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

const GRACE_MS = 500;
const INTERVAL_MS = 2000;

/** The API's absolute URLs use PUBLIC_BASE_URL; the test server's port is known only after start. */
function local(srv: TestServer, url: string): string {
  return url.replace(/^https?:\/\/[^/]+/, srv.base);
}

async function fetchImage(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('live thumbnails', () => {
  let srv: TestServer;
  let dir: string;
  let publishers: Array<ReturnType<typeof ffmpegPublish>> = [];
  let publishedAt = 0;
  let abr: { id: string; url: string };
  let hidden: { id: string; url: string };
  let first: { bytes: Buffer; etag: string };
  let withToken: string;

  /** What ffprobe makes of an image: codec and size; throws when it cannot read it. */
  async function probeImage(bytes: Buffer): Promise<{ codec: string; width: number; height: number }> {
    const file = join(dir, `${Math.random().toString(36).slice(2)}.jpg`);
    writeFileSync(file, bytes);
    const r = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', file]);
    if (r.code !== 0) throw new Error(`ffprobe: ${r.stderr}`);
    const s = JSON.parse(r.stdout).streams[0];
    return { codec: s.codec_name, width: s.width, height: s.height };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livepack-thumbs-test-'));
    srv = await startTestServer({ RECONNECT_GRACE_MS: String(GRACE_MS), LIVE_THUMBNAIL_INTERVAL_MS: String(INTERVAL_MS) });
    // 640x360 in, one 180p rung: the thumbnail's size tells which rendition it was cut from.
    const ladder = [{ name: '180p', height: 180, videoBitrateKbps: 300, maxFrameRate: 30 }];
    const { json: a } = await srv.api('POST', '/api/v1/streams', { name: 'thumbs-abr', profile: 'abr', ladder });
    const { json: p } = await srv.api('POST', '/api/v1/streams', { name: 'thumbs-private', profile: 'passthrough', visibility: 'private' });
    abr = { id: a.id, url: `${srv.base}/live/${a.id}/thumbnail.jpg` };
    hidden = { id: p.id, url: `${srv.base}/live/${p.id}/thumbnail.jpg` };
    publishedAt = Date.now();
    publishers = [ffmpegPublish(srv.rtmpUrl(a.streamKey)), ffmpegPublish(srv.rtmpUrl(p.streamKey))];
  });
  afterAll(async () => {
    for (const p of publishers) await kill(p);
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an ABR stream has a decodable JPEG of its lowest rung within 15 s, named in its listing', async () => {
    const entry = await until(
      async () => {
        const page = await (await fetch(`${srv.base}/api/v1/videos?streamId=${abr.id}&type=live`)).json();
        return page.items[0]?.thumbnailUrl ? page.items[0] : undefined;
      },
      15_000,
      200,
    );
    expect(local(srv, entry.thumbnailUrl)).toBe(abr.url);
    // The first cut may come from the source, before the rung has a keyframe; the 180p one follows.
    const got = await until(
      async () => {
        const r = await fetchImage(abr.url);
        return r.res.status === 200 && (await probeImage(r.bytes)).height === 180 ? r : undefined;
      },
      Math.max(1000, 15_000 - (Date.now() - publishedAt)),
      300,
    );
    console.log(`[thumbnails] a 180p thumbnail ${Date.now() - publishedAt} ms after the publisher started; ${got.bytes.byteLength} bytes`);
    expect(await probeImage(got.bytes)).toEqual({ codec: 'mjpeg', width: 320, height: 180 });
    expect(got.res.headers.get('content-type')).toBe('image/jpeg');
    expect(got.res.headers.get('cache-control')).toBe('public, max-age=1');
    const etag = got.res.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect((await fetch(abr.url, { headers: { 'if-none-match': etag } })).status).toBe(304);
    first = { bytes: got.bytes, etag };
  });

  it('gets a new image after a refresh', async () => {
    expect(first, 'the previous test').toBeDefined();
    const next = await until(
      async () => {
        const r = await fetchImage(abr.url);
        return r.res.status === 200 && r.res.headers.get('etag') !== first.etag ? r : undefined;
      },
      4 * INTERVAL_MS,
      200,
    );
    // testsrc2 moves and shows a clock: another keyframe is another picture.
    expect(next.bytes.equals(first.bytes)).toBe(false);
    expect(await probeImage(next.bytes)).toEqual({ codec: 'mjpeg', width: 320, height: 180 });
  });

  it("a private stream's thumbnail needs the token its playback needs, and its entry names none", async () => {
    const live = await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${hidden.id}&type=live`)).json.items[0], 10_000);
    const { json: t } = await srv.api('POST', `/api/v1/videos/${live.id}/playback-token`, { ttlSeconds: 600 });
    withToken = local(srv, t.playback.hls.replace('master.m3u8', 'thumbnail.jpg'));
    expect(withToken).toBe(`${srv.base}/t/${t.token}/live/${hidden.id}/thumbnail.jpg`);
    const opened = await until(
      async () => {
        const r = await fetchImage(withToken);
        return r.res.status === 200 ? r : undefined;
      },
      10_000,
      200,
    );
    expect(await probeImage(opened.bytes)).toEqual({ codec: 'mjpeg', width: 640, height: 360 });
    // Never cached past the token's life.
    expect(opened.res.headers.get('cache-control')).toBe('public, max-age=1');
    for (const url of [
      hidden.url,
      hidden.url.replace('/live/', `/t/${t.token.slice(0, -2)}xx/live/`),
      hidden.url.replace('/live/', `/t/s.${abr.id}.9999999999.x/live/`),
    ]) {
      const refused = await fetchImage(url);
      expect(refused.res.status, url).toBe(403);
      expect(refused.bytes.includes(Buffer.from([0xff, 0xd8, 0xff]))).toBe(false);
    }
    expect((await srv.api('GET', `/api/v1/videos/${live.id}`)).json.thumbnailUrl).toBeNull();
    const anon = await (await fetch(`${srv.base}/api/v1/videos?type=live`)).json();
    expect(anon.items.map((v: any) => v.streamId)).not.toContain(hidden.id);
  });

  it('the cutter reports what FFmpeg says of a clip it cannot decode, and refuses an image over the cap', async () => {
    const signal = new AbortController().signal;
    const junk = { id: 'x', rendition: 'source', init: Buffer.from('not an mp4 at all'), media: Buffer.alloc(64) };
    await expect(cutWithFfmpeg('ffmpeg', junk, join(dir, 'junk'), 1 << 20, signal)).rejects.toThrow(/ffmpeg exited with [1-9]/);
    const clipFile = join(dir, 'clip.mp4');
    const made = await run('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x180:rate=10',
      '-frames:v',
      '3',
      '-c:v',
      'libx264',
      '-movflags',
      'frag_keyframe+empty_moov',
      '-y',
      clipFile,
    ]);
    expect(made.code).toBe(0);
    const clip = { id: 'y', rendition: 'source', init: readFileSync(clipFile), media: Buffer.alloc(0) };
    expect((await probeImage(await cutWithFfmpeg('ffmpeg', clip, join(dir, 'ok'), 1 << 20, signal))).width).toBe(320);
    const tooBig = cutWithFfmpeg('ffmpeg', clip, join(dir, 'big'), 100, signal);
    await expect(tooBig).rejects.toBeInstanceOf(ThumbnailTooLargeError);
    await expect(tooBig).rejects.toBeInstanceOf(AppError);
  });

  it('is gone (404) once the streams end', async () => {
    expect(withToken, 'the private stream test').toBeDefined();
    for (const p of publishers.splice(0)) await kill(p);
    await until(async () => (await fetch(abr.url)).status === 404 && (await fetch(withToken)).status === 404, GRACE_MS + 5000, 100);
    const after = await srv.api('GET', `/api/v1/videos?streamId=${abr.id}`);
    expect(after.json.items.some((v: any) => String(v.thumbnailUrl).includes('/live/'))).toBe(false);
  });
});
