/**
 * Cross-node playback over the machine's Redis (127.0.0.1:6379, a prefix of its own, its keys deleted
 * after): node A ingests and mirrors its window, node B serves it from Redis. Every held request is
 * answered by B with A's bytes, and the delay Redis adds (A's answer to B's answer) is printed.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { RemotePackages, WindowMirror } from '../../src/cluster/index.js';
import { createCoordination } from '../../src/coord/index.js';
import { silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { LiveOrigin, LivePackager, type OriginResponse } from '../../src/packager/index.js';
import { StreamHub } from '../../src/stream/index.js';
import { deleteKeysWithPrefix, keysWithPrefix } from '../../harness/redis.js';
import { parseMediaPlaylist } from '../helpers/server.js';

const URL = 'redis://127.0.0.1:6379';
const PREFIX = `livepack-test:${randomUUID().slice(0, 8)}:`;
const FPS = 30;
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const tracks: TrackSet = {
  video: {
    kind: 'video',
    codec: 'h264',
    codecPrivate: hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20'),
    width: 640,
    height: 360,
    frameRate: FPS,
  },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: hex('1190'), sampleRate: 48_000, channels: 2 },
};
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);
const ms = (k: number) => Math.round((k * 1000) / FPS) * 90;
const video = (k: number): MediaFrame => {
  const key = k % 60 === 0;
  const data = Uint8Array.from([0, 0, 0, 4, key ? 0x65 : 0x41, 0x88, k & 0xff, (k >> 8) & 0xff]);
  return { track: 'video', dts: ms(k), pts: ms(k), keyframe: key, data, wallClock: WALL + ms(k) / 90 };
};
const audioAt = (j: number): MediaFrame => {
  const t = Math.round((j * 1024 * 1000) / 48_000) * 90;
  return { track: 'audio', dts: t, pts: t, keyframe: true, data: Uint8Array.from([0x21, j & 0xff]), wallClock: WALL + t / 90 };
};
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};
const body = (r: OriginResponse) => (typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('base64'));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

afterAll(async () => {
  await deleteKeysWithPrefix(URL, PREFIX);
});

describe('cluster over Redis: node B serves what node A ingests', () => {
  it('answers held requests byte-identically, woken by the announcement; no key is left after the end', { timeout: 60_000 }, async () => {
    const a = createCoordination({ redisUrl: URL, prefix: PREFIX, logger: silentLogger });
    const b = createCoordination({ redisUrl: URL, prefix: PREFIX, logger: silentLogger });
    const hub = new StreamHub({ graceMs: 60_000, readerQueueFrames: 100_000, logger: silentLogger });
    const packager = new LivePackager({
      hub,
      logger: silentLogger,
      partTargetMs: 200,
      segmentTargetMs: 2000,
      windowSeconds: 24,
      endedRetentionMs: 300,
      maxHeldRequests: 100,
    });
    const lease = await a.coord.acquireLease('s1', 'node-a', 60_000);
    expect(lease).toBeDefined();
    const mirror = new WindowMirror({ store: a.window, logger: silentLogger, epochOf: () => lease?.epoch, ttlMs: 60_000 });
    packager.watch(mirror);
    packager.start();
    // B re-checks only every 5 s: what wakes it within the figures below is the announcement.
    const remotePackages = new RemotePackages({ store: b.window, logger: silentLogger, maxHeldRequests: 100, recheckMs: 5000 });
    const opts = { holdMs: 3000, startupWaitMs: 3000 };
    const local = new LiveOrigin(packager, opts);
    const remote = new LiveOrigin(remotePackages, opts);
    try {
      const pub = hub.publish('s1', { sessionId: 'src-1', protocol: 'rtmp', remoteAddress: 'x' }, () => {});
      pub.setTracks(tracks);
      let k = 0;
      let j = 0;
      const frame = () => {
        const v = video(k++);
        while (audioAt(j).dts <= v.dts) pub.write(audioAt(j++));
        pub.write(v);
      };
      for (let i = 0; i < 150; i++) frame();
      await settle();
      await mirror.flush();

      const delays: number[] = [];
      const hintDelays: number[] = [];
      for (let round = 0; round < 61; round++) {
        const text = String((await local.handle('s1', 'source/index.m3u8', {})).body);
        const list = parseMediaPlaylist(text);
        const last = list.parts.at(-1)!;
        const hint = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)![1];
        const q = { _HLS_msn: String(last.msn), _HLS_part: String(list.parts.filter((p) => p.msn === last.msn).length) };
        const at: Record<string, number> = {};
        const stamp = (name: string) => (r: OriginResponse) => ((at[name] = performance.now()), r);
        const held = [
          local.handle('s1', 'source/index.m3u8', q).then(stamp('local')),
          remote.handle('s1', 'source/index.m3u8', q).then(stamp('remote')),
          local.handle('s1', `source/${hint}`, {}).then(stamp('localHint')),
          remote.handle('s1', `source/${hint}`, {}).then(stamp('remoteHint')),
        ];
        // Real time: a frame every 33 ms until A has the part (and answered its own viewers).
        while (at.local === undefined) {
          frame();
          await new Promise((r) => setTimeout(r, 1000 / FPS));
        }
        const [la, ra, lh, rh] = await Promise.all(held);
        expect(body(ra)).toBe(body(la));
        expect(rh.status).toBe(200);
        expect(body(rh)).toBe(body(lh));
        // The first round subscribes B (its first announcement may come before the subscription).
        if (round === 0) continue;
        delays.push(at.remote - at.local);
        hintDelays.push(at.remoteHint - at.localHint);
      }
      const fmt = (xs: number[]) =>
        `p50 ${pct(xs, 50).toFixed(2)} ms, p95 ${pct(xs, 95).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms`;
      console.log(`redis adds to a held playlist reload (A answers -> B answers), ${delays.length} parts: ${fmt(delays)}`);
      console.log(`redis adds to a preload-hinted part (A answers -> B answers), ${hintDelays.length} parts: ${fmt(hintDelays)}`);
      console.log(`mirror: ${JSON.stringify(mirror.counters)}; B's file cache: ${JSON.stringify(remotePackages.cache)}`);
      // Loosely: the issue asks for 50 ms at p95 between nodes.
      expect(pct(delays, 95)).toBeLessThan(50);
      expect(pct(hintDelays, 95)).toBeLessThan(50);

      // The end: the lease is released, the retention passes, the window is deleted.
      hub.end('s1', 'test');
      await a.coord.releaseLease(lease!);
      // The retention (300 ms) and the delete are timers and Redis round trips: on a loaded machine they are
      // waited for (10 s at most), and a failure shows the mirror's counters (a failed or timed-out delete).
      for (let i = 0; i < 500 && mirror.counters.deleted + mirror.counters.failed === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await mirror.flush();
      expect(packager.get('s1')).toBeUndefined();
      expect(mirror.counters, JSON.stringify(mirror.counters)).toMatchObject({ deleted: 1, failed: 0 });
      expect(await keysWithPrefix(URL, `${PREFIX}`).then((keys) => keys.filter((key) => key.includes('s1')))).toEqual([]);
      await new Promise((r) => setTimeout(r, 1100)); // B's document is at most a second old
      expect((await remote.handle('s1', 'source/index.m3u8', {})).status).toBe(404);
    } finally {
      remotePackages.close();
      packager.close();
      hub.close();
      await mirror.close();
      await a.coord.close();
      await b.coord.close();
    }
  });
});
