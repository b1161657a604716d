/**
 * The recorder while storage fails: a Recorder on an embedded catalog and a store on files that refuses
 * segment writes (E_UNAVAILABLE, as an S3 outage does) while `down`, driven as the packager drives it.
 * Writes wait and are tried again, so an outage shorter than RECORDING_STORE_RETRY_MS loses nothing, and a
 * segment's journal row is written only once its object is stored. What cannot wait (past the run's
 * pending-bytes cap, or past the retry deadline) becomes a gap: counted in failedSegments, an EXT-X-GAP in
 * the asset, and in the video's metadata (renditions[].gaps).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, hashSecret, newStreamKey, silentLogger, type TrackSet } from '../../src/core/index.js';
import { openCatalog, type Catalog, type StreamRecord } from '../../src/catalog/index.js';
import type { CompletedSegment } from '../../src/packager/index.js';
import type { ObjectStore, PutOptions } from '../../src/storage/index.js';
import { FsStorage } from '../../src/storage/fs.js';
import { Recorder } from '../../src/vod/recording/index.js';
import { assetKey } from '../../src/vod/assets.js';
import { pgliteBackend } from '../helpers/catalog.js';
import { until } from '../helpers/server.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const AVCC = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: AVCC, width: 640, height: 360, frameRate: 30 },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: hex('1190'), sampleRate: 48_000, channels: 2 },
};
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);
const SEGMENT_BYTES = 1000;

function segment(runId: string, msn: number): CompletedSegment {
  const bytes = Buffer.alloc(SEGMENT_BYTES, msn);
  return {
    msn,
    uri: `${runId}_${msn}.m4s`,
    initUri: `${runId}_init.mp4`,
    init: Buffer.from(`init ${runId}`),
    parts: [bytes],
    bytes: () => bytes,
    duration: 2,
    discontinuity: false,
    gap: false,
    independent: true,
    programDateTime: WALL + msn * 2000,
    tracks: TRACKS,
  };
}

/** Files, with media writes (.m4s, .mp4) refused while `down`; playlists and everything else pass. */
class FlakyStore {
  down = false;
  refused = 0;
  constructor(readonly inner: FsStorage) {}
  put(key: string, body: Buffer | Readable, opts?: PutOptions) {
    if (this.down && /\.(m4s|mp4)$/.test(key)) {
      this.refused++;
      return Promise.reject(new AppError('E_UNAVAILABLE', `storage: put ${key} failed: the object store does not answer`));
    }
    return this.inner.put(key, body, opts);
  }
}

function flaky(inner: FsStorage): FlakyStore & ObjectStore {
  const f = new FlakyStore(inner);
  return new Proxy(f, {
    get: (t, prop) => {
      if (prop in t) return Reflect.get(t, prop) as unknown;
      const v = Reflect.get(inner, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(inner) : v;
    },
  }) as FlakyStore & ObjectStore;
}

describe('recorder: storage that fails', () => {
  const backend = pgliteBackend();
  let catalog: Catalog;
  let storeDir = '';
  let stream: StreamRecord;

  beforeAll(async () => {
    await backend.setup();
    catalog = await openCatalog(backend.options());
    storeDir = await mkdtemp(join(tmpdir(), 'livepack-rec-retry-'));
    stream = await catalog.createStream({ name: 'flaky storage', profile: 'passthrough', keyHash: hashSecret(newStreamKey()) });
  }, 60_000);
  afterAll(async () => {
    await catalog?.close();
    await backend.teardown();
    await rm(storeDir, { recursive: true, force: true });
  });

  const runVideo = (runId: string) =>
    until(async () => (await catalog.videos.list({ limit: 100, streamId: stream.id })).items.find((v) => v.runId === runId), 10_000, 20);
  const journaled = async (videoId: string) => (await catalog.videos.segments(videoId)).length;

  /** Runs one recorder over `feed`, ends the run and returns the finalized video, its playlist and counters. */
  async function record(
    runId: string,
    opts: { maxPendingBytes?: number; storeRetryMs?: number },
    feed: (r: Recorder, store: FlakyStore) => Promise<void>,
  ) {
    const store = flaky(new FsStorage(join(storeDir, runId)));
    const recorder = new Recorder({ catalog, store, ffmpegPath: undefined, logger: silentLogger, nodeId: 'node-a', ...opts });
    try {
      recorder.runStart(stream.id, runId);
      await feed(recorder, store);
      recorder.runEnd(stream.id, runId, 'ended');
    } finally {
      await recorder.close();
    }
    const video = (await catalog.videos.list({ limit: 100, streamId: stream.id })).items.find((v) => v.runId === runId)!;
    const playlist = (await store.getBuffer(assetKey(video.id, 'source/index.m3u8')))?.toString() ?? '';
    return { video, playlist, counters: recorder.counters, store };
  }

  it('an outage shorter than the retry deadline loses nothing; rows are journaled only once their objects are stored', async () => {
    const runId = 'runoutage1';
    const { video, playlist, counters, store } = await record(runId, {}, async (r, s) => {
      const videoId = (await runVideo(runId)).id;
      r.segment(stream.id, runId, 'source', segment(runId, 0));
      await until(async () => (await journaled(videoId)) === 1 || undefined, 10_000, 20);
      s.down = true;
      for (let msn = 1; msn <= 4; msn++) r.segment(stream.id, runId, 'source', segment(runId, msn));
      // Writes fail and wait (several tries over about 2 s); nothing of theirs reaches the journal meanwhile.
      await until(() => s.refused >= 3 || undefined, 10_000, 20);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await journaled(videoId)).toBe(1);
      s.down = false;
      await until(async () => (await journaled(videoId)) === 5 || undefined, 15_000, 50);
    });
    expect(store.refused).toBeGreaterThanOrEqual(3);
    expect(counters.failedSegments).toBe(0);
    expect(counters.segments).toBe(5);
    expect(video).toMatchObject({ status: 'ready', duration: 10 });
    expect(video.renditions.map((x) => x.gaps)).toEqual([0]);
    expect(playlist).not.toContain('#EXT-X-GAP');
    for (let msn = 0; msn <= 4; msn++) expect(await store.head(assetKey(video.id, `source/${runId}_${msn}.m4s`))).toBeDefined();
  }, 60_000);

  it('past the pending-bytes cap, segments are counted gaps in the asset and in the video metadata', async () => {
    const runId = 'runoverflow1';
    const { video, playlist, counters } = await record(runId, { maxPendingBytes: 3 * SEGMENT_BYTES }, async (r, s) => {
      const videoId = (await runVideo(runId)).id;
      s.down = true;
      // Three segments fit in what the run may hold; the next five do not.
      for (let msn = 0; msn < 8; msn++) r.segment(stream.id, runId, 'source', segment(runId, msn));
      await until(() => s.refused >= 2 || undefined, 10_000, 20);
      s.down = false;
      await until(async () => (await journaled(videoId)) === 8 || undefined, 15_000, 50);
    });
    expect(counters.failedSegments).toBe(5);
    expect(counters.segments).toBe(3);
    expect(playlist.match(/#EXT-X-GAP/g)?.length).toBe(5);
    expect(video).toMatchObject({ status: 'ready', duration: 6 });
    expect(video.renditions.map((x) => x.gaps)).toEqual([5]);
  }, 60_000);

  it('storage failing for longer than the retry deadline: the segments become counted gaps', async () => {
    const runId = 'rundeadline1';
    const { video, playlist, counters } = await record(runId, { storeRetryMs: 1500 }, async (r, s) => {
      const videoId = (await runVideo(runId)).id;
      for (let msn = 0; msn < 2; msn++) r.segment(stream.id, runId, 'source', segment(runId, msn));
      await until(async () => (await journaled(videoId)) === 2 || undefined, 10_000, 20);
      s.down = true;
      for (let msn = 2; msn < 5; msn++) r.segment(stream.id, runId, 'source', segment(runId, msn));
      await until(async () => (await journaled(videoId)) === 5 || undefined, 15_000, 50);
    });
    expect(counters.failedSegments).toBe(3);
    expect(playlist.match(/#EXT-X-GAP/g)?.length).toBe(3);
    expect(video).toMatchObject({ status: 'ready', duration: 4 });
    expect(video.renditions.map((x) => x.gaps)).toEqual([3]);
  }, 60_000);
});
