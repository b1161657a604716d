/**
 * Live runs become VOD assets: a real FFmpeg publishes over RTMP, the recorder stores segments as they
 * complete, and when the stream ends (after a short reconnect grace) the asset is ready with playlists
 * ffprobe reads, a poster and the right duration. On files under DATA_DIR and on S3 (s3rver). Then the
 * catalog and playback API over it: private visibility with tokens in the path, search, beacons, delete.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlaybackTokens } from '../../src/api/index.js';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';
import { probeDuration } from '../helpers/probe.js';
import { S3RVER_BUCKET, S3RVER_CREDENTIALS, startS3rver } from '../helpers/s3rver.js';

const GRACE_MS = 500;

/** The API's absolute URLs use PUBLIC_BASE_URL; the test server's port is known only after start. */
function local(srv: TestServer, url: string): string {
  return url.replace(/^https?:\/\/[^/]+/, srv.base);
}

async function waitReady(srv: TestServer, streamId: string, timeoutMs: number): Promise<any> {
  return until(
    async () => {
      const { json } = await srv.api('GET', `/api/v1/videos?streamId=${streamId}&type=vod`);
      const v = json.items[0];
      return v?.status === 'ready' ? v : undefined;
    },
    timeoutMs,
    50,
  );
}

/** Publish `seconds` of media, let it end, and measure from the end of the stream to the asset being ready. */
async function recordRun(srv: TestServer, name: string, seconds: number, profile = 'passthrough') {
  const { json: stream } = await srv.api('POST', '/api/v1/streams', { name, profile });
  const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds });
  // While it runs, the run is listed as live.
  const live = await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=live`)).json.items[0], 10_000);
  expect(live.status).toBe('live');
  expect(live.playback.hls).toContain(`/live/${stream.id}/master.m3u8`);
  expect(await waitExit(pub, (seconds + 20) * 1000)).toBe(0);
  const exitedAt = Date.now();
  const video = await waitReady(srv, stream.id, GRACE_MS + 15_000);
  // The stream ends GRACE_MS after its publisher left; ready must follow within 5 s of that.
  const readyMs = Date.now() - exitedAt - GRACE_MS;
  return { stream, video, readyMs, liveId: live.id as string };
}

function storageSuite(label: string, env: () => Record<string, string>, seconds: number) {
  describe(`recording on ${label}`, () => {
    let srv: TestServer;
    let rec: Awaited<ReturnType<typeof recordRun>>;

    beforeAll(
      async () => {
        srv = await startTestServer({ RECONNECT_GRACE_MS: String(GRACE_MS), ...env() });
        rec = await recordRun(srv, `rec-${label}`, seconds);
      },
      (seconds + 60) * 1000,
    );
    afterAll(async () => srv?.stop());

    it('the run becomes a ready VOD asset within 5 s of the end, with its duration, and ffprobe reads it', async () => {
      const { video, readyMs, liveId } = rec;
      console.log(`[vod ${label}] ${seconds} s recording ready ${readyMs} ms after the stream ended; duration ${video.duration} s`);
      expect(readyMs).toBeLessThan(5000);
      // One video for the run: the live entry became the VOD asset.
      expect(video.id).toBe(liveId);
      expect(video.type).toBe('vod');
      expect(video.source).toBe('recording');
      expect(Math.abs(video.duration - seconds)).toBeLessThan(0.5);
      expect(video.renditions.map((r: any) => r.name)).toEqual(['source']);
      expect(video.renditions[0].bandwidth).toBeGreaterThan(100_000);
      const master = local(srv, video.playback.hls);
      expect(Math.abs((await probeDuration(master)) - seconds)).toBeLessThan(0.5);
      const media = await (await fetch(master.replace('master.m3u8', 'source/index.m3u8'))).text();
      expect(media).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
      expect(media).toContain('#EXT-X-ENDLIST');
      expect(media).not.toContain('#EXT-X-PART');
      const poster = await fetch(local(srv, video.thumbnailUrl));
      expect(poster.status).toBe(200);
      expect(poster.headers.get('content-type')).toBe('image/jpeg');
      const jpeg = Buffer.from(await poster.arrayBuffer());
      expect(jpeg.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    });

    it('serves segments with ranges and immutable caching', async () => {
      const media = await (await fetch(`${srv.base}/vod/${rec.video.id}/source/index.m3u8`)).text();
      const seg = media.split('\n').find((l) => l.endsWith('.m4s'))!;
      const url = `${srv.base}/vod/${rec.video.id}/source/${seg}`;
      const whole = await fetch(url);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('cache-control')).toContain('immutable');
      const bytes = Buffer.from(await whole.arrayBuffer());
      const part = await fetch(url, { headers: { range: 'bytes=8-99' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 8-99/${bytes.length}`);
      expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(8, 100));
      expect((await fetch(url, { headers: { range: `bytes=${bytes.length + 10}-` } })).status).toBe(416);
      expect((await fetch(`${srv.base}/vod/${rec.video.id}/source/nope.m4s`)).status).toBe(404);
      expect((await fetch(`${srv.base}/vod/${rec.video.id}/..%2F..%2Fapi-token`)).status).toBe(404);
    });
  });
}

storageSuite('files', () => ({}), 20);

let s3: { endpoint: string; stop(): Promise<void> } | undefined;
const s3dir = join(process.env.TMPDIR ?? '/tmp', `livepack-s3rver-rec-${process.pid}`);
beforeAll(async () => {
  s3 = await startS3rver(s3dir);
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
}, 30_000);
afterAll(async () => {
  await s3?.stop();
  rmSync(s3dir, { recursive: true, force: true });
});
storageSuite('S3 (s3rver)', () => ({ S3_BUCKET: S3RVER_BUCKET, S3_ENDPOINT: s3!.endpoint, S3_FORCE_PATH_STYLE: 'true' }), 8);

describe('catalog and playback API over recordings', () => {
  let srv: TestServer;
  let rec: Awaited<ReturnType<typeof recordRun>>;
  let tokens: PlaybackTokens;

  beforeAll(async () => {
    srv = await startTestServer({ RECONNECT_GRACE_MS: String(GRACE_MS) });
    rec = await recordRun(srv, 'api', 6);
    tokens = new PlaybackTokens(readFileSync(join(srv.dataDir, 'playback-secret'), 'utf8').trim());
  }, 60_000);
  afterAll(async () => srv?.stop());

  /** Every URL of an asset, from its master playlist down: playlists, init, segments, poster. */
  async function assetUrls(masterUrl: string): Promise<string[]> {
    const urls = [masterUrl];
    const master = await (await fetch(masterUrl)).text();
    for (const line of master.split('\n').filter((l) => l && !l.startsWith('#'))) {
      const mediaUrl = new URL(line, masterUrl).href;
      urls.push(mediaUrl);
      const media = await (await fetch(mediaUrl)).text();
      const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(media)![1];
      urls.push(new URL(map, mediaUrl).href);
      for (const seg of media.split('\n').filter((l) => l.endsWith('.m4s'))) urls.push(new URL(seg, mediaUrl).href);
    }
    return urls;
  }

  it('a private asset: no token, a wrong, tampered or expired one is 403 with no media; a token opens every URL', async () => {
    const id = rec.video.id;
    const publicUrls = await assetUrls(`${srv.base}/vod/${id}/master.m3u8`);
    expect(publicUrls.length).toBeGreaterThan(4);
    const patched = await srv.api('PATCH', `/api/v1/videos/${id}`, { visibility: 'private' });
    expect(patched.json.visibility).toBe('private');
    expect(patched.json.thumbnailUrl).toBeNull();
    for (const url of [...publicUrls, `${srv.base}/vod/${id}/poster.jpg`]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(403);
      expect((await res.json()).error.code).toBe('E_FORBIDDEN');
    }
    // A viewer neither sees it listed nor gets it by id.
    const anon = await (await fetch(`${srv.base}/api/v1/videos`)).json();
    expect(anon.items.map((v: any) => v.id)).not.toContain(id);
    expect((await fetch(`${srv.base}/api/v1/videos/${id}`)).status).toBe(404);

    const { status, json } = await srv.api('POST', `/api/v1/videos/${id}/playback-token`, { ttlSeconds: 600 });
    expect(status).toBe(201);
    expect(json.playback.hls).toMatch(new RegExp(`/t/${json.token.replace(/[.]/g, '\\.')}/vod/${id}/master\\.m3u8$`));
    const tokenUrls = await assetUrls(local(srv, json.playback.hls));
    expect(tokenUrls.length).toBe(publicUrls.length);
    for (const url of [...tokenUrls, `${srv.base}/t/${json.token}/vod/${id}/poster.jpg`]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
      // No cache (a CDN keys on the path, token included) may keep it past the token's 600 s.
      const cc = res.headers.get('cache-control')!;
      expect(cc, url).not.toContain('immutable');
      expect(Number(/max-age=(\d+)/.exec(cc)![1]), url).toBeLessThanOrEqual(600);
    }
    // ffprobe follows the relative URIs and keeps the token.
    expect(Math.abs((await probeDuration(local(srv, json.playback.hls))) - rec.video.duration)).toBeLessThan(0.5);

    const expired = tokens.sign({ kind: 'v', id }, Date.now() - 1000);
    const otherVideo = tokens.sign({ kind: 'v', id: 'AAAAAAAAAAAAAAAA' }, Date.now() + 60_000);
    const liveToken = tokens.sign({ kind: 's', id }, Date.now() + 60_000);
    const tampered = json.token.replace(/\.(\d+)\./, (_m: string, exp: string) => `.${Number(exp) + 1000}.`);
    const forged = new PlaybackTokens('x'.repeat(40)).sign({ kind: 'v', id }, Date.now() + 60_000);
    for (const bad of [expired, otherVideo, liveToken, tampered, forged, 'garbage']) {
      const res = await fetch(`${srv.base}/t/${bad}/vod/${id}/master.m3u8`);
      expect(res.status, bad).toBe(403);
      const body = await res.text();
      expect(body).not.toContain('#EXTM3U');
    }
    await srv.api('PATCH', `/api/v1/videos/${id}`, { visibility: 'public' });
  });

  it('a private live stream needs a token for its playlists and parts, and its recording starts private', async () => {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', {
      name: 'secret show',
      profile: 'passthrough',
      visibility: 'private',
    });
    expect(stream.visibility).toBe('private');
    const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 30 });
    try {
      const live = await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=live`)).json.items[0], 10_000);
      expect(live.visibility).toBe('private');
      expect((await fetch(`${srv.base}/live/${stream.id}/master.m3u8`)).status).toBe(403);
      const { json: t } = await srv.api('POST', `/api/v1/videos/${live.id}/playback-token`);
      expect(t.playback.hls).toContain(`/live/${stream.id}/master.m3u8`);
      const master = await fetch(local(srv, t.playback.hls));
      expect(master.status).toBe(200);
      const mediaUrl = new URL(
        (await master.text()).split('\n').find((l) => l && !l.startsWith('#'))!,
        local(srv, t.playback.hls),
      ).href;
      const media = await (await fetch(mediaUrl)).text();
      const partUri = /#EXT-X-PART:[^\n]*URI="([^"]+)"/.exec(media)![1];
      expect((await fetch(new URL(partUri, mediaUrl))).status).toBe(200);
      expect((await fetch(new URL(partUri, `${srv.base}/live/${stream.id}/source/index.m3u8`))).status).toBe(403);
      // The token of another stream does not open this one.
      const other = tokens.sign({ kind: 's', id: 'BBBBBBBBBBBBBBBB' }, Date.now() + 60_000);
      expect((await fetch(`${srv.base}/t/${other}/live/${stream.id}/master.m3u8`)).status).toBe(403);
      // Deleting a run being recorded is refused; its visibility is the stream's.
      expect((await srv.api('DELETE', `/api/v1/videos/${live.id}`)).status).toBe(409);
      expect((await srv.api('PATCH', `/api/v1/videos/${live.id}`, { visibility: 'public' })).status).toBe(409);
      // The stream made public mid-run: live playback opens at once, and the run (its VOD later) follows.
      await srv.api('PATCH', `/api/v1/streams/${stream.id}`, { visibility: 'public' });
      expect((await fetch(`${srv.base}/live/${stream.id}/master.m3u8`)).status).toBe(200);
      expect((await srv.api('GET', `/api/v1/videos/${live.id}`)).json.visibility).toBe('public');
      await srv.api('PATCH', `/api/v1/streams/${stream.id}`, { visibility: 'private' });
      expect((await fetch(`${srv.base}/live/${stream.id}/master.m3u8`)).status).toBe(403);
      expect((await srv.api('GET', `/api/v1/videos/${live.id}`)).json.visibility).toBe('private');
      const anon = await (await fetch(`${srv.base}/api/v1/videos?streamId=${stream.id}`)).json();
      expect(anon.items).toEqual([]);
    } finally {
      await kill(pub);
    }
  });

  it('search, edits, watch beacons into history and /metrics', async () => {
    const id = rec.video.id;
    await srv.api('PATCH', `/api/v1/videos/${id}`, { title: 'Harbour regatta finals', description: 'Sailing boats racing in strong wind' });
    const found = await (await fetch(`${srv.base}/api/v1/search?q=${encodeURIComponent('race sailing')}`)).json();
    expect(found.items.map((v: any) => v.id)).toContain(id);
    const none = await (await fetch(`${srv.base}/api/v1/search?q=${encodeURIComponent('volcano')}`)).json();
    expect(none.items).toEqual([]);
    const beacon = (body: unknown) =>
      fetch(`${srv.base}/api/v1/videos/${id}/watch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await beacon({ viewerId: 'viewer-0001', position: 1.5, startupMs: 420, rebuffers: 0, bitrateKbps: 950 })).status).toBe(204);
    expect((await beacon({ viewerId: 'viewer-0001', position: 4.0, rebuffers: 1, rebufferMs: 300, bitrateKbps: 950 })).status).toBe(204);
    expect((await beacon({ viewerId: 'x', position: -1 })).status).toBe(400);
    expect(await beacon({ viewerId: 'viewer-0002', position: 1 }).then((r) => r.status)).toBe(204);
    const views = await srv.api('GET', `/api/v1/videos/${id}/views`);
    const v1 = views.json.items.find((v: any) => v.viewerId === 'viewer-0001');
    expect(v1).toMatchObject({ position: 4, startupMs: 420, rebuffers: 1, rebufferMs: 300, bitrateKbps: 950, beacons: 2 });
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    expect(metrics).toMatch(/^livepack_vod_watch_beacons_total 3$/m);
    expect(metrics).toMatch(/^livepack_vod_watch_rebuffers_total 1$/m);
    expect(metrics).toMatch(/^livepack_recorder_finalized_total [1-9]/m);
  });

  it('DELETE removes the video and its objects', async () => {
    const { stream, video } = await recordRun(srv, 'to delete', 3);
    const dir = join(srv.dataDir, 'media', 'videos', video.id);
    expect(existsSync(join(dir, 'master.m3u8'))).toBe(true);
    expect((await srv.api('DELETE', `/api/v1/videos/${video.id}`)).status).toBe(204);
    expect(existsSync(dir) && readFileSync(join(dir, 'master.m3u8'), 'utf8')).toBeFalsy();
    expect((await fetch(`${srv.base}/vod/${video.id}/master.m3u8`)).status).toBe(404);
    expect((await srv.api('GET', `/api/v1/videos/${video.id}`)).status).toBe(404);
    expect((await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`)).json.items).toEqual([]);
  });

  it('a stream with record off is listed while live and leaves nothing behind', async () => {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'unrecorded', profile: 'passthrough', record: false });
    const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: 4 });
    const live = await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`)).json.items[0], 10_000);
    expect(live.type).toBe('live');
    await waitExit(pub, 20_000);
    await until(async () => (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}`)).json.items.length === 0, 10_000);
    expect(existsSync(join(srv.dataDir, 'media', 'videos', live.id))).toBe(false);
  });
});
