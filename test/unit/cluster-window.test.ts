import { afterEach, describe, expect, it } from 'vitest';
import { LocalFirstPackages, RemotePackages, WindowMirror } from '../../src/cluster/index.js';
import { MemoryWindowStore, type LiveWindowStore, type StoredRenditionState, type WindowAnnouncement } from '../../src/coord/index.js';
import { silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { LiveOrigin, LivePackager, renderMediaPlaylist, type OriginResponse, type WindowWatcher } from '../../src/packager/index.js';
import { renditionDoc, stateHas, type RenditionDoc } from '../../src/cluster/window-state.js';
import { rungStreamId, StreamHub, type Publisher } from '../../src/stream/index.js';
import { parseMediaPlaylist } from '../helpers/server.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** avcC of a 640x360 stream (libx264), as in segmenter.test.ts. */
const AVCC = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const ASC = hex('1190');
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);
const FPS = 30;
const GOP = 60;
const HOLD_MS = 3000;

const tracks = (height: number): TrackSet => ({
  video: { kind: 'video', codec: 'h264', codecPrivate: AVCC, width: Math.round((height * 16) / 9), height, frameRate: FPS },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: ASC, sampleRate: 48_000, channels: 2 },
});
const nal = (key: boolean, k: number) => Uint8Array.from([0, 0, 0, 4, key ? 0x65 : 0x41, 0x88, k & 0xff, (k >> 8) & 0xff]);
const ms = (k: number) => Math.round((k * 1000) / FPS) * 90;
const video = (k: number, key: boolean, lag: number): MediaFrame => ({
  track: 'video',
  dts: ms(k),
  pts: ms(k),
  keyframe: key,
  data: nal(key, k),
  wallClock: WALL + ms(k) / 90 + lag,
});
const audioAt = (j: number): MediaFrame => {
  const t = Math.round((j * 1024 * 1000) / 48_000) * 90;
  return { track: 'audio', dts: t, pts: t, keyframe: true, data: Uint8Array.from([0x21, j & 0xff]), wallClock: WALL + t / 90 };
};

const settle = async () => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};

/** The memory store, with announcements that can be lost (pub/sub is fire-and-forget) and reads counted. */
class LossyStore implements LiveWindowStore {
  dropAnnouncements = false;
  fileReads = 0;
  constructor(readonly inner: MemoryWindowStore) {}
  putFile(s: string, r: string, n: string, b: Uint8Array, e: number, t: number) {
    return this.inner.putFile(s, r, n, b, e, t);
  }
  getFile(s: string, r: string, n: string) {
    this.fileReads++;
    return this.inner.getFile(s, r, n);
  }
  putState(s: string, r: string, st: StoredRenditionState, t: number) {
    return this.inner.putState(s, r, st, t);
  }
  getState(s: string, r: string) {
    return this.inner.getState(s, r);
  }
  putStream(s: string, json: string, e: number, t: number) {
    return this.inner.putStream(s, json, e, t);
  }
  getStream(s: string) {
    return this.inner.getStream(s);
  }
  subscribe(s: string, h: (a: WindowAnnouncement) => void) {
    return this.inner.subscribe(s, (a) => {
      if (!this.dropAnnouncements) h(a);
    });
  }
  deleteStream(s: string) {
    return this.inner.deleteStream(s);
  }
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** One ingesting node (hub, rung hub, packager, mirror) and two stateless origins over the same store. */
function cluster(epochOf: (streamId: string) => number | undefined = () => 1) {
  const mkHub = () => new StreamHub({ graceMs: 60_000, readerQueueFrames: 100_000, logger: silentLogger });
  const hub = mkHub();
  const rungHub = mkHub();
  const packager = new LivePackager({
    hub,
    rungHub,
    logger: silentLogger,
    partTargetMs: 200,
    segmentTargetMs: 2000,
    windowSeconds: 60,
    endedRetentionMs: 300,
    maxHeldRequests: 100,
  });
  const inner = new MemoryWindowStore();
  const store = new LossyStore(inner);
  const mirror = new WindowMirror({ store: inner, logger: silentLogger, epochOf, ttlMs: 120_000 });
  packager.watch(mirror);
  packager.start();
  const opts = { holdMs: HOLD_MS, startupWaitMs: 2000 };
  const local = new LiveOrigin(packager, opts);
  // Announcements only (a re-check far too slow to matter), and re-checks only (announcements lost).
  const announced = new RemotePackages({ store, logger: silentLogger, maxHeldRequests: 100, recheckMs: 60_000, docMaxAgeMs: 50 });
  const lossy = new LossyStore(inner);
  lossy.dropAnnouncements = true;
  const rechecked = new RemotePackages({ store: lossy, logger: silentLogger, maxHeldRequests: 100, recheckMs: 50, docMaxAgeMs: 50 });
  closers.push(() => {
    announced.close();
    rechecked.close();
    packager.close();
    hub.close();
    rungHub.close();
  });
  return {
    hub,
    rungHub,
    packager,
    mirror,
    store,
    lossy,
    local,
    remote: new LiveOrigin(announced, opts),
    rechecked: new LiveOrigin(rechecked, opts),
    announced,
  };
}

type Cluster = ReturnType<typeof cluster>;

/** A source with a transcoded 360p rung that lags it by a few frames, written frame by frame. */
class Broadcast {
  k = 0;
  #audio = 0;
  #session = 0;
  readonly #c: Cluster;
  #src!: Publisher;
  #rung: Publisher | undefined;
  #rungK = 0;

  constructor(c: Cluster) {
    this.#c = c;
    this.publish();
  }

  publish(): void {
    this.#src = this.#c.hub.publish('s1', { sessionId: `src-${++this.#session}`, protocol: 'rtmp', remoteAddress: 'x' }, () => {});
    this.#src.setTracks(tracks(720));
    // A new session starts on a keyframe, as an encoder's first frame.
    this.k = Math.ceil(this.k / GOP) * GOP;
    while (audioAt(this.#audio).dts < ms(this.k)) this.#audio++;
  }

  startRung(): void {
    this.#rung = this.#c.rungHub.publish(
      rungStreamId({ streamId: 's1', rung: '360p' }),
      { sessionId: 'r1', protocol: 'transcode', remoteAddress: 'ffmpeg', sourceSessionId: `src-${this.#session}` },
      () => {},
    );
    this.#rung.setTracks(tracks(360));
    this.#rungK = this.k;
  }

  /** One source video frame (and the audio before it); the rung gets its frame of four frames ago. */
  frame(withRung = true): void {
    const v = video(this.k, this.k % GOP === 0, 5);
    while (audioAt(this.#audio).dts <= v.dts) this.#src.write(audioAt(this.#audio++));
    this.#src.write(v);
    const r = this.k - 4;
    if (withRung && this.#rung && r >= this.#rungK) {
      this.#rung.write(video(r, r === this.#rungK || r % GOP === 0, 60));
    }
    this.k++;
  }

  async frames(n: number, withRung = true): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.frame(withRung);
      if (i % 10 === 9) await settle();
    }
    await settle();
  }

  /** The transcoder drops the rung (not enough CPU): its playlist goes on with EXT-X-GAP segments. */
  dropRung(): void {
    this.#c.rungHub.end(rungStreamId({ streamId: 's1', rung: '360p' }), 'dropped: not enough CPU');
    this.#rung = undefined;
  }

  closeSession(): void {
    this.#src.close('dropped');
  }
}

const body = (r: OriginResponse) => (typeof r.body === 'string' ? r.body : Buffer.from(r.body).toString('base64'));

/** The same request to both origins: the same status, headers and bytes. */
async function same(c: Cluster, path: string, query: Record<string, string> = {}, remote = c.remote): Promise<OriginResponse> {
  const [a, b] = await Promise.all([c.local.handle('s1', path, query), remote.handle('s1', path, query)]);
  const label = `${path}?${new URLSearchParams(query).toString()}`;
  expect(b.status, label).toBe(a.status);
  expect(b.headers, label).toEqual(a.headers);
  expect(body(b), label).toBe(body(a));
  return a;
}

/** Every URL of the stream: playlists (plain, delta, blocking already satisfied, too far ahead), inits, parts, segments. */
async function sameEverywhere(c: Cluster, renditions: string[], offered = renditions): Promise<number> {
  await c.mirror.flush();
  let n = 0;
  const master = await same(c, 'master.m3u8');
  n++;
  for (const r of offered) expect(master.body).toContain(`${r}/index.m3u8`);
  for (const r of renditions) {
    const plain = await same(c, `${r}/index.m3u8`);
    const delta = await same(c, `${r}/index.m3u8`, { _HLS_skip: 'YES' });
    const list = parseMediaPlaylist(String(plain.body));
    const last = list.parts.at(-1)!;
    await same(c, `${r}/index.m3u8`, { _HLS_msn: String(last.msn), _HLS_part: '0' });
    await same(c, `${r}/index.m3u8`, { _HLS_msn: String(last.msn - 1), _HLS_skip: 'YES' });
    await same(c, `${r}/index.m3u8`, { _HLS_msn: String(last.msn + 3) }); // E_PLAYLIST_TOO_FAR_AHEAD
    const lastPart = list.parts.filter((p) => p.msn === last.msn).length - 1;
    await same(c, `${r}/index.m3u8`, { _HLS_msn: String(last.msn), _HLS_part: String(lastPart + 4) });
    n += 6;
    const files = new Set<string>();
    for (const text of [String(plain.body), String(delta.body)]) {
      for (const m of text.matchAll(/URI="([^"]+\.(?:mp4|m4s))"/g)) files.add(m[1]);
      for (const s of parseMediaPlaylist(text).segments) if (!s.gap) files.add(s.uri);
    }
    const hint = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(String(plain.body))?.[1];
    if (hint) files.delete(hint);
    for (const f of files) {
      const res = await same(c, `${r}/${f}`);
      expect(res.status, f).toBe(200);
      n++;
    }
    await same(c, `${r}/nosuchfile_p1.m4s`);
    n++;
  }
  await same(c, 'nosuch/index.m3u8');
  return n + 1;
}

/** A request on both origins, not yet answered (held), then the source alone advances until the local one is. */
async function heldUntilPart(c: Cluster, b: Broadcast, path: string, query: Record<string, string>, remote: LiveOrigin) {
  let localDone = false;
  let remoteDone = false;
  const a = c.local.handle('s1', path, query).finally(() => (localDone = true));
  const r = remote.handle('s1', path, query).finally(() => (remoteDone = true));
  await settle();
  await c.mirror.flush();
  await settle();
  expect(localDone || remoteDone, 'held on both').toBe(false);
  for (let i = 0; i < 200 && !localDone; i++) {
    b.frame(false);
    await settle();
  }
  expect(localDone).toBe(true);
  const t0 = performance.now();
  await c.mirror.flush();
  const [la, ra] = await Promise.all([a, r]);
  const waited = performance.now() - t0;
  expect(ra.status).toBe(la.status);
  expect(body(ra)).toBe(body(la));
  return { local: la, waited };
}

describe('cluster: an origin serves a stream another node ingests, byte for byte', () => {
  it('answers every URL of a live ABR stream as the ingesting node does', async () => {
    const c = cluster();
    // At every change, the stored state answers as the window does: the same text, the same `has`.
    const mismatches: string[] = [];
    let checked = 0;
    const checker: WindowWatcher = {
      changed(pkg, r, change) {
        c.mirror.changed(pkg, r, change);
        const doc = JSON.parse(JSON.stringify(renditionDoc(pkg, r, 0, 0))) as RenditionDoc;
        for (const skip of [false, true]) {
          const text = renderMediaPlaylist({ ...doc.playlist, renditionReports: [] }, { skip });
          if (text !== renderMediaPlaylist(r.state([]), { skip })) mismatches.push(`${r.name} ${change.kind} text skip=${skip}`);
        }
        const last = r.lastMsnPart();
        for (let msn = last.msn - 3; msn <= last.msn + 2; msn++) {
          for (const part of [undefined, 0, 1, 2, 5, 8, 9, 10, 11]) {
            checked++;
            if (stateHas(doc, msn, part) !== r.has(msn, part)) mismatches.push(`${r.name} has(${msn}, ${part})`);
          }
        }
      },
      released: (pkg, why) => c.mirror.released(pkg, why),
    };
    c.packager.watch(checker);
    const b = new Broadcast(c);
    await b.frames(90);
    b.startRung();
    await b.frames(900);
    const n = await sameEverywhere(c, ['source', '360p']);
    expect(n).toBeGreaterThan(100);
    // The delta update really skips, and the reports name the other rendition.
    const delta = await same(c, 'source/index.m3u8', { _HLS_skip: 'YES' });
    expect(String(delta.body)).toContain('#EXT-X-SKIP:SKIPPED-SEGMENTS=');
    expect(String(delta.body)).toContain('#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8"');
    // Immutable files are read from the store once per origin, however often they are asked for.
    const reads = c.store.fileReads;
    await sameEverywhere(c, ['source', '360p']);
    expect(c.store.fileReads - reads).toBe(2); // only the two unknown names, which are never cached
    expect(c.announced.cache.hits).toBeGreaterThan(100);
    // A dropped rung goes on with EXT-X-GAP segments (parts of a gap: answered at once, not held).
    b.dropRung();
    await b.frames(200);
    // A rung that is not running is not offered to new players; its playlist is still served.
    const rung = await sameEverywhere(c, ['source', '360p'], ['source']);
    expect(rung).toBeGreaterThan(100);
    expect(String((await same(c, '360p/index.m3u8')).body)).toContain('#EXT-X-GAP');
    expect(mismatches).toEqual([]);
    expect(checked).toBeGreaterThan(10_000);
  });

  it('holds a blocking reload until the part, woken by the announcement', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(200);
    await c.mirror.flush();
    const list = parseMediaPlaylist(String((await same(c, 'source/index.m3u8')).body));
    const last = list.parts.at(-1)!;
    const partIndex = list.parts.filter((p) => p.msn === last.msn).length;
    const q = { _HLS_msn: String(last.msn), _HLS_part: String(partIndex) };
    const { local, waited } = await heldUntilPart(c, b, 'source/index.m3u8', q, c.remote);
    expect(String(local.body)).toContain('#EXT-X-PRELOAD-HINT');
    // The re-check of this origin is a minute: only the announcement can have woken it.
    expect(waited).toBeLessThan(1000);
    // A blocking request for the next segment (with a delta update).
    const seg = { _HLS_msn: String(parseMediaPlaylist(String(local.body)).parts.at(-1)!.msn + 1), _HLS_skip: 'YES' };
    await heldUntilPart(c, b, 'source/index.m3u8', seg, c.remote);
    await sameEverywhere(c, ['source']);
  });

  it('holds a blocking reload whose announcement was lost until the re-check finds the part', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(200);
    await c.mirror.flush();
    const list = parseMediaPlaylist(String((await same(c, 'source/index.m3u8', {}, c.rechecked)).body));
    const last = list.parts.at(-1)!;
    const q = { _HLS_msn: String(last.msn), _HLS_part: String(list.parts.filter((p) => p.msn === last.msn).length) };
    const { waited } = await heldUntilPart(c, b, 'source/index.m3u8', q, c.rechecked);
    expect(waited).toBeLessThan(HOLD_MS / 2);
  });

  it('holds the part the preload hint names until it is made, and serves its bytes', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(200);
    await c.mirror.flush();
    const text = String((await same(c, 'source/index.m3u8')).body);
    const hint = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)![1];
    const { local } = await heldUntilPart(c, b, `source/${hint}`, {}, c.remote);
    expect(local.status).toBe(200);
    expect((local.body as Uint8Array).byteLength).toBeGreaterThan(100);
    // And on the origin whose announcements are lost.
    const text2 = String((await same(c, 'source/index.m3u8', {}, c.rechecked)).body);
    const hint2 = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text2)![1];
    await heldUntilPart(c, b, `source/${hint2}`, {}, c.rechecked);
  });

  it('follows a publisher that drops and comes back, the end, and answers 404 once the window is deleted', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(200);
    b.closeSession();
    await settle();
    // Between sessions: the hint names the next session's first part; blocking requests are held briefly.
    await sameEverywhere(c, ['source']);
    b.publish();
    await b.frames(150);
    const text = String((await sameEverywhere(c, ['source']), await same(c, 'source/index.m3u8')).body);
    expect(text).toContain('#EXT-X-DISCONTINUITY');
    c.hub.end('s1', 'test');
    await settle();
    await c.mirror.flush();
    const ended = await same(c, 'source/index.m3u8', { _HLS_msn: '9999' });
    expect(String(ended.body)).toContain('#EXT-X-ENDLIST');
    await same(c, 'master.m3u8');
    // After the ended run's retention the packager lets it go, and the mirror deletes its window.
    for (let i = 0; i < 100 && c.packager.get('s1'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(c.packager.get('s1')).toBeUndefined();
    await c.mirror.flush();
    expect(c.mirror.counters.deleted).toBe(1);
    await new Promise((r) => setTimeout(r, 60)); // past docMaxAgeMs
    for (const path of ['master.m3u8', 'source/index.m3u8']) {
      const res = await same(c, path);
      expect(res.status).toBe(404);
    }
    expect(c.announced.size).toBe(0);
  });

  it('serves from the local packager when it has the stream, else from the store', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(120);
    await c.mirror.flush();
    const remote = new RemotePackages({ store: c.store, logger: silentLogger, maxHeldRequests: 10 });
    closers.push(() => remote.close());
    const both = new LocalFirstPackages(c.packager, remote);
    expect(both.get('s1')).toBe(c.packager.get('s1'));
    expect(await both.get('other')).toBeUndefined();
    expect(await remote.get('s1')).toBeDefined();
  });

  it('keeps what is made before the lease is held (the init, the first parts, the document) and writes it once it is', async () => {
    const lease: { epoch?: number } = {};
    const c = cluster(() => lease.epoch);
    const b = new Broadcast(c);
    await b.frames(90);
    await new Promise((r) => setTimeout(r, 250));
    expect((await c.remote.handle('s1', 'master.m3u8', {})).status).toBe(404);
    lease.epoch = 1;
    await new Promise((r) => setTimeout(r, 300));
    await c.mirror.flush();
    const master = await c.remote.handle('s1', 'master.m3u8', {});
    expect(master.status).toBe(200);
    expect(master.body).toBe((await c.local.handle('s1', 'master.m3u8', {})).body);
    const playlist = String((await c.local.handle('s1', 'source/index.m3u8', {})).body);
    const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(playlist)![1];
    expect((await c.remote.handle('s1', `source/${init}`, {})).status).toBe(200);
    expect(String((await c.remote.handle('s1', 'source/index.m3u8', {})).body)).toBe(playlist);
  });

  it('a listed part whose read joined one begun before it was stored is read again, not answered 404', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(60);
    await c.mirror.flush();
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(String((await c.local.handle('s1', 'source/index.m3u8', {})).body))![1];
    // Every file read answers what the store held when it began, 150 ms later.
    const slow = new LossyStore(c.store.inner);
    slow.getFile = async (st, r, n) => {
      const held = await c.store.inner.getFile(st, r, n);
      await new Promise((res) => setTimeout(res, 150));
      return held;
    };
    const remote = new RemotePackages({ store: slow, logger: silentLogger, maxHeldRequests: 10, recheckMs: 20, docMaxAgeMs: 10 });
    closers.push(() => remote.close());
    const origin = new LiveOrigin(remote, { holdMs: 3000, startupWaitMs: 2000 });
    expect((await origin.handle('s1', 'source/index.m3u8', {})).status).toBe(200);
    // A viewer asks for the hinted part before it exists: its read is in flight (and will say "none")...
    const early = origin.handle('s1', `source/${hint}`, {});
    await new Promise((res) => setTimeout(res, 10));
    // ...the part is made, stored and listed meanwhile, and a second viewer asks for it as a listed part.
    await b.frames(12);
    await c.mirror.flush();
    expect(String((await c.local.handle('s1', 'source/index.m3u8', {})).body)).toContain(hint);
    const late = await origin.handle('s1', `source/${hint}`, {});
    expect(late.status).toBe(200);
    expect((await early).status).toBe(200);
  });

  it('answers 503 with Retry-After while the store does not answer', async () => {
    const c = cluster();
    const b = new Broadcast(c);
    await b.frames(120);
    await c.mirror.flush();
    const down = new LossyStore(c.store.inner);
    down.getStream = () => Promise.reject(new Error('connection refused'));
    const remote = new RemotePackages({ store: down, logger: silentLogger, maxHeldRequests: 10 });
    closers.push(() => remote.close());
    const res = await new LiveOrigin(remote, { holdMs: 100, startupWaitMs: 100 }).handle('s1', 'source/index.m3u8', {});
    expect(res.status).toBe(503);
    expect(String(res.body)).toMatch(/^E_CLOSED: /);
    expect(res.headers['retry-after']).toBe('1');
  });

  it('drops and counts writes when the store does not keep up, and never slows the packager', async () => {
    const c = cluster();
    const slow = new LossyStore(new MemoryWindowStore());
    const never = new Promise<boolean>(() => {});
    slow.putFile = () => never;
    const mirror = new WindowMirror({
      store: slow,
      logger: silentLogger,
      epochOf: () => 1,
      ttlMs: 60_000,
      maxQueuedBytes: 20_000,
      writeTimeoutMs: 50,
    });
    c.packager.watch(mirror);
    const b = new Broadcast(c);
    await b.frames(300);
    expect(c.packager.get('s1')!.rendition('source')!.hasSegments).toBe(true);
    expect(mirror.counters.dropped).toBeGreaterThan(0);
    await mirror.close(10);
  });
});
