/**
 * A Redis outage mid-stream (issue 14, "Redis outage"): a redis-server of the test's own on a free loopback
 * port (no persistence), two nodes on it, one PostgreSQL catalog (a database of the test's own, dropped
 * after) and one DATA_DIR (STORAGE_SHARED=true), each with its own NODE_ID and the same API_TOKEN:
 *   A: NODE_ROLES=ingest,origin, takes the FFmpeg publisher;
 *   B: NODE_ROLES=origin, serves A's stream from Redis.
 * Redis is SIGKILLed for 10 s while A ingests. During it A's playlist keeps advancing with no 5xx and A's
 * /healthz says Redis is down, while B answers the stream with 503 and Retry-After. Redis then comes back on
 * the same port, empty; without restarting A or B, B serves the stream again within a bound (the measured
 * recovery time is printed), advancing and byte-identical to A for the same blocking request, and every file
 * its playlist lists. The run's recording, once the publisher stopped cleanly, has no hole across the outage.
 *
 * Before the outage only B's playlists are fetched, never a file: B's LRU of immutable files would otherwise
 * answer for files the fresh Redis no longer has.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createDatabase, dropDatabase } from '../../harness/postgres.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startRedisServer, type RedisServer } from '../../harness/redis.js';
import { PG_URL, skipPostgres } from '../helpers/catalog.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

const DB = `livepack_outage_${randomBytes(5).toString('hex')}`;
const PREFIX = `livepack-outage-${randomBytes(3).toString('hex')}:`;
const API_TOKEN = randomBytes(24).toString('base64url');
const OUTAGE_MS = 10_000;
/** How long after Redis is back B must serve the stream again. */
const RECOVERY_BOUND_MS = 20_000;
const POLL_MS = 500;

type Publisher = ReturnType<typeof ffmpegPublish>;

interface Answer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly cacheControl: string | null;
  readonly contentType: string | null;
  readonly body: Buffer;
  readonly text: string;
  /** performance.now() once the whole body was read. */
  readonly at: number;
}

async function get(srv: TestServer, path: string): Promise<Answer> {
  const res = await fetch(srv.base + path);
  const body = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    cacheControl: res.headers.get('cache-control'),
    contentType: res.headers.get('content-type'),
    body,
    text: body.toString('utf8'),
    at: performance.now(),
  };
}

/** The last part a media playlist lists, as one growing number (msn * 1000 + part index). */
function lastPart(text: string): number {
  const l = parseMediaPlaylist(text);
  const last = l.parts.at(-1);
  if (!last) return -1;
  return last.msn * 1000 + l.parts.filter((p) => p.msn === last.msn).length - 1;
}

/** The query of the next part after the last one a playlist lists (not there yet when asked). */
function nextPartQuery(text: string): string {
  const list = parseMediaPlaylist(text);
  const last = list.parts.at(-1)!;
  return `?_HLS_msn=${last.msn}&_HLS_part=${list.parts.filter((p) => p.msn === last.msn).length}`;
}

/**
 * A's and B's multivariant playlists, asked until they agree (at most 10 tries, 200 ms apart): its
 * AVERAGE-BANDWIDTH changes with every segment, and B reads the stream document again only when its copy is
 * a second old. Returns both last answers and the number of tries.
 */
async function sameMaster(a: TestServer, b: TestServer, streamId: string): Promise<{ a: Answer; b: Answer; tries: number }> {
  for (let tries = 1; ; tries++) {
    const [ma, mb] = await Promise.all([get(a, `/live/${streamId}/master.m3u8`), get(b, `/live/${streamId}/master.m3u8`)]);
    if ((ma.status === mb.status && ma.text === mb.text) || tries === 10) return { a: ma, b: mb, tries };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `<run>s<session>` and msn of a segment file name (as LiveRendition names them: `<run>s<session>_<msn>.m4s`). */
function segmentName(uri: string): { prefix: string; msn: number } {
  const m = /^(.+)_(\d+)\.m4s$/.exec(uri);
  if (!m) throw new Error(`not a segment name: ${uri}`);
  return { prefix: m[1], msn: Number(m[2]) };
}

/** Consecutive answers with the same status, Retry-After and first body line, as "from-to ms: what (n)". */
function runs(samples: { t: number; status: number; retryAfter: string | null; body: string }[]): string[] {
  const out: { from: number; to: number; what: string; n: number }[] = [];
  for (const s of samples) {
    const what = `${s.status}${s.retryAfter !== null ? ` retry-after=${s.retryAfter}` : ''} ${s.body.split('\n')[0].slice(0, 80)}`;
    const last = out.at(-1);
    if (last && last.what === what) {
      last.to = s.t;
      last.n++;
    } else out.push({ from: s.t, to: s.t, what, n: 1 });
  }
  return out.map((r) => `${r.from}..${r.to} ms: ${r.what} (${r.n})`);
}

describe.skipIf(skipPostgres)('a Redis outage mid-stream', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-outage-'));
  let redis: RedisServer | undefined;
  let a: TestServer | undefined;
  let b: TestServer | undefined;
  let pub: Publisher | undefined;
  let dbCreated = false;

  let streamId = '';
  let liveVideoId = '';
  let media = '';
  let dir = '';
  let publishedAt = 0;
  /** Date.now() when Redis was killed and when it answered again. */
  let killedAtWall = 0;
  let backAtWall = 0;
  let backAt = 0;

  beforeAll(async () => {
    redis = await startRedisServer();
    const dbUrl = await createDatabase(PG_URL, DB);
    dbCreated = true;
    const env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: PREFIX,
      DATABASE_URL: dbUrl,
      DATA_DIR: dataDir,
      STORAGE_SHARED: 'true',
      API_TOKEN,
      WEBRTC_ENABLED: 'false',
      HLS_SEGMENT_TARGET_MS: '1000',
      HLS_WINDOW_SECONDS: '12',
      HLS_ENDED_RETENTION_MS: '1500',
      LIVE_THUMBNAIL_INTERVAL_MS: '0',
    };
    // A first: it runs the catalog's migrations; B finds them done.
    a = await startTestServer({ ...env, NODE_ROLES: 'ingest,origin', NODE_ID: 'outage-a' });
    b = await startTestServer({ ...env, NODE_ROLES: 'origin', NODE_ID: 'outage-b' });
  }, 60_000);

  afterAll(async () => {
    await kill(pub);
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await redis?.dispose();
    if (dbCreated) await dropDatabase(PG_URL, DB);
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('B serves the stream A ingests (its playlists only)', async () => {
    expect(a!.apiToken).toBe(API_TOKEN);
    expect(b!.apiToken).toBe(API_TOKEN);
    const { status, json: stream } = await a!.api('POST', '/api/v1/streams', { name: 'outage', profile: 'passthrough' });
    expect(status).toBe(201);
    streamId = stream.id;
    publishedAt = Date.now();
    pub = ffmpegPublish(a!.rtmpUrl(stream.streamKey), { size: '426x240', fps: 30, gop: 30 });
    const live = await until(async () => (await a!.api('GET', `/api/v1/videos?streamId=${streamId}&type=live`)).json.items[0], 15_000);
    liveVideoId = live.id;

    const masterA = await until(async () => {
      const r = await get(a!, `/live/${streamId}/master.m3u8`);
      return r.status === 200 ? r : undefined;
    }, 20_000);
    media = `/live/${streamId}/${masterA.text.split('\n').find((l) => l.length > 0 && !l.startsWith('#'))!}`;
    dir = media.slice(0, media.lastIndexOf('/') + 1);
    // B has it once A's window is in Redis: a few segments, so the playlist has parts.
    await until(async () => parseMediaPlaylist((await get(b!, media)).text).segments.length >= 3, 30_000, 200);
    const masters = await sameMaster(a!, b!, streamId);
    console.log(`[cluster-outage] before the outage: B's multivariant playlist is A's on try ${masters.tries}`);
    expect(masters.b.status).toBe(200);
    expect(masters.b.text).toBe(masters.a.text);
    expect((await get(b!, media)).status).toBe(200);
    const h = await (await fetch(`${a!.base}/healthz`)).json();
    expect(h).toMatchObject({ status: 'ok', dependencies: { catalog: 'ok', redis: 'ok' } });
  }, 60_000);

  it('during a 10 s outage A keeps publishing and serving, says Redis is down; B answers 503 with Retry-After', async () => {
    expect(media).not.toBe('');
    const samplesA: { t: number; status: number; last: number; nextMsn: number }[] = [];
    const samplesB: { t: number; status: number; retryAfter: string | null; body: string }[] = [];
    const masterB: { t: number; status: number; retryAfter: string | null; body: string }[] = [];
    const healthA: { t: number; status: number; redis: string; state: string }[] = [];
    const killed = performance.now();
    let polling = true;
    const poll = async (fn: () => Promise<void>) => {
      while (polling) {
        const next = performance.now() + POLL_MS;
        await fn();
        await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
      }
    };
    const t = () => Math.round(performance.now() - killed);
    killedAtWall = Date.now();
    await redis!.stop();
    const pollers = Promise.all([
      poll(async () => {
        const r = await get(a!, media);
        samplesA.push({
          t: t(),
          status: r.status,
          last: r.status === 200 ? lastPart(r.text) : -1,
          nextMsn: parseMediaPlaylist(r.text).nextMsn,
        });
      }),
      poll(async () => {
        const r = await get(b!, media);
        samplesB.push({ t: t(), status: r.status, retryAfter: r.retryAfter, body: r.text });
      }),
      poll(async () => {
        const r = await get(b!, `/live/${streamId}/master.m3u8`);
        masterB.push({ t: t(), status: r.status, retryAfter: r.retryAfter, body: r.text });
      }),
      poll(async () => {
        const res = await fetch(`${a!.base}/healthz`);
        const j = (await res.json()) as { status: string; dependencies: { redis: string } };
        healthA.push({ t: t(), status: res.status, redis: j.dependencies.redis, state: j.status });
      }),
    ]);
    await new Promise((r) => setTimeout(r, OUTAGE_MS - (performance.now() - killed)));
    polling = false;
    await pollers;
    console.log(`[cluster-outage] B's media playlist during the outage:\n  ${runs(samplesB).join('\n  ')}`);
    console.log(`[cluster-outage] B's multivariant playlist during the outage:\n  ${runs(masterB).join('\n  ')}`);
    console.log(
      `[cluster-outage] A during the outage: ${samplesA.length} polls, statuses ${[...new Set(samplesA.map((s) => s.status))].join(',')}, ` +
        `last part ${samplesA[0]?.last} -> ${samplesA.at(-1)?.last}, next msn ${samplesA[0]?.nextMsn} -> ${samplesA.at(-1)?.nextMsn}; ` +
        `healthz ${[...new Set(healthA.map((h) => `${h.status} ${h.state} redis=${h.redis}`))].join(' | ')}`,
    );
    expect(pub!.exitCode).toBeNull();

    // A: every answer 200, the last part never goes back and keeps growing (no stall longer than ~2 s).
    expect(samplesA.length).toBeGreaterThanOrEqual(15);
    expect(samplesA.filter((s) => s.status !== 200)).toEqual([]);
    let stalled = 0;
    for (let i = 1; i < samplesA.length; i++) {
      expect(samplesA[i].last).toBeGreaterThanOrEqual(samplesA[i - 1].last);
      stalled = samplesA[i].last === samplesA[i - 1].last ? stalled + 1 : 0;
      expect(stalled, `A's playlist stalled at ${samplesA[i].t} ms`).toBeLessThan(4);
    }
    expect(samplesA.at(-1)!.nextMsn - samplesA[0].nextMsn).toBeGreaterThanOrEqual(7);

    // A's /healthz: 200 (it still serves), degraded with Redis down, once the probe noticed (within ~2 s).
    const laterHealth = healthA.filter((h) => h.t > 2000);
    expect(laterHealth.length).toBeGreaterThan(5);
    for (const h of laterHealth) expect(h).toMatchObject({ status: 200, state: 'degraded', redis: 'down' });

    // B: 503 with Retry-After once it noticed (what it answered from memory before is printed above).
    const laterB = samplesB.filter((s) => s.t > 2000);
    expect(laterB.length).toBeGreaterThan(5);
    for (const s of laterB) {
      expect(s.status, `B at ${s.t} ms: ${s.body}`).toBe(503);
      expect(Number(s.retryAfter), `B's Retry-After at ${s.t} ms`).toBeGreaterThan(0);
    }
    for (const s of masterB.filter((m) => m.t > 2000)) {
      expect(s.status, `B's master at ${s.t} ms: ${s.body}`).toBe(503);
      expect(Number(s.retryAfter)).toBeGreaterThan(0);
    }
  }, 30_000);

  it(
    'Redis back (empty): B serves the stream again within the bound, advancing and byte-identical to A',
    async () => {
      expect(killedAtWall).toBeGreaterThan(0);
      await redis!.start();
      backAt = performance.now();
      backAtWall = Date.now();
      const samplesB: { t: number; status: number; retryAfter: string | null; body: string }[] = [];
      const t = () => Math.round(performance.now() - backAt);
      // Recovered: B's media playlist is 200 with parts, and B's answer to the next blocking request is A's.
      let recoveredAt: number | undefined;
      let identicalRounds = 0;
      let lastMismatch = '';
      while (performance.now() - backAt < RECOVERY_BOUND_MS) {
        const plain = await get(b!, media);
        samplesB.push({ t: t(), status: plain.status, retryAfter: plain.retryAfter, body: plain.text });
        if (plain.status !== 200 || parseMediaPlaylist(plain.text).parts.length === 0) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const q = nextPartQuery((await get(a!, media)).text);
        const [ha, hb] = await Promise.all([get(a!, media + q), get(b!, media + q)]);
        samplesB.push({ t: t(), status: hb.status, retryAfter: hb.retryAfter, body: `blocking ${q}: ${hb.text}` });
        if (ha.status === 200 && hb.status === 200 && ha.text === hb.text) {
          recoveredAt ??= performance.now() - backAt;
          if (++identicalRounds >= 5) break;
        } else {
          identicalRounds = 0;
          recoveredAt = undefined;
          lastMismatch = `A ${ha.status}:\n${ha.text}\nB ${hb.status}:\n${hb.text}`;
        }
      }
      console.log(`[cluster-outage] B after Redis returned:\n  ${runs(samplesB).join('\n  ')}`);
      console.log(
        `[cluster-outage] recovery: B serves the stream byte-identical to A ${recoveredAt === undefined ? `not within ${RECOVERY_BOUND_MS} ms` : `${recoveredAt.toFixed(0)} ms`} after Redis answered again`,
      );
      expect(recoveredAt, `B did not recover within ${RECOVERY_BOUND_MS} ms; last mismatch:\n${lastMismatch}`).toBeDefined();
      expect(identicalRounds).toBeGreaterThanOrEqual(5);

      // B's playlist advances (it follows A's window, not a copy from before the outage).
      const before = parseMediaPlaylist((await get(b!, media)).text).nextMsn;
      await until(async () => parseMediaPlaylist((await get(b!, media)).text).nextMsn > before, 5000, 100);
      const masters = await sameMaster(a!, b!, streamId);
      console.log(`[cluster-outage] after recovery: B's multivariant playlist is A's on try ${masters.tries}`);
      expect(masters.b.status).toBe(200);
      expect(masters.b.text).toBe(masters.a.text);
      // A is healthy again and holds the stream's lease again in the fresh Redis.
      const h = await (await fetch(`${a!.base}/healthz`)).json();
      expect(h).toMatchObject({ status: 'ok', dependencies: { redis: 'ok' } });
      const client = new Redis(redis!.url);
      try {
        const lease = await until(async () => (await client.get(`${PREFIX}{${streamId}}:lease`)) ?? undefined, 10_000, 100);
        expect(lease).toMatch(/^\d+:outage-a$/);
      } finally {
        client.disconnect();
      }
      expect(pub!.exitCode).toBeNull();
    },
    RECOVERY_BOUND_MS + 15_000,
  );

  /** Every file B's playlist lists (inits, segments, parts) that B does not serve as A does. */
  async function filesNotServedLikeA(when: string): Promise<string[]> {
    const list = parseMediaPlaylist((await get(b!, media)).text);
    const files = [...new Set([...list.segments.map((s) => s.map!), ...list.segments.map((s) => s.uri), ...list.parts.map((p) => p.uri)])];
    const bad: string[] = [];
    for (const uri of files) {
      const [fa, fb] = await Promise.all([get(a!, dir + uri), get(b!, dir + uri)]);
      if (fa.status !== 200) continue; // rolled out of A's window meanwhile
      if (fb.status !== 200 || !fb.body.equals(fa.body) || fb.cacheControl !== fa.cacheControl || fb.contentType !== fa.contentType) {
        bad.push(
          `${uri}: A ${fa.status} (${fa.body.length} B), B ${fb.status} (${fb.body.length} B) ${fb.status !== 200 ? fb.text.trim() : ''}`,
        );
      }
    }
    const segs = list.segments.map((s) => `${s.uri}${s.pdt ? ` @${((Date.parse(s.pdt) - killedAtWall) / 1000).toFixed(1)}s` : ''}`);
    console.log(
      `[cluster-outage] ${when} (${(performance.now() - backAt).toFixed(0)} ms after Redis returned): B lists ${files.length} files ` +
        `(segments, PDT relative to the kill: ${segs.join(', ')}); not served like A: ${bad.length}${bad.length ? `\n  ${bad.join('\n  ')}` : ''}`,
    );
    return bad;
  }

  it('right after recovery B serves every file its playlist lists, byte-identical to A', async () => {
    expect(backAt).toBeGreaterThan(0);
    expect(await filesNotServedLikeA('right after recovery')).toEqual([]);
  }, 20_000);

  it('once B lists only segments made after Redis returned, B serves every file it lists (its init too)', async () => {
    expect(backAt).toBeGreaterThan(0);
    // The window turns over: the first segment B lists began after Redis answered again.
    await until(
      async () => {
        const first = parseMediaPlaylist((await get(b!, media)).text).segments[0];
        return first?.pdt !== undefined && Date.parse(first.pdt) > backAtWall;
      },
      25_000,
      250,
    );
    expect(await filesNotServedLikeA('once the window turned over')).toEqual([]);
  }, 40_000);

  it('the recording has no hole across the outage', async () => {
    expect(backAtWall).toBeGreaterThan(0);
    // SIGINT: FFmpeg closes its output, which unpublishes (FCUnpublish + deleteStream): the run ends at once.
    pub!.kill('SIGINT');
    await waitExit(pub!, 10_000);
    const publishedMs = Date.now() - publishedAt;
    const video = await until(
      async () => {
        const { json } = await a!.api('GET', `/api/v1/videos?streamId=${streamId}&type=vod`);
        const v = json.items[0];
        return v?.status === 'ready' ? v : undefined;
      },
      20_000,
      100,
    );
    expect(video.id).toBe(liveVideoId);
    const res = await get(a!, `/vod/${video.id}/source/index.m3u8`);
    expect(res.status).toBe(200);
    const vod = parseMediaPlaylist(res.text);
    expect(vod.ended).toBe(true);
    expect(res.text).not.toContain('#EXT-X-GAP');
    expect(vod.segments.length).toBeGreaterThan(10);
    // One session: one run/session prefix, no discontinuity, consecutive segment numbers.
    const names = vod.segments.map((s) => segmentName(s.uri));
    expect(new Set(names.map((n) => n.prefix)).size).toBe(1);
    expect(vod.segments.filter((s, i) => i > 0 && s.discontinuity)).toEqual([]);
    const missing: string[] = [];
    for (let i = 1; i < names.length; i++) if (names[i].msn !== names[i - 1].msn + 1) missing.push(`${names[i - 1].msn}->${names[i].msn}`);
    expect(missing).toEqual([]);
    // Wall-clock continuity: each segment starts where the one before ended.
    const pdts = vod.segments.map((s) => Date.parse(s.pdt!));
    const jumps: string[] = [];
    for (let i = 1; i < pdts.length; i++) {
      const gap = pdts[i] - (pdts[i - 1] + vod.segments[i - 1].duration * 1000);
      if (Math.abs(gap) > 250) jumps.push(`${vod.segments[i].uri}: ${gap.toFixed(0)} ms`);
    }
    expect(jumps).toEqual([]);
    // It covers the outage, and the publish time within a couple of seconds.
    const first = pdts[0];
    const end = pdts.at(-1)! + vod.segments.at(-1)!.duration * 1000;
    expect(first).toBeLessThan(killedAtWall);
    expect(end).toBeGreaterThan(backAtWall);
    const total = vod.segments.reduce((s, x) => s + x.duration, 0);
    console.log(
      `[cluster-outage] recording: ${vod.segments.length} segments, ${total.toFixed(2)} s (video.duration ${video.duration} s) for ` +
        `${(publishedMs / 1000).toFixed(2)} s of publishing; covers ${((first - killedAtWall) / 1000).toFixed(1)} s .. ` +
        `+${((end - killedAtWall) / 1000).toFixed(1)} s around the kill (Redis back at +${((backAtWall - killedAtWall) / 1000).toFixed(1)} s)`,
    );
    expect(Math.abs(video.duration - total)).toBeLessThan(0.5);
    expect(Math.abs(video.duration - publishedMs / 1000)).toBeLessThan(2.5);
  }, 40_000);
});
