/**
 * Operator routes check the token before the body is read (an onRequest hook): without the token, or with
 * a wrong one, a body over bodyLimit (2 MB) or malformed JSON is 401, not 413 or 400. With the token the
 * same bodies get what they deserve (413, 400), so the check is not simply skipping validation.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Answer {
  readonly status: number;
  readonly json: any;
}

/** A raw request (node:http, so the body is sent as given, and from a chosen loopback address). */
function send(
  base: string,
  method: string,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  localAddress: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      base + path,
      { method, localAddress, headers: { 'content-type': 'application/json', 'content-length': body.length, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    // The server may answer (and close) before taking the whole body: the answer is what counts.
    req.on('error', reject);
    req.end(body);
  });
}

const BIG = Buffer.from(JSON.stringify({ title: 'x'.repeat(2 * 1024 * 1024) }));
const MALFORMED = Buffer.from('{"title": "unterminated');

/** Every operator route of the catalog, playback-token, upload and stream APIs that takes a body. */
const ROUTES: ReadonlyArray<readonly [string, string]> = [
  ['PATCH', '/api/v1/videos/some-video-id'],
  ['POST', '/api/v1/videos/some-video-id/playback-token'],
  ['DELETE', '/api/v1/videos/some-video-id'],
  ['POST', '/api/v1/videos/upload/initiate'],
  ['POST', '/api/v1/streams'],
  ['PATCH', '/api/v1/streams/some-stream-id'],
  ['POST', '/api/v1/streams/some-stream-id/rotate-key'],
];

describe('operator routes: the token before the body', () => {
  let srv: TestServer;

  beforeAll(async () => {
    srv = await startTestServer();
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it.each(ROUTES)('%s %s without a token: 401 for a 2 MB body and for malformed JSON', async (method, path) => {
    for (const body of [BIG, MALFORMED]) {
      const res = await send(srv.base, method, path, body, {}, '127.0.0.2');
      expect(res.status, `${body.length} bytes: ${JSON.stringify(res.json)}`).toBe(401);
      expect(res.json.error.code).toBe('E_UNAUTHORIZED');
    }
  });

  it('a wrong token is 401 too, before the body (on a route viewers also use, the watch beacon, as well)', async () => {
    const wrong = { authorization: 'Bearer not-the-api-token' };
    for (const [method, path] of [
      ['PATCH', '/api/v1/videos/some-video-id'],
      ['POST', '/api/v1/videos/some-video-id/watch'],
    ] as const) {
      const res = await send(srv.base, method, path, BIG, wrong, '127.0.0.3');
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.json)}`).toBe(401);
    }
  });

  it('with the token, the same bodies are 413 and 400 E_VALIDATION', async () => {
    const auth = { authorization: `Bearer ${srv.apiToken}` };
    const big = await send(srv.base, 'PATCH', '/api/v1/videos/some-video-id', BIG, auth, '127.0.0.4');
    expect(big.status).toBe(413);
    const bad = await send(srv.base, 'PATCH', '/api/v1/videos/some-video-id', MALFORMED, auth, '127.0.0.4');
    expect(bad.status).toBe(400);
  });

  it('upload initiate refuses a size that is not a number ({"size": true}) with 400 E_VALIDATION', async () => {
    const auth = { authorization: `Bearer ${srv.apiToken}` };
    for (const size of [true, '1000', 12.5]) {
      const body = Buffer.from(JSON.stringify({ title: 'Talk', size, filename: 'talk.mp4' }));
      const res = await send(srv.base, 'POST', '/api/v1/videos/upload/initiate', body, auth, '127.0.0.5');
      expect(res.status, `size ${JSON.stringify(size)}: ${JSON.stringify(res.json)}`).toBe(400);
      expect(res.json.error.code).toBe('E_VALIDATION');
    }
    // Nothing was made of them.
    const listed = await srv.api('GET', '/api/v1/videos?type=vod');
    expect(listed.json.items).toEqual([]);
  });
});
