/**
 * A run handed over between ingest nodes is one VOD asset: two Recorders (node A and node B) on one
 * catalog and one store, driven as their packagers would drive them when the publisher moves from A to B
 * and B continues A's run (the same run id, the media sequence going on, a new session with a
 * discontinuity). B adopts A's open video; A's end (its stream ended when B took it) leaves it to B, and
 * so does any sweep while B heartbeats it; B's end finalizes it over both sides. Without a handover,
 * nothing changes. On embedded PGlite and on a real PostgreSQL.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret, newStreamKey, silentLogger, type TrackSet } from '../../src/core/index.js';
import { openCatalog, type Catalog, type StreamRecord } from '../../src/catalog/index.js';
import type { CompletedSegment } from '../../src/packager/index.js';
import { FsStorage } from '../../src/storage/fs.js';
import { Recorder } from '../../src/vod/recording/index.js';
import { assetKey } from '../../src/vod/assets.js';
import { pgliteBackend, postgresBackend, skipPostgres, type Backend } from '../helpers/catalog.js';
import { until } from '../helpers/server.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const AVCC = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: AVCC, width: 640, height: 360, frameRate: 30 },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: hex('1190'), sampleRate: 48_000, channels: 2 },
};
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);

/** Segment `msn` of publish session `session` of run `runId`, named as the packager names them. */
function segment(runId: string, session: number, msn: number, discontinuity = false): CompletedSegment {
  const prefix = `${runId}s${session}`;
  const bytes = Buffer.from(`media ${prefix} ${msn}`);
  return {
    msn,
    uri: `${prefix}_${msn}.m4s`,
    initUri: `${prefix}_init.mp4`,
    init: Buffer.from(`init ${prefix}`),
    parts: [bytes],
    bytes: () => bytes,
    duration: 2,
    discontinuity,
    gap: false,
    independent: true,
    programDateTime: WALL + msn * 2000,
    tracks: TRACKS,
  };
}

function handoverSuite(makeBackend: () => Backend): void {
  const backend = makeBackend();
  let catalog: Catalog;
  let store: FsStorage;
  let storeDir = '';
  let stream: StreamRecord;
  const recorders: Recorder[] = [];
  const recorder = (nodeId: string, staleAfterMs?: number) => {
    const r = new Recorder({ catalog, store, ffmpegPath: undefined, logger: silentLogger, nodeId, staleAfterMs });
    recorders.push(r);
    return r;
  };
  const runVideos = async (runId: string) =>
    (await catalog.videos.list({ limit: 100, streamId: stream.id })).items.filter((v) => v.runId === runId);
  const journaled = (videoId: string, n: number) =>
    until(async () => (await catalog.videos.segments(videoId)).length >= n || undefined, 10_000, 20);

  beforeAll(async () => {
    await backend.setup();
    catalog = await openCatalog(backend.options());
    storeDir = await mkdtemp(join(tmpdir(), 'livepack-rec-handover-'));
    store = new FsStorage(storeDir);
    stream = await catalog.createStream({ name: 'handed over', profile: 'passthrough', keyHash: hashSecret(newStreamKey()) });
  }, 60_000);
  afterAll(async () => {
    for (const r of recorders) await r.close();
    await catalog?.close();
    await backend.teardown();
    await rm(storeDir, { recursive: true, force: true });
  });

  it('a run continued on node B is one video: B adopts it, A leaves it, B finalizes both sides with the seam', async () => {
    const a = recorder('node-a');
    const b = recorder('node-b');
    const runId = 'runhandover1';
    a.runStart(stream.id, runId);
    for (let msn = 0; msn < 3; msn++) a.segment(stream.id, runId, 'source', segment(runId, 1, msn));
    const [video] = await until(async () => {
      const v = await runVideos(runId);
      return v.length === 1 ? v : undefined;
    }, 10_000);
    expect(video.nodeId).toBe('node-a');
    await journaled(video.id, 3);

    // The publisher comes back on B, whose packager continues the run: msn 3 on, a new session, the seam.
    b.runStart(stream.id, runId);
    for (let msn = 3; msn < 5; msn++) b.segment(stream.id, runId, 'source', segment(runId, 2, msn, msn === 3));
    await journaled(video.id, 5);
    const adopted = await catalog.videos.get(video.id);
    expect(adopted).toMatchObject({ status: 'live', type: 'live', nodeId: 'node-b' });
    expect(b.activeRuns()).toEqual([{ videoId: video.id, streamId: stream.id, runId }]);

    // A's stream ended when B took it: its run ends there, and the video is left to B.
    a.runEnd(stream.id, runId, 'ended');
    await a.close();
    expect(a.counters.finalized).toBe(0);
    expect(await catalog.videos.get(video.id)).toMatchObject({ status: 'live', type: 'live', nodeId: 'node-b' });
    // A restarted (its own runs are finished at once) and a sweep elsewhere both leave B's heartbeated run.
    expect(await recorder('node-a').recover()).toBe(0);
    const sweeper = recorder('node-c');
    await sweeper.recover();
    await sweeper.close();
    expect(await catalog.videos.get(video.id)).toMatchObject({ status: 'live', nodeId: 'node-b' });

    // B's end is the run's end: one VOD asset over A's and B's segments, a discontinuity at the seam.
    b.runEnd(stream.id, runId, 'ended');
    await b.close();
    expect(b.counters.finalized).toBe(1);
    const videos = await runVideos(runId);
    expect(videos.map((v) => v.id)).toEqual([video.id]);
    expect(videos[0]).toMatchObject({ type: 'vod', status: 'ready', nodeId: 'node-b', duration: 10 });
    const playlist = (await store.getBuffer(assetKey(video.id, 'source/index.m3u8')))!.toString();
    const uris = playlist.split('\n').filter((l) => l.endsWith('.m4s'));
    expect(uris).toEqual([0, 1, 2].map((m) => `${runId}s1_${m}.m4s`).concat([3, 4].map((m) => `${runId}s2_${m}.m4s`)));
    expect(playlist.match(/#EXT-X-DISCONTINUITY\n/g)?.length).toBe(1);
    expect(playlist).toMatch(new RegExp(`#EXT-X-DISCONTINUITY\\n(#[^\\n]*\\n)*#EXTINF:[^\\n]*\\n${runId}s2_3\\.m4s`));
    expect(playlist.match(/#EXT-X-MAP/g)?.length).toBe(2);
    // Both sessions' inits and every segment are in the asset's storage.
    for (const name of [`${runId}s1_init.mp4`, `${runId}s2_init.mp4`, ...uris]) {
      expect(await store.head(assetKey(video.id, `source/${name}`)), name).toBeDefined();
    }
  }, 60_000);

  it('without a handover nothing changes: each run is its own video, finalized by its node', async () => {
    const a = recorder('node-a');
    const b = recorder('node-b');
    a.runStart(stream.id, 'runplain1');
    b.runStart(stream.id, 'runplain2');
    for (let msn = 0; msn < 2; msn++) {
      a.segment(stream.id, 'runplain1', 'source', segment('runplain1', 1, msn));
      b.segment(stream.id, 'runplain2', 'source', segment('runplain2', 1, msn));
    }
    const [one] = await until(async () => ((await runVideos('runplain1')).length === 1 ? runVideos('runplain1') : undefined), 10_000);
    const [two] = await until(async () => ((await runVideos('runplain2')).length === 1 ? runVideos('runplain2') : undefined), 10_000);
    expect(one.id).not.toBe(two.id);
    await journaled(one.id, 2);
    await journaled(two.id, 2);
    a.runEnd(stream.id, 'runplain1', 'ended');
    b.runEnd(stream.id, 'runplain2', 'ended');
    await a.close();
    await b.close();
    expect(await catalog.videos.get(one.id)).toMatchObject({ status: 'ready', nodeId: 'node-a', duration: 4 });
    expect(await catalog.videos.get(two.id)).toMatchObject({ status: 'ready', nodeId: 'node-b', duration: 4 });
    expect(a.counters.finalized).toBe(1);
    expect(b.counters.finalized).toBe(1);
  }, 60_000);

  it('catalog: adoption takes an open run (live, or being finalized) in one statement; finishing steps are conditional', async () => {
    const base = { type: 'live', source: 'recording', streamId: stream.id, title: 'run', status: 'live', recording: true } as const;
    expect(await catalog.videos.adoptRun('no-such-run', 'node-b')).toBeUndefined();
    // Being finalized by the node it left (the end raced the handover): live again, the adopter's.
    const racing = await catalog.videos.create({ ...base, runId: 'runrace', nodeId: 'node-a' });
    await catalog.videos.update(racing.id, { type: 'vod', status: 'processing', endedAt: new Date() }, { onlyNode: 'node-a' });
    expect(await catalog.videos.adoptRun('runrace', 'node-b')).toMatchObject({
      id: racing.id,
      type: 'live',
      status: 'live',
      nodeId: 'node-b',
      endedAt: null,
    });
    // The old node's steps no longer apply; the adopter's do.
    expect(await catalog.videos.update(racing.id, { status: 'ready' }, { onlyNode: 'node-a' })).toBeUndefined();
    expect(await catalog.videos.delete(racing.id, { onlyNode: 'node-a' })).toBe(false);
    // A sweep that listed it as abandoned before the adoption does not take it after.
    expect(await catalog.videos.claimAbandoned(racing.id, 'node-c', new Date(Date.now() - 60_000))).toBeUndefined();
    expect(await catalog.videos.update(racing.id, { status: 'ready', type: 'vod' }, { onlyNode: 'node-b' })).toMatchObject({
      status: 'ready',
    });
    // Finalized already: nothing to adopt (a new video is made).
    expect(await catalog.videos.adoptRun('runrace', 'node-c')).toBeUndefined();
  });
}

describe('recording handover on PGlite', () => handoverSuite(pgliteBackend));
describe.skipIf(skipPostgres)('recording handover on PostgreSQL', () => handoverSuite(postgresBackend));
