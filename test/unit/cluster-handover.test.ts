import { afterEach, describe, expect, it } from 'vitest';
import { LocalFirstPackages, RemotePackages, storedSeeds, StreamOwnership, WindowMirror } from '../../src/cluster/index.js';
import { MemoryCoordination, MemoryWindowStore } from '../../src/coord/index.js';
import { silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { LiveOrigin, LivePackager, type OriginResponse } from '../../src/packager/index.js';
import { StreamHub, type Publisher } from '../../src/stream/index.js';
import { parseMediaPlaylist } from '../helpers/server.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** avcC of a 640x360 stream (libx264), as in segmenter.test.ts. */
const AVCC = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);
const FPS = 30;
const GOP = 60;
const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: AVCC, width: 640, height: 360, frameRate: FPS },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: hex('1190'), sampleRate: 48_000, channels: 2 },
};
const ms = (k: number) => Math.round((k * 1000) / FPS) * 90;
const nal = (key: boolean, k: number) => Uint8Array.from([0, 0, 0, 4, key ? 0x65 : 0x41, 0x88, k & 0xff, (k >> 8) & 0xff]);
const video = (k: number): MediaFrame => ({
  track: 'video',
  dts: ms(k),
  pts: ms(k),
  keyframe: k % GOP === 0,
  data: nal(k % GOP === 0, k),
  wallClock: WALL + ms(k) / 90,
});
const audioAt = (j: number): MediaFrame => {
  const t = Math.round((j * 1024 * 1000) / 48_000) * 90;
  return { track: 'audio', dts: t, pts: t, keyframe: true, data: Uint8Array.from([0x21, j & 0xff]), wallClock: WALL + t / 90 };
};
const settle = async () => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const body = (r: OriginResponse) => (typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('base64'));

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const ORIGIN = { holdMs: 2000, startupWaitMs: 2000 };

/** One ingest node: hub, packager, lease, mirror, the seed source over the store, its origin. */
function node(coord: MemoryCoordination, store: MemoryWindowStore, nodeId: string) {
  const hub = new StreamHub({ graceMs: 60_000, readerQueueFrames: 100_000, logger: silentLogger });
  const packager = new LivePackager({
    hub,
    logger: silentLogger,
    partTargetMs: 200,
    segmentTargetMs: 2000,
    windowSeconds: 8,
    endedRetentionMs: 60_000,
    maxHeldRequests: 100,
  });
  const ownership = new StreamOwnership({ coord, hub, nodeId, leaseMs: 5000, logger: silentLogger });
  ownership.start();
  const mirror = new WindowMirror({ store, logger: silentLogger, epochOf: (id) => ownership.epochOf(id), ttlMs: 120_000 });
  packager.watch(mirror);
  packager.seedFrom(storedSeeds({ store, logger: silentLogger, leased: (id) => ownership.whenLeased(id) }));
  packager.start();
  const remote = new RemotePackages({ store, logger: silentLogger, maxHeldRequests: 100, docMaxAgeMs: 20 });
  const origin = new LiveOrigin(new LocalFirstPackages(packager, remote), ORIGIN);
  closers.push(
    () => hub.close(),
    () => ownership.close(),
    () => mirror.close(),
    () => packager.close(),
    () => remote.close(),
  );
  return { hub, packager, ownership, mirror, origin, nodeId };
}
type Node = ReturnType<typeof node>;

/** A publisher's encoder: frames go on counting across sessions (each session starts on a keyframe). */
class Encoder {
  k = 0;
  #audio = 0;
  pub: Publisher | undefined;
  #n = 0;

  async publish(on: Node): Promise<void> {
    this.pub = on.hub.publish('s1', { sessionId: `${on.nodeId}-${++this.#n}`, protocol: 'rtmp', remoteAddress: 'x' }, () => {});
    // The lease first (a real encoder's handshake takes longer than the in-process acquisition).
    await until(`${on.nodeId} to own s1`, () => on.ownership.owns('s1'));
    this.pub.setTracks(TRACKS);
    this.k = Math.ceil(this.k / GOP) * GOP;
    while (audioAt(this.#audio).dts < ms(this.k)) this.#audio++;
  }

  async frames(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const v = video(this.k++);
      while (audioAt(this.#audio).dts <= v.dts) this.pub!.write(audioAt(this.#audio++));
      this.pub!.write(v);
      if (i % 10 === 9) await settle();
    }
    await settle();
  }

  /** The connection is lost (no clean unpublish): the hub waits for the grace. */
  drop(): void {
    this.pub!.close('connection lost');
  }
}

function cluster() {
  const coord = new MemoryCoordination({ logger: silentLogger });
  const store = new MemoryWindowStore({ coord, logger: silentLogger });
  const a = node(coord, store, 'A');
  const b = node(coord, store, 'B');
  /** A stateless origin over the store (another node). */
  const remote = new RemotePackages({ store, logger: silentLogger, maxHeldRequests: 100, docMaxAgeMs: 20 });
  closers.push(() => remote.close());
  return { coord, store, a, b, remote: new LiveOrigin(remote, ORIGIN) };
}

const playlist = async (origin: LiveOrigin) => {
  const res = await origin.handle('s1', 'source/index.m3u8', {});
  expect(res.status).toBe(200);
  return String(res.body);
};

/** Every init, part and segment the playlist lists answers 200 from `origin`. */
async function allFetchable(origin: LiveOrigin, text: string): Promise<number> {
  const files = new Set<string>();
  for (const m of text.matchAll(/URI="([^"]+\.(?:mp4|m4s))"/g)) files.add(m[1]);
  for (const s of parseMediaPlaylist(text).segments) if (!s.gap) files.add(s.uri);
  const hint = parseMediaPlaylist(text).hint;
  if (hint) files.delete(hint);
  for (const f of files) {
    const res = await origin.handle('s1', `source/${f}`, {});
    expect(res.status, f).toBe(200);
    expect((res.body as Uint8Array).byteLength, f).toBeGreaterThan(0);
  }
  return files.size;
}

describe('cluster handover: a publisher back on another ingest node continues the playlist', () => {
  it('continues the run, the media sequence and the discontinuity sequence, with one discontinuity at the seam', async () => {
    const c = cluster();
    const enc = new Encoder();
    // On A: a session, a reconnect to A itself (a discontinuity that scrolls out of the window), another session.
    await enc.publish(c.a);
    await enc.frames(200);
    enc.drop();
    await settle();
    await enc.publish(c.a);
    await enc.frames(360);
    await c.a.mirror.flush();
    const runA = c.a.packager.get('s1')!.runId;
    // A's publisher is lost; A's node stays up (its stream waits for the grace).
    enc.drop();
    await settle();
    await c.a.mirror.flush();
    const textA = await playlist(c.a.origin);
    const listA = parseMediaPlaylist(textA);
    const discSeqA = Number(/#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)/.exec(textA)?.[1] ?? 0);
    expect(discSeqA).toBeGreaterThan(0);
    expect(listA.segments.length).toBeGreaterThanOrEqual(3);
    const lastA = listA.segments.at(-1)!;
    // The publisher comes back on B within the grace.
    await enc.publish(c.b);
    await until('B to continue the run', () => c.b.packager.get('s1') !== undefined);
    expect(c.b.packager.get('s1')!.runId).toBe(runA);
    // A was told to let go: its stream ended there, and what it writes now is refused.
    await until('A to end s1', () => c.a.hub.status('s1') === undefined);
    await c.a.mirror.flush();
    expect(c.a.mirror.counters.fenced).toBeGreaterThan(0);
    // B's first parts: A's segments as A listed them, the same numbers, then the seam.
    await enc.frames(20);
    await c.b.mirror.flush();
    const early = await playlist(c.b.origin);
    const listEarly = parseMediaPlaylist(early);
    expect(listEarly.mediaSequence).toBe(listA.mediaSequence);
    expect(early).toContain(`#EXT-X-DISCONTINUITY-SEQUENCE:${discSeqA}`);
    expect(listEarly.segments.map((s) => s.uri)).toEqual(listA.segments.map((s) => s.uri));
    expect(listEarly.targetDuration).toBe(listA.targetDuration);
    expect(listEarly.partTarget).toBe(listA.partTarget);
    // Everything before the seam is A's text, line for line (but for the hint and reports after it).
    const headA = textA.slice(0, textA.indexOf(lastA.uri) + lastA.uri.length);
    expect(early.startsWith(headA)).toBe(true);
    const seam = early.slice(headA.length).split('\n').filter(Boolean);
    expect(seam[0]).toBe('#EXT-X-DISCONTINUITY');
    expect(seam[1]).toMatch(new RegExp(`^#EXT-X-MAP:URI="${runA}s3_init.mp4"$`));
    expect(await allFetchable(c.b.origin, early)).toBeGreaterThan(listA.segments.length);

    // B goes on: its segments follow A's numbers, one discontinuity at the seam; A's scroll out.
    await enc.frames(150);
    await c.b.mirror.flush();
    const later = await playlist(c.b.origin);
    const listB = parseMediaPlaylist(later);
    const seamSeg = listB.segments.find((s) => s.msn === lastA.msn + 1)!;
    expect(seamSeg.discontinuity).toBe(true);
    expect(seamSeg.uri).toBe(`${runA}s3_${lastA.msn + 1}.m4s`);
    for (const s of listB.segments) {
      if (s.msn <= lastA.msn) expect(s.uri).toBe(listA.segments.find((x) => x.msn === s.msn)!.uri);
      if (s.msn !== lastA.msn + 1 && s.msn > lastA.msn) expect(s.discontinuity).toBe(false);
    }
    expect(listB.mediaSequence).toBeGreaterThan(listA.mediaSequence);
    expect(listB.segments.at(-1)!.msn).toBeGreaterThanOrEqual(lastA.msn + 2);
    await allFetchable(c.b.origin, later);
    // Once the seam scrolls out too, the discontinuity sequence counts it.
    await enc.frames(300);
    await c.b.mirror.flush();
    const last = await playlist(c.b.origin);
    const aLeft = parseMediaPlaylist(last).segments.every((s) => s.msn > lastA.msn + 1);
    expect(aLeft).toBe(true);
    expect(last).toContain(`#EXT-X-DISCONTINUITY-SEQUENCE:${discSeqA + 1}`);

    // A stateless origin serves B's window byte for byte.
    for (const [path, query] of [
      ['source/index.m3u8', {}],
      ['source/index.m3u8', { _HLS_skip: 'YES' }],
      ['master.m3u8', {}],
    ] as const) {
      const [x, y] = await Promise.all([c.b.origin.handle('s1', path, query), c.remote.handle('s1', path, query)]);
      expect(y.status, path).toBe(x.status);
      expect(y.headers, path).toEqual(x.headers);
      expect(body(y), path).toBe(body(x));
    }
    await allFetchable(c.remote, last);
  });

  it("serves A's window through the seam from B's origin and a remote one right after the takeover", async () => {
    const c = cluster();
    const enc = new Encoder();
    await enc.publish(c.a);
    await enc.frames(250);
    enc.drop();
    await settle();
    await c.a.mirror.flush();
    await enc.publish(c.b);
    await enc.frames(100);
    await c.b.mirror.flush();
    const text = await playlist(c.b.origin);
    expect(text.split('\n').filter((l) => l === '#EXT-X-DISCONTINUITY')).toHaveLength(1);
    const seamAt = parseMediaPlaylist(text).segments.findIndex((s) => s.discontinuity);
    expect(seamAt).toBeGreaterThan(0);
    const remoteText = await playlist(c.remote);
    expect(remoteText).toBe(text);
    await allFetchable(c.b.origin, text);
    await allFetchable(c.remote, text);
  });

  it('without a stored window, or after the run ended, B starts a new run as before', async () => {
    const c = cluster();
    const enc = new Encoder();
    await enc.publish(c.b);
    await enc.frames(200);
    const text = await playlist(c.b.origin);
    expect(parseMediaPlaylist(text).mediaSequence).toBe(0);
    expect(text).not.toContain('#EXT-X-DISCONTINUITY');
    const fresh = c.b.packager.get('s1')!.runId;
    // The run ends on B (the grace is over): a publisher on A then starts a new run.
    c.b.hub.end('s1', 'publisher did not return');
    await settle();
    await c.b.mirror.flush();
    await enc.publish(c.a);
    await until('A to start the stream', () => c.a.packager.get('s1') !== undefined);
    await enc.frames(200);
    const textA = await playlist(c.a.origin);
    expect(c.a.packager.get('s1')!.runId).not.toBe(fresh);
    expect(textA).not.toContain(fresh);
    expect(textA).not.toContain('#EXT-X-DISCONTINUITY');
  });
});
