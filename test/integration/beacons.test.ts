/**
 * Watch beacons (POST /api/v1/videos/<id>/watch) against the whole server on a real PostgreSQL: a flood of
 * beacons with random viewer ids makes a bounded number of viewing sessions (rows, counted through the
 * catalog), a session's beacons update its one row, over-the-bound answers are 429 with Retry-After, and a
 * private video's beacons need its playback token. Each case sends from its own loopback address
 * (127.0.0.x), so the per-address bounds of one case do not touch another.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/index.js';
import { openCatalog, type Catalog } from '../../src/catalog/index.js';
import { DEFAULT_BEACON_LIMITS } from '../../src/api/beacon-limits.js';
import { dropSchemas, PG_URL, randomSchema, skipPostgres } from '../helpers/catalog.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly json: any;
}

/** One POST from `localAddress` (node:http: fetch cannot pick the source address). */
function post(url: string, body: unknown, localAddress: string, headers: Record<string, string> = {}): Promise<Answer> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('beacon timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

const randomViewer = () => `v-${randomBytes(12).toString('base64url')}`;

describe.skipIf(skipPostgres)('watch beacons', () => {
  const schema = randomSchema();
  let srv: TestServer;
  let catalog: Catalog;
  let dataDir: string;

  /** A video of the catalog, made through the API (an upload not yet sent: no FFmpeg needed). */
  async function newVideo(visibility: 'public' | 'private'): Promise<string> {
    const res = await srv.api('POST', '/api/v1/videos/upload/initiate', {
      title: `beacons ${visibility}`,
      size: 1000,
      filename: 'b.mp4',
      visibility,
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    return res.json.videoId;
  }

  const beacon = (id: string, body: unknown, from: string, headers?: Record<string, string>) =>
    post(`${srv.base}/api/v1/videos/${id}/watch`, body, from, headers);

  beforeAll(async () => {
    const u = new URL(PG_URL);
    u.searchParams.set('options', `-c search_path=${schema}`);
    dataDir = await mkdtemp(join(tmpdir(), 'livepack-beacons-'));
    // The test's catalog creates the schema (and migrates it); the server then uses it through search_path.
    catalog = await openCatalog({ databaseUrl: PG_URL, schema, dataDir, logger: silentLogger });
    srv = await startTestServer({ DATABASE_URL: u.toString() });
  }, 30_000);

  afterAll(async () => {
    await srv?.stop();
    await catalog?.close();
    await dropSchemas([schema]);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a burst with random viewer ids makes a bounded number of sessions; 429 with Retry-After past the bounds', async () => {
    const id = await newVideo('public');
    const from = '127.0.0.2';
    const answers: Answer[] = [];
    // 300 beacons, 20 at a time, each from a new "viewer".
    for (let i = 0; i < 15; i++)
      answers.push(...(await Promise.all(Array.from({ length: 20 }, () => beacon(id, { viewerId: randomViewer(), position: 1 }, from)))));

    const rows = await catalog.videos.views(id, 1000);
    expect(rows.length).toBe(DEFAULT_BEACON_LIMITS.sessionsPerAddress);
    expect(answers.filter((a) => a.status === 204).length).toBe(rows.length);
    const refused = answers.filter((a) => a.status !== 204);
    expect(refused.length).toBe(300 - rows.length);
    for (const a of refused) {
      expect(a.status).toBe(429);
      expect(a.json.error.code).toBe('E_LIMIT_EXCEEDED');
      expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    // Both bounds were met: sessions of the video from this address, then the address's beacon rate.
    expect(refused.some((a) => /viewing sessions/.test(a.json.error.message))).toBe(true);
    expect(refused.some((a) => /too many watch beacons/.test(a.json.error.message))).toBe(true);
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    const counted = [...metrics.matchAll(/^livepack_vod_watch_beacons_refused_total\{reason="(?:rate|sessions)"\} (\d+)$/gm)];
    expect(counted.reduce((n, m) => n + Number(m[1]), 0)).toBe(refused.length);
  });

  it("a session's beacons update its one row", async () => {
    const id = await newVideo('public');
    const from = '127.0.0.3';
    const viewerId = randomViewer();
    for (let i = 0; i < 5; i++) expect((await beacon(id, { viewerId, position: i, rebuffers: i }, from)).status).toBe(204);
    const rows = await catalog.videos.views(id, 1000);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ viewerId, position: 4, rebuffers: 4, beacons: 5 });
  });

  it("a private video's beacon needs its playback token (403 without, or with another video's)", async () => {
    const id = await newVideo('private');
    const other = await newVideo('private');
    const from = '127.0.0.4';
    const body = { viewerId: randomViewer(), position: 2 };

    const none = await beacon(id, body, from);
    expect(none.status).toBe(403);
    expect(none.json.error.code).toBe('E_FORBIDDEN');
    const minted = await srv.api('POST', `/api/v1/videos/${other}/playback-token`, {});
    expect(minted.status).toBe(201);
    const wrong = await beacon(id, { ...body, token: minted.json.token }, from);
    expect(wrong.status).toBe(403);
    expect(wrong.json.error.code).toBe('E_FORBIDDEN');
    const forged = await beacon(id, { ...body, token: `v.${id}.9999999999.${'A'.repeat(43)}` }, from);
    expect(forged.status).toBe(403);
    expect(await catalog.videos.views(id, 10)).toEqual([]);

    const own = await srv.api('POST', `/api/v1/videos/${id}/playback-token`, {});
    expect((await beacon(id, { ...body, token: own.json.token }, from)).status).toBe(204);
    // The operator needs no playback token; a wrong operator token is 401.
    expect((await beacon(id, { ...body, position: 3 }, from, { authorization: `Bearer ${srv.apiToken}` })).status).toBe(204);
    expect((await beacon(id, body, from, { authorization: 'Bearer wrong-token' })).status).toBe(401);
    const rows = await catalog.videos.views(id, 10);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ viewerId: body.viewerId, position: 3, beacons: 2 });
  });

  it('a public video takes beacons without a token, and ignores one sent anyway', async () => {
    const id = await newVideo('public');
    expect((await beacon(id, { viewerId: randomViewer(), position: 1 }, '127.0.0.5')).status).toBe(204);
    expect((await beacon(id, { viewerId: randomViewer(), position: 1, token: 'not-a-token' }, '127.0.0.5')).status).toBe(204);
    expect(await catalog.videos.views(id, 10)).toHaveLength(2);
  });
});
