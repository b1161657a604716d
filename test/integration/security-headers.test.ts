import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Security headers on the answers that are not pages (src/api/security-headers.ts): the API, the LL-HLS
 * origin, VOD, player assets, errors and tus (a hijacked reply). Each carries nosniff, no-referrer and a
 * CSP that allows nothing, and keeps its own CORS and caching headers. The pages are in
 * test/e2e/security-headers.test.ts.
 */
describe('security headers on API and media answers', () => {
  let srv: TestServer;
  const auth = () => ({ authorization: `Bearer ${srv.apiToken}` });

  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const expectBaseline = (res: Response, what: string) => {
    expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
    expect(res.headers.get('referrer-policy'), what).toBe('no-referrer');
    expect(res.headers.get('content-security-policy'), what).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
    expect(res.headers.get('permissions-policy'), what).toBe('camera=(), microphone=(), geolocation=()');
    // Page-only headers stay off non-HTML answers.
    expect(res.headers.get('cross-origin-opener-policy'), what).toBeNull();
  };

  it('API answers: JSON with the operator token, a 401 without it, a 404, the OpenAPI JSON', async () => {
    const list = await fetch(`${srv.base}/api/v1/streams`, { headers: auth() });
    expect(list.status).toBe(200);
    expect(list.headers.get('content-type')).toMatch(/^application\/json/);
    expectBaseline(list, 'GET /api/v1/streams');

    const refused = await fetch(`${srv.base}/api/v1/streams`);
    expect(refused.status).toBe(401);
    expectBaseline(refused, '401');

    const missing = await fetch(`${srv.base}/api/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expectBaseline(missing, '404');

    const videos = await fetch(`${srv.base}/api/v1/videos`);
    expect(videos.status).toBe(200);
    expectBaseline(videos, 'GET /api/v1/videos');

    const spec = await fetch(`${srv.base}/docs/json`);
    expect(spec.status).toBe(200);
    expectBaseline(spec, '/docs/json');
  });

  it('/live, /vod and /t/ answers keep their CORS and caching headers', async () => {
    const { json: stream } = await srv.api('POST', '/api/v1/streams', { name: 'headers' });
    // Not live: the origin answers 404 with its own CORS and cache headers.
    const live = await fetch(`${srv.base}/live/${stream.id}/master.m3u8`);
    expect(live.status).toBe(404);
    expect(live.headers.get('access-control-allow-origin')).toBe('*');
    expect(live.headers.get('access-control-expose-headers')).toBe('content-length, age, date');
    expect(live.headers.get('cache-control')).toBeTruthy();
    expectBaseline(live, '/live 404');

    const preflight = await fetch(`${srv.base}/live/${stream.id}/master.m3u8`, {
      method: 'OPTIONS',
      headers: { origin: 'https://example.com', 'access-control-request-method': 'GET' },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-max-age')).toBe('86400');
    expectBaseline(preflight, 'OPTIONS /live');

    const vod = await fetch(`${srv.base}/vod/${stream.id}/master.m3u8`);
    expect(vod.status).toBeGreaterThanOrEqual(400);
    expectBaseline(vod, '/vod');

    const tokened = await fetch(`${srv.base}/t/not-a-token/live/${stream.id}/master.m3u8`);
    expect(tokened.status).toBeGreaterThanOrEqual(400);
    expectBaseline(tokened, '/t/');
  });

  it('player assets keep their caching; a tus answer (hijacked reply) carries the baseline too', async () => {
    const js = await fetch(`${srv.base}/player/player.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toBe('public, max-age=300');
    expectBaseline(js, '/player/player.js');

    const initiated = await fetch(`${srv.base}/api/v1/videos/upload/initiate`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'h', size: 10, filename: 'a.mp4' }),
    });
    expect(initiated.status).toBe(201);
    const { uploadUrl } = (await initiated.json()) as { uploadUrl: string };
    const tus = await fetch(`${srv.base}${new URL(uploadUrl).pathname}`, {
      method: 'HEAD',
      headers: { ...auth(), 'tus-resumable': '1.0.0' },
    });
    expect(tus.status).toBe(200);
    expect(tus.headers.get('upload-offset')).toBe('0');
    expect(tus.headers.get('x-content-type-options')).toBe('nosniff');
    expect(tus.headers.get('referrer-policy')).toBe('no-referrer');
  });
});
