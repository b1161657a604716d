import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgReachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

const backends = [
  { name: 'embedded PGlite', env: (): Record<string, string> => ({}) },
  { name: 'PostgreSQL', env: (): Record<string, string> => ({ DATABASE_URL: schemaUrl }) },
];
let schemaUrl = '';
const reachable = await pgReachable();
if (!reachable && process.env.CI === 'true') throw new Error(`PostgreSQL is not reachable at ${PG_URL}; CI must test the real catalog`);

describe.each(backends)('control API on $name', ({ name, env }) => {
  let srv: TestServer;
  let schema = '';
  const skip = name === 'PostgreSQL' && !reachable;

  beforeAll(async () => {
    if (skip) return;
    if (name === 'PostgreSQL') {
      // A fresh database schema per run, so runs never see each other's streams.
      schema = `api_test_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`CREATE SCHEMA ${schema}`);
      await c.end();
      const u = new URL(PG_URL);
      u.searchParams.set('options', `-c search_path=${schema}`);
      schemaUrl = u.toString();
    }
    srv = await startTestServer(env());
  });

  afterAll(async () => {
    await srv?.stop();
    if (schema) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    }
  });

  it.skipIf(skip)('refuses requests without the operator token', async () => {
    const res = await fetch(`${srv.base}/api/v1/streams`);
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe('E_UNAUTHORIZED');
    const wrong = await fetch(`${srv.base}/api/v1/streams`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(401);
  });

  it.skipIf(skip)('creates a stream as the contract says', async () => {
    const res = await srv.api('POST', '/api/v1/streams', { name: 'event 1' });
    expect(res.status).toBe(201);
    const s = res.json;
    expect(s).toMatchObject({ name: 'event 1', profile: 'abr', customLadder: false, record: true, live: null });
    expect(s.id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(s.streamKey).toMatch(/^sk_[A-Za-z0-9_-]{32}$/); // 192 random bits
    expect(s.ingest.rtmp).toBe(`rtmp://localhost:0/live/${s.streamKey}`);
    expect(s.ingest.whip).toMatch(/\/whip$/);
    expect(s.playback.hls).toMatch(new RegExp(`/live/${s.id}/master\\.m3u8$`));
    expect(s.playback.hls).not.toContain(s.streamKey);
    const got = await srv.api('GET', `/api/v1/streams/${s.id}`);
    expect(got.status).toBe(200);
    expect(got.json.streamKey).toBeUndefined();
    expect(got.json.name).toBe('event 1');
  });

  it.skipIf(skip)('validates input with clear errors', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'name'],
      [{ name: '' }, 'name'],
      [{ name: 'x', profile: 'hd' }, 'profile'],
      [{ name: 'x', ladder: 'hd' }, 'ladder'],
      [{ name: 'x', extra: 1 }, 'additional'],
    ];
    for (const [body, word] of cases) {
      const res = await srv.api('POST', '/api/v1/streams', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.code).toBe('E_VALIDATION');
      expect(res.json.error.message).toContain(word);
    }
    const notJson = await fetch(`${srv.base}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
  });

  it.skipIf(skip)('lists with cursor pagination', async () => {
    for (let i = 0; i < 5; i++) await srv.api('POST', '/api/v1/streams', { name: `page ${i}` });
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
      const res = await srv.api('GET', `/api/v1/streams${q}`);
      expect(res.status).toBe(200);
      expect(res.json.items.length).toBeLessThanOrEqual(2);
      for (const s of res.json.items) seen.add(s.id);
      cursor = res.json.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    expect(seen.size).toBeGreaterThanOrEqual(6);
    expect((await srv.api('GET', '/api/v1/streams?cursor=garbage')).status).toBe(400);
    expect((await srv.api('GET', '/api/v1/streams?limit=5000')).status).toBe(400);
  });

  it.skipIf(skip)('rotates keys, refuses disconnect of an offline stream, deletes', async () => {
    const s = (await srv.api('POST', '/api/v1/streams', { name: 'to delete' })).json;
    const rot = await srv.api('POST', `/api/v1/streams/${s.id}/rotate-key`);
    expect(rot.status).toBe(200);
    expect(rot.json.streamKey).not.toBe(s.streamKey);
    const disc = await srv.api('POST', `/api/v1/streams/${s.id}/disconnect`);
    expect(disc.status).toBe(409);
    expect(disc.json.error.code).toBe('E_STREAM_NOT_LIVE');
    expect((await srv.api('GET', `/api/v1/streams/${s.id}/live`)).status).toBe(409);
    expect((await srv.api('DELETE', `/api/v1/streams/${s.id}`)).status).toBe(204);
    const gone = await srv.api('GET', `/api/v1/streams/${s.id}`);
    expect(gone.status).toBe(404);
    expect(gone.json.error.code).toBe('E_STREAM_NOT_FOUND');
    expect((await srv.api('DELETE', `/api/v1/streams/${s.id}`)).status).toBe(404);
  });

  it.skipIf(skip)('serves health, metrics, OpenAPI and the player', async () => {
    const health = await (await fetch(`${srv.base}/healthz`)).json();
    expect(health).toMatchObject({ status: 'ok', catalog: name === 'PostgreSQL' ? 'postgres' : 'pglite' });
    const metrics = await (await fetch(`${srv.base}/metrics`)).text();
    for (const m of [
      'livepack_live_streams',
      'livepack_hls_parts_total',
      'livepack_ingest_auth_failures_total',
      'livepack_ingest_bad_input_total',
      'livepack_hls_blocking_requests_held',
    ]) {
      expect(metrics).toContain(m);
    }
    const spec = await (await fetch(`${srv.base}/docs/json`)).json();
    expect(Object.keys(spec.paths)).toContain('/api/v1/streams');
    const page = await fetch(`${srv.base}/watch/abc`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/player/hls.min.js');
    const hls = await fetch(`${srv.base}/player/hls.min.js`);
    expect(hls.status).toBe(200);
    expect((await hls.text()).length).toBeGreaterThan(100_000);
    expect((await fetch(`${srv.base}/live/nope/master.m3u8`)).status).toBe(404);
  });
});
