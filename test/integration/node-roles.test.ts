/**
 * NODE_ROLES and coordination in the composition root: what a node of each role serves, and what /healthz,
 * /readyz and /metrics say of its roles and of Redis and the catalog, with the machine's Redis
 * (127.0.0.1:6379, a prefix of its own, its keys deleted after) and with a Redis that does not answer.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { freePort, kill } from '../../harness/processes.js';
import { deleteKeysWithPrefix, keysWithPrefix } from '../../harness/redis.js';
import { openCatalog } from '../../src/catalog/index.js';
import { hashSecret, newStreamKey, silentLogger } from '../../src/core/index.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

const REDIS = 'redis://127.0.0.1:6379';

async function health(srv: TestServer, path = '/healthz') {
  const res = await fetch(srv.base + path);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const metrics = async (srv: TestServer) => (await fetch(`${srv.base}/metrics`)).text();

/** Whether the node mounts a route for the request (the not-found handler answers "no route ..." otherwise). */
async function mounted(srv: TestServer, method: string, path: string): Promise<boolean> {
  const res = await fetch(srv.base + path, { method, headers: { authorization: `Bearer ${srv.apiToken}` } });
  const body = (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
  return !(res.status === 404 && body?.error?.message === `no route ${method} ${path}`);
}

describe('NODE_ROLES=origin', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ NODE_ROLES: 'origin' });
  });
  afterAll(() => srv?.stop());

  it('serves the API, the player and /vod, and answers /live as not live; takes no publishers', async () => {
    const created = await srv.api('POST', '/api/v1/streams', { name: 'on origin' });
    expect(created.status).toBe(201);
    expect((await srv.api('GET', `/api/v1/streams/${created.json.id}`)).status).toBe(200);
    expect((await fetch(`${srv.base}/watch/abc`)).status).toBe(200);
    const live = await fetch(`${srv.base}/live/${created.json.id}/master.m3u8`);
    expect(live.status).toBe(404);
    expect(await live.text()).toBe('stream is not live\n');
    expect(live.headers.get('access-control-allow-origin')).toBe('*');
    // /vod is mounted: an unknown video is the route's own 404.
    expect(await mounted(srv, 'GET', '/vod/nope/master.m3u8')).toBe(true);
    expect(await mounted(srv, 'POST', '/whip')).toBe(false);
    expect(await mounted(srv, 'GET', '/publish')).toBe(false);
    expect(srv.rtmpPort).toBe(0);
    expect(srv.webrtc).toBeUndefined();
  });

  it('says so in /healthz and /metrics, without ingest figures', async () => {
    const h = await health(srv);
    expect(h.status).toBe(200);
    expect(h.json).toEqual({
      status: 'ok',
      roles: ['origin'],
      liveStreams: 0,
      catalog: 'pglite',
      dependencies: { catalog: 'ok', redis: 'in-process', storage: 'ok' },
    });
    expect((await health(srv, '/readyz')).status).toBe(200);
    const m = await metrics(srv);
    expect(m).toContain('livepack_node_role{role="origin"} 1');
    expect(m).toContain('livepack_node_role{role="ingest"} 0');
    expect(m).toContain('livepack_node_role{role="worker"} 0');
    expect(m).toContain('livepack_dependency_up{dependency="catalog"} 1');
    expect(m).toContain('livepack_dependency_up{dependency="storage"} 1');
    expect(m).not.toContain('livepack_dependency_up{dependency="redis"}');
    expect(m).not.toContain('livepack_hls_parts_total');
    expect(m).not.toContain('livepack_vod_jobs_ready_total');
  });
});

describe('NODE_ROLES=ingest', () => {
  let srv: TestServer;
  let publisher: ReturnType<typeof ffmpegPublish> | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-ingest-'));
  const streamKey = newStreamKey();

  beforeAll(async () => {
    // An ingest node has no API: the stream is made in its catalog beforehand (another node's API would).
    const catalog = await openCatalog({ dataDir, logger: silentLogger, databaseUrl: undefined });
    await catalog.createStream({ name: 'ingested', profile: 'passthrough', keyHash: hashSecret(streamKey) });
    await catalog.close();
    srv = await startTestServer({ NODE_ROLES: 'ingest', DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await kill(publisher);
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('takes an RTMP publisher and mounts WHIP, health and metrics, not the API, the player or playback', async () => {
    expect(srv.rtmpPort).toBeGreaterThan(0);
    publisher = ffmpegPublish(srv.rtmpUrl(streamKey));
    await until(async () => (await health(srv)).json.liveStreams === 1, 15_000, 100);
    // WHIP is mounted: an offer without a key is refused by the route, not missing.
    expect(await mounted(srv, 'POST', '/whip')).toBe(true);
    for (const [method, path] of [
      ['GET', '/api/v1/streams'],
      ['GET', '/watch/abc'],
      ['GET', '/live/abc/master.m3u8'],
      ['GET', '/vod/abc/master.m3u8'],
    ])
      expect(await mounted(srv, method, path), `${method} ${path}`).toBe(false);
  });

  it('says so in /healthz and /metrics, with its ingest figures', async () => {
    const h = await health(srv);
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: 'ok', roles: ['ingest'], dependencies: { catalog: 'ok', redis: 'in-process' } });
    const m = await metrics(srv);
    expect(m).toContain('livepack_node_role{role="ingest"} 1');
    expect(m).toContain('livepack_node_role{role="origin"} 0');
    expect(m).toContain('livepack_live_streams 1');
    expect(m).toContain('livepack_hls_parts_total');
  });
});

describe('with REDIS_URL', () => {
  it('is refused on node-local files unless STORAGE_SHARED says they are shared', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'livepack-shared-'));
    await expect(startTestServer({ REDIS_URL: REDIS, DATA_DIR: dataDir })).rejects.toThrow(/STORAGE_SHARED=true/);
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('the machine’s Redis', () => {
    let srv: TestServer;
    const prefix = `livepack-test:${randomUUID().slice(0, 8)}:`;
    beforeAll(async () => {
      srv = await startTestServer({ REDIS_URL: REDIS, REDIS_PREFIX: prefix, STORAGE_SHARED: 'true' });
    });
    afterAll(async () => {
      await srv?.stop();
      await deleteKeysWithPrefix(REDIS, prefix);
    });

    it('registers the node under its prefix and reports Redis ok', async () => {
      await until(async () => (await keysWithPrefix(REDIS, prefix)).length > 0, 5000, 50);
      const h = await health(srv);
      expect(h.status).toBe(200);
      expect(h.json).toMatchObject({ status: 'ok', roles: ['ingest', 'origin', 'worker'], dependencies: { catalog: 'ok', redis: 'ok' } });
      expect((await health(srv, '/readyz')).status).toBe(200);
      expect(await metrics(srv)).toContain('livepack_dependency_up{dependency="redis"} 1');
    });
  });

  describe('a Redis that does not answer', () => {
    let srv: TestServer;
    let publisher: ReturnType<typeof ffmpegPublish> | undefined;
    beforeAll(async () => {
      // A port nothing listens on: connections are refused, and the client keeps retrying in the background.
      srv = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${await freePort()}`, STORAGE_SHARED: 'true' });
    });
    afterAll(async () => {
      await kill(publisher);
      await srv?.stop();
    });

    it('starts, reports Redis down (healthz 200 degraded, readyz 503, metrics 0)', async () => {
      const h = await health(srv);
      expect(h.status).toBe(200);
      expect(h.json).toMatchObject({ status: 'degraded', dependencies: { catalog: 'ok', redis: 'down' } });
      const ready = await health(srv, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.json).toMatchObject({ status: 'degraded' });
      const m = await metrics(srv);
      expect(m).toContain('livepack_dependency_up{dependency="redis"} 0');
      expect(m).toContain('livepack_dependency_up{dependency="catalog"} 1');
    });

    it('still takes its publishers and serves their streams', async () => {
      const s = (await srv.api('POST', '/api/v1/streams', { name: 'no redis', profile: 'passthrough' })).json;
      publisher = ffmpegPublish(srv.rtmpUrl(s.streamKey));
      await until(async () => (await fetch(`${srv.base}/live/${s.id}/master.m3u8`)).status === 200, 20_000, 200);
      const media = await fetch(`${srv.base}/live/${s.id}/source/index.m3u8`);
      expect(media.status).toBe(200);
      expect(await media.text()).toContain('#EXTINF:');
    });
  });
});
