/**
 * Several nodes as startServer builds them, sharing the machine's Redis (127.0.0.1:6379, a prefix of their
 * own, its keys deleted after), one PostgreSQL catalog (a database of the test's own, dropped after) and one
 * DATA_DIR (STORAGE_SHARED=true), each with its own NODE_ID:
 *   A: NODE_ROLES=ingest,origin, takes the publisher;
 *   B: NODE_ROLES=origin, serves A's streams from Redis;
 *   C: NODE_ROLES=ingest, a second publisher of the same key takes the stream over from A.
 * B answers every URL of a stream A ingests byte-identically (status, body, cache-control, content-type),
 * and the delay B adds to a held blocking reload is printed. A clean stop ends B's playlist and, after the
 * ended retention, leaves no key of the stream in Redis. A newer publisher on C leaves one owner, and B
 * follows it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createDatabase, dropDatabase } from '../../harness/postgres.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { deleteKeysWithPrefix, keysWithPrefix } from '../../harness/redis.js';
import { PG_URL, skipPostgres } from '../helpers/catalog.js';
import { parseMediaPlaylist, startTestServer, until, type TestServer } from '../helpers/server.js';

const REDIS = 'redis://127.0.0.1:6379';
const PREFIX = `livepack-test:${randomUUID().slice(0, 8)}:`;
const DB = `livepack_cluster_${randomBytes(5).toString('hex')}`;
const ENDED_RETENTION_MS = 1500;
/** Headers a CDN and a player act on: they must be the same whichever origin answers. */
const HEADERS = ['cache-control', 'content-type'] as const;

type Publisher = ReturnType<typeof ffmpegPublish>;

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | null>;
  readonly body: Buffer;
  readonly text: string;
  /** performance.now() once the whole body was read. */
  readonly at: number;
}

async function get(srv: TestServer, path: string): Promise<Answer> {
  const res = await fetch(srv.base + path);
  const body = Buffer.from(await res.arrayBuffer());
  const at = performance.now();
  const headers: Record<string, string | null> = {};
  for (const h of [...HEADERS, 'access-control-allow-origin']) headers[h] = res.headers.get(h);
  return { status: res.status, headers, body, text: body.toString('utf8'), at };
}

/** B's answer is A's: status, the headers that matter, and every byte of the body. */
function expectSame(b: Answer, a: Answer, what: string): void {
  expect(b.status, `${what}: status`).toBe(a.status);
  for (const h of HEADERS) expect(b.headers[h], `${what}: ${h}`).toBe(a.headers[h]);
  if (a.headers['content-type']?.includes('mpegurl')) expect(b.text, `${what}: body`).toBe(a.text);
  else expect(b.body.equals(a.body), `${what}: body (${b.body.length} vs ${a.body.length} bytes)`).toBe(true);
}

const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (xs: number[]) =>
  `p50 ${pct(xs, 50).toFixed(1)} ms, p95 ${pct(xs, 95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;

/** `<run>s<session>` of a media file name (as LiveRendition names them). */
const filePrefix = (uri: string) => uri.slice(0, uri.lastIndexOf('_'));

/** The query of the next part after the last one a playlist lists (not there yet when asked). */
function nextPartQuery(text: string): { _HLS_msn: string; _HLS_part: string } {
  const list = parseMediaPlaylist(text);
  const last = list.parts.at(-1)!;
  return { _HLS_msn: String(last.msn), _HLS_part: String(list.parts.filter((p) => p.msn === last.msn).length) };
}

const qs = (q: Record<string, string>) => '?' + new URLSearchParams(q).toString();

const streamKeys = async (streamId: string) => (await keysWithPrefix(REDIS, PREFIX)).filter((k) => k.includes(`{${streamId}}`));

describe.skipIf(skipPostgres)('a cluster of nodes on Redis and PostgreSQL', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-cluster-'));
  let a: TestServer | undefined;
  let b: TestServer | undefined;
  let c: TestServer | undefined;
  const publishers: Publisher[] = [];
  const publish = (srv: TestServer, key: string) => {
    // 30 fps, a keyframe every 30 frames (1 s GOP), in real time (-re).
    const p = ffmpegPublish(srv.rtmpUrl(key), { size: '426x240', fps: 30, gop: 30 });
    publishers.push(p);
    return p;
  };

  beforeAll(async () => {
    // A database of the test's own (the test server's role may create databases).
    const dbUrl = await createDatabase(PG_URL, DB);
    const env = {
      REDIS_URL: REDIS,
      REDIS_PREFIX: PREFIX,
      DATABASE_URL: dbUrl,
      DATA_DIR: dataDir,
      STORAGE_SHARED: 'true',
      WEBRTC_ENABLED: 'false',
      HLS_SEGMENT_TARGET_MS: '1000',
      HLS_WINDOW_SECONDS: '12',
      HLS_ENDED_RETENTION_MS: String(ENDED_RETENTION_MS),
      LIVE_THUMBNAIL_INTERVAL_MS: '0',
    };
    // A first: it runs the catalog's migrations; the others find them done.
    a = await startTestServer({ ...env, NODE_ROLES: 'ingest,origin', NODE_ID: 'node-a' });
    [b, c] = await Promise.all([
      startTestServer({ ...env, NODE_ROLES: 'origin', NODE_ID: 'node-b' }),
      startTestServer({ ...env, NODE_ROLES: 'ingest', NODE_ID: 'node-c' }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(publishers.map((p) => kill(p)));
    await Promise.allSettled([a?.stop(), b?.stop(), c?.stop()]);
    await deleteKeysWithPrefix(REDIS, PREFIX);
    await dropDatabase(PG_URL, DB);
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  describe('B serves what A ingests', () => {
    let streamId = '';
    let media = '';
    let pub: Publisher;

    it('every URL of the stream, byte-identical to A, with the held reload a little behind A', async () => {
      const { status, json: stream } = await a!.api('POST', '/api/v1/streams', { name: 'cross-node', profile: 'passthrough' });
      expect(status).toBe(201);
      streamId = stream.id;
      const live = `/live/${streamId}`;
      pub = publish(a!, stream.streamKey);

      // B has the stream once A's window is in Redis: a few segments, so the playlist has parts and a hint.
      await until(async () => parseMediaPlaylist((await get(b!, `${live}/source/index.m3u8`)).text).segments.length >= 3, 30_000, 200);

      const masterA = await get(a!, `${live}/master.m3u8`);
      const masterB = await get(b!, `${live}/master.m3u8`);
      expect(masterA.status).toBe(200);
      expectSame(masterB, masterA, 'master.m3u8');
      const mediaUri = masterA.text.split('\n').find((l) => l.length > 0 && !l.startsWith('#'))!;
      media = `${live}/${mediaUri}`;
      const dir = media.slice(0, media.lastIndexOf('/') + 1);

      // Inits, parts and segments are immutable: whatever A lists, B serves the same bytes.
      const list = parseMediaPlaylist((await get(a!, media)).text);
      const files = {
        init: list.segments.at(-1)!.map!,
        part: list.parts[0].uri,
        segment: list.segments.at(-1)!.uri,
      };
      for (const [what, uri] of Object.entries(files)) {
        const [fa, fb] = await Promise.all([get(a!, dir + uri), get(b!, dir + uri)]);
        expect(fa.status, what).toBe(200);
        expect(fa.body.length, what).toBeGreaterThan(0);
        expectSame(fb, fa, `${what} ${uri}`);
      }

      // Held requests: the same next part asked of A and B at once. Both answer once the part exists, with
      // the same playlist; B later than A by what Redis adds. Same for the preload-hinted part.
      const delays: number[] = [];
      const hintDelays: number[] = [];
      for (let round = 0; round < 22; round++) {
        const text = (await get(a!, media)).text;
        const q = nextPartQuery(text);
        const hint = parseMediaPlaylist(text).hint!;
        expect(hint).toBeDefined();
        const [ha, hb, pa, pb] = await Promise.all([
          get(a!, media + qs(q)),
          get(b!, media + qs(q)),
          get(a!, dir + hint),
          get(b!, dir + hint),
        ]);
        expect(ha.status).toBe(200);
        // It was not there when asked: A's answer lists it.
        const got = parseMediaPlaylist(ha.text);
        expect(got.nextMsn > Number(q._HLS_msn) || got.parts.filter((p) => p.msn === Number(q._HLS_msn)).length > Number(q._HLS_part)).toBe(
          true,
        );
        expectSame(hb, ha, `blocking ${qs(q)} (round ${round})`);
        expect(pa.status, `hint ${hint}`).toBe(200);
        expectSame(pb, pa, `preload hint ${hint} (round ${round})`);
        // The first rounds subscribe B and fill its cache.
        if (round < 2) continue;
        delays.push(hb.at - ha.at);
        hintDelays.push(pb.at - pa.at);
      }
      console.log(`[cluster-nodes] B after A, held blocking reload: ${fmt(delays)}`);
      console.log(`[cluster-nodes] B after A, preload-hinted part: ${fmt(hintDelays)}`);
      // Loosely (the issue's target is 50 ms at p95), so a loaded 2-core machine does not fail it.
      expect(pct(delays, 95)).toBeLessThan(250);
      expect(pct(hintDelays, 95)).toBeLessThan(250);

      // The playlist plain and as a delta update: wait for a window long enough to skip segments, then ask
      // both right after a part (the playlist is still for ~a part's duration); a part between the two
      // answers is retried.
      await until(async () => (await get(a!, `${media}?_HLS_skip=YES`)).text.includes('#EXT-X-SKIP:'), 20_000, 250);
      for (const query of ['', '?_HLS_skip=YES']) {
        let tries = 0;
        for (;;) {
          tries++;
          const q = nextPartQuery((await get(a!, media)).text);
          await Promise.all([get(a!, media + qs(q)), get(b!, media + qs(q))]);
          const [pa, pb] = await Promise.all([get(a!, media + query), get(b!, media + query)]);
          if (pa.text === pb.text || tries === 5) {
            expect(pa.status).toBe(200);
            if (query) expect(pa.text).toContain('#EXT-X-SKIP:SKIPPED-SEGMENTS=');
            expectSame(pb, pa, `media playlist${query}`);
            break;
          }
        }
        console.log(`[cluster-nodes] media playlist${query || ' (plain)'}: identical on try ${tries}`);
      }
    }, 70_000);

    it('a clean stop ends B’s playlist like A’s; after the retention B answers 404 and no key of the stream is left', async () => {
      expect(streamId).not.toBe('');
      // SIGINT: FFmpeg closes its output, which unpublishes (FCUnpublish + deleteStream).
      const stopped = performance.now();
      pub.kill('SIGINT');
      await waitExit(pub, 10_000);
      const endA = await until(
        async () => {
          const r = await get(a!, media);
          return r.text.includes('#EXT-X-ENDLIST') ? r : undefined;
        },
        5000,
        50,
      );
      const endB = await until(
        async () => {
          const r = await get(b!, media);
          return r.text.includes('#EXT-X-ENDLIST') ? r : undefined;
        },
        5000,
        20,
      );
      expect(endB.text).not.toContain('#EXT-X-PRELOAD-HINT');
      expectSame(endB, endA, 'ended media playlist');
      console.log(
        `[cluster-nodes] ENDLIST on A ${(endA.at - stopped).toFixed(0)} ms, on B ${(endB.at - stopped).toFixed(0)} ms after SIGINT`,
      );

      const gone = await until(
        async () => {
          const r = await get(b!, `/live/${streamId}/master.m3u8`);
          return r.status === 404 ? r : undefined;
        },
        ENDED_RETENTION_MS + 8000,
        100,
      );
      expect(gone.text).toBe('stream is not live\n');
      expect((await get(b!, media)).status).toBe(404);
      console.log(`[cluster-nodes] B answers 404 ${(gone.at - stopped).toFixed(0)} ms after SIGINT`);
      const left = await until(async () => ((await streamKeys(streamId)).length === 0 ? [] : undefined), 5000, 100).catch(() =>
        streamKeys(streamId),
      );
      expect(left).toEqual([]);
    }, 30_000);
  });

  describe('ownership: a newer publisher of the same key on C', () => {
    it('leaves exactly one owner, the newer; A lets its publisher go and B serves C’s window', async () => {
      const { json: stream } = await a!.api('POST', '/api/v1/streams', { name: 'takeover', profile: 'passthrough' });
      const id = stream.id as string;
      const media = `/live/${id}/source/index.m3u8`;
      const onA = publish(a!, stream.streamKey);
      await until(async () => parseMediaPlaylist((await get(b!, media)).text).segments.length >= 2, 30_000, 200);
      const before = parseMediaPlaylist((await get(b!, media)).text);
      const prefixA = filePrefix(before.segments.at(-1)!.uri);
      expect((await a!.api('GET', `/api/v1/streams/${id}`)).json.live).not.toBeNull();
      const leaseKey = `${PREFIX}{${id}}:lease`;
      expect(await keysWithPrefix(REDIS, leaseKey)).toEqual([leaseKey]);

      // What A's and B's origins serve as it goes, through the move.
      interface Seen {
        node: string;
        t: number;
        status: number;
        msn: number;
        segments: number;
        prefixes: string[];
        discontinuities: number;
        ended: boolean;
        /** How long the request took (held or not), ms. */
        ms: number;
      }
      const seen: Seen[] = [];
      const emptyBodies = new Map<string, string>();
      let watching = true;
      const t0 = performance.now();
      const watch = async (node: string, srv: TestServer) => {
        while (watching) {
          const asked = performance.now();
          const r = await get(srv, media);
          const l = parseMediaPlaylist(r.text);
          if (r.status === 200 && l.segments.length === 0 && !emptyBodies.has(node)) {
            // What the store says then: the stream document (which run, playable) and the rendition's state.
            const redis = new Redis(REDIS);
            const [doc, state] = await redis
              .mget(`${PREFIX}{${id}}:doc`, `${PREFIX}{${id}}:state:source`)
              .finally(() => redis.disconnect());
            const d = doc ? (JSON.parse(doc) as { runId: string; version: number; playable: boolean }) : undefined;
            const st = state ? (JSON.parse(JSON.parse(state).json as string) as { runId: string; doc: number; live: boolean }) : undefined;
            const stored = {
              doc: d && { runId: d.runId, version: d.version, playable: d.playable },
              state: st && { runId: st.runId, doc: st.doc, live: st.live },
            };
            emptyBodies.set(node, `${r.text}\nstore then: ${JSON.stringify(stored)}`);
          }
          seen.push({
            node,
            t: Math.round(r.at - t0),
            status: r.status,
            msn: l.mediaSequence,
            segments: l.segments.length,
            prefixes: [...new Set(l.segments.map((s) => filePrefix(s.uri)))],
            discontinuities: l.segments.filter((s) => s.discontinuity).length,
            ended: l.ended,
            ms: Math.round(r.at - asked),
          });
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      const watchers = Promise.all([watch('A', a!), watch('B', b!)]);

      const onC = publish(c!, stream.streamKey);
      const exitA = waitExit(onA, 15_000).then(
        () => performance.now() - t0,
        () => undefined,
      );
      // A let its publisher go: no live session on A.
      await until(async () => (await a!.api('GET', `/api/v1/streams/${id}`)).json.live === null, 10_000, 100);
      const notLiveOnA = performance.now() - t0;
      // One owner, the newer: the lease is C's.
      const r = new Redis(REDIS);
      let lease: string | null;
      try {
        lease = await until(
          async () => {
            const v = await r.get(leaseKey);
            return v?.endsWith(':node-c') ? v : undefined;
          },
          10_000,
          100,
        );
      } finally {
        r.disconnect();
      }
      expect(lease).toMatch(/^\d+:node-c$/);
      // B serves C's window: its newest segments have another run/session prefix than A's.
      const after = await until(
        async () => {
          const l = parseMediaPlaylist((await get(b!, media)).text);
          const last = l.segments.at(-1);
          return last && filePrefix(last.uri) !== prefixA && !l.ended ? l : undefined;
        },
        20_000,
        100,
      );
      const prefixC = filePrefix(after.segments.at(-1)!.uri);
      const servedC = performance.now() - t0;
      // The newer publisher's media, as B serves it: its init, a part, a segment, and the master playlist.
      const dir = media.slice(0, media.lastIndexOf('/') + 1);
      const cFiles = { init: after.segments.at(-1)!.map!, part: after.parts.at(-1)!.uri, segment: after.segments.at(-1)!.uri };
      const cAnswers: Record<string, number> = {};
      for (const [what, uri] of Object.entries(cFiles)) cAnswers[`${what} ${uri}`] = (await get(b!, dir + uri)).status;
      const masterB = await get(b!, `/live/${id}/master.m3u8`);
      console.log(`[cluster-nodes] B serves C's files: ${JSON.stringify(cAnswers)}; master ${masterB.status}`);
      // C's window goes on growing on B.
      await until(async () => parseMediaPlaylist((await get(b!, media)).text).nextMsn > after.nextMsn, 10_000, 100);
      expect(onC.exitCode).toBeNull();
      const exitedA = await exitA;
      // Let the watcher see a few seconds of C.
      await new Promise((r) => setTimeout(r, 2000));
      watching = false;
      await watchers;

      // What A's own origin answers now (its ended run stays in its packager for the retention).
      const onAView = parseMediaPlaylist((await get(a!, media)).text);
      console.log(
        `[cluster-nodes] takeover: A's FFmpeg exited ${exitedA === undefined ? 'not within 15 s' : `${exitedA.toFixed(0)} ms`}, A shows no live session ${notLiveOnA.toFixed(0)} ms, B serves C's window ${servedC.toFixed(0)} ms after C's publisher started; lease ${lease}`,
      );
      console.log(
        `[cluster-nodes] prefixes: A ${prefixA}, C ${prefixC}; A's origin now lists ${onAView.segments.map((s) => filePrefix(s.uri)).at(-1)} (ended ${onAView.ended})`,
      );
      // Each change in what A and B serve (status, prefixes listed, discontinuities, end), and B's media sequence.
      for (const node of ['A', 'B']) {
        let prev = '';
        for (const x of seen.filter((y) => y.node === node)) {
          const key = JSON.stringify([x.status, x.prefixes, x.discontinuities, x.ended, x.segments === 0]);
          if (key !== prev) console.log(`[cluster-nodes]   ${node} at +${x.t} ms: ${JSON.stringify(x)}`);
          prev = key;
        }
      }
      for (const [node, text] of emptyBodies) console.log(`[cluster-nodes] ${node} served a playlist without segments:\n${text}`);
      const msns = seen.filter((x) => x.node === 'B' && x.status === 200).map((x) => x.msn);
      console.log(`[cluster-nodes] B's media sequence through the move: ${[...new Set(msns)].join(' ')}`);
      expect(prefixC).not.toBe(prefixA);
      for (const [what, status] of Object.entries(cAnswers)) expect(status, `B serves C's ${what}`).toBe(200);
      expect(masterB.status).toBe(200);
    }, 70_000);
  });
});
