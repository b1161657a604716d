/**
 * HTTP semantics of VOD files (RFC 9110) on a real recording: FFmpeg publishes 2 s over RTMP, the run
 * becomes a VOD asset, and its segment is fetched with GET, HEAD and Range. HEAD answers GET's headers
 * (Content-Length included) without a body; a last-pos past the end is clipped to the last byte (206, as
 * nginx does); suffix ranges; a first-pos past the end is 416 whose Content-Range gives the size; several
 * ranges get the whole file (200).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

const SECONDS = 2;
const GRACE_MS = 300;
/** The headers GET and HEAD must agree on. */
const SAME = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'cache-control', 'access-control-allow-origin'];

describe('VOD files over HTTP: HEAD and Range', () => {
  let srv: TestServer;
  let videoId: string;
  let url: string;
  let whole: Buffer;
  let tokenUrl: string;

  beforeAll(async () => {
    srv = await startTestServer({ RECONNECT_GRACE_MS: String(GRACE_MS) });
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'vod-http', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(stream.streamKey), { seconds: SECONDS });
    expect(await waitExit(pub, (SECONDS + 20) * 1000)).toBe(0);
    const video = await until(
      async () => {
        const v = (await srv.api('GET', `/api/v1/videos?streamId=${stream.id}&type=vod`)).json.items[0];
        return v?.status === 'ready' ? v : undefined;
      },
      15_000,
      50,
    );
    videoId = video.id;
    const media = await (await fetch(`${srv.base}/vod/${videoId}/source/index.m3u8`)).text();
    const seg = media.split('\n').find((l) => l.endsWith('.m4s'))!;
    url = `${srv.base}/vod/${videoId}/source/${seg}`;
    const res = await fetch(url);
    expect(res.status).toBe(200);
    whole = Buffer.from(await res.arrayBuffer());
    expect(whole.length).toBeGreaterThan(1000);
    // The same file under a playback token (checked for an unlisted video too): the /t/ path, same route.
    expect((await srv.api('PATCH', `/api/v1/videos/${videoId}`, { visibility: 'unlisted' })).status).toBe(200);
    const minted = await srv.api('POST', `/api/v1/videos/${videoId}/playback-token`, {});
    tokenUrl = `${srv.base}/t/${minted.json.token}/vod/${videoId}/source/${seg}`;
  }, 60_000);

  afterAll(async () => srv?.stop());

  async function both(target: string, headers: Record<string, string> = {}) {
    const get = await fetch(target, { headers });
    const body = Buffer.from(await get.arrayBuffer());
    const head = await fetch(target, { method: 'HEAD', headers });
    const headBody = Buffer.from(await head.arrayBuffer());
    return { get, body, head, headBody };
  }

  function expectSameHeaders(get: Response, head: Response) {
    expect(head.status).toBe(get.status);
    // A token URL's max-age counts down to the token's expiry: the two answers may fall a second apart.
    for (const name of SAME) {
      if (name === 'cache-control') {
        const [h, g] = [head.headers.get(name), get.headers.get(name)].map((v) => Number(/max-age=(\d+)/.exec(v ?? '')?.[1] ?? -1));
        expect(Math.abs(h - g), `${name}: ${head.headers.get(name)} / ${get.headers.get(name)}`).toBeLessThanOrEqual(1);
        expect((head.headers.get(name) ?? '').replace(/max-age=\d+/, ''), name).toBe(
          (get.headers.get(name) ?? '').replace(/max-age=\d+/, ''),
        );
      } else expect(head.headers.get(name), name).toBe(get.headers.get(name));
    }
  }

  it('HEAD gives the Content-Length and headers GET gives, without a body', async () => {
    for (const target of [url, tokenUrl, `${srv.base}/vod/${videoId}/master.m3u8`]) {
      const { get, body, head, headBody } = await both(target);
      expect(get.status).toBe(200);
      expect(Number(get.headers.get('content-length'))).toBe(body.length);
      expectSameHeaders(get, head);
      expect(Number(head.headers.get('content-length'))).toBe(body.length);
      expect(headBody.length).toBe(0);
    }
    // With a range too.
    const { get, head, headBody } = await both(url, { range: 'bytes=10-99' });
    expect(get.status).toBe(206);
    expectSameHeaders(get, head);
    expect(head.headers.get('content-length')).toBe('90');
    expect(headBody.length).toBe(0);
  });

  it('a last-pos past the end is clipped to the last byte: 206 with the rest of the file', async () => {
    const size = whole.length;
    for (const spec of ['bytes=0-99999999999999999999', `bytes=0-${size}`, `bytes=100-${size * 10}`]) {
      const { get, body, head } = await both(url, { range: spec });
      const start = Number(/^bytes=(\d+)/.exec(spec)![1]);
      expect(get.status, spec).toBe(206);
      expect(get.headers.get('content-range'), spec).toBe(`bytes ${start}-${size - 1}/${size}`);
      expect(body.equals(whole.subarray(start)), spec).toBe(true);
      expectSameHeaders(get, head);
    }
  });

  it('suffix ranges: the last N bytes, or the whole file when N is larger', async () => {
    const size = whole.length;
    const last = await both(url, { range: 'bytes=-500' });
    expect(last.get.status).toBe(206);
    expect(last.get.headers.get('content-range')).toBe(`bytes ${size - 500}-${size - 1}/${size}`);
    expect(last.body.equals(whole.subarray(size - 500))).toBe(true);
    expectSameHeaders(last.get, last.head);
    const more = await both(url, { range: `bytes=-${size * 2}` });
    expect(more.get.status).toBe(206);
    expect(more.get.headers.get('content-range')).toBe(`bytes 0-${size - 1}/${size}`);
    expect(more.body.equals(whole)).toBe(true);
  });

  it('a first-pos at or past the end, or an empty suffix, is 416 with Content-Range: bytes */size', async () => {
    const size = whole.length;
    for (const spec of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=99999999999999999999-', 'bytes=-0']) {
      const { get, body, head } = await both(url, { range: spec });
      expect(get.status, spec).toBe(416);
      expect(get.headers.get('content-range'), spec).toBe(`bytes */${size}`);
      expect(JSON.parse(body.toString()).error.code).toBe('E_VALIDATION');
      expect(head.status, spec).toBe(416);
      expect(head.headers.get('content-range'), spec).toBe(`bytes */${size}`);
    }
  });

  it('several ranges, or a malformed header, get the whole file (200)', async () => {
    for (const spec of ['bytes=0-1,5-9', 'bytes=9-5', 'lines=0-1', 'bytes=abc']) {
      const { get, body, head } = await both(url, { range: spec });
      expect(get.status, spec).toBe(200);
      expect(body.equals(whole), spec).toBe(true);
      expectSameHeaders(get, head);
    }
  });

  it('HEAD of a file the asset does not have is 404, as GET is', async () => {
    const missing = `${srv.base}/vod/${videoId}/source/nope.m4s`;
    expect((await fetch(missing)).status).toBe(404);
    expect((await fetch(missing, { method: 'HEAD' })).status).toBe(404);
  });
});
