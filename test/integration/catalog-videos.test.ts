/**
 * The video catalog (videos, recorded segments, viewing history, full-text search) on both databases:
 * embedded PGlite and a real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret, newStreamKey } from '../../src/core/index.js';
import { openCatalog } from '../../src/catalog/index.js';
import type { Catalog, VideoRecord } from '../../src/catalog/index.js';
import { pgliteBackend, postgresBackend, skipPostgres, type Backend } from '../helpers/catalog.js';

function videoSuite(makeBackend: () => Backend): void {
  const backend = makeBackend();
  let catalog: Catalog;

  beforeAll(async () => {
    await backend.setup();
    catalog = await openCatalog(backend.options());
  }, 60_000);
  afterAll(async () => {
    await catalog?.close();
    await backend.teardown();
  });

  it('creates, reads, updates and deletes a video; segments and views go with it', async () => {
    const v = await catalog.videos.create({
      type: 'vod',
      source: 'upload',
      title: 'Trailer',
      status: 'uploading',
      upload: { filename: 't.mp4', size: 1234 },
    });
    expect(v).toMatchObject({
      type: 'vod',
      source: 'upload',
      title: 'Trailer',
      description: '',
      visibility: 'public',
      status: 'uploading',
      progress: 0,
      duration: null,
      renditions: [],
      thumbnail: false,
      upload: { filename: 't.mp4', size: 1234 },
    });
    expect(await catalog.videos.get(v.id)).toEqual(v);
    const renditions = [{ name: 'source', codecs: 'avc1.64001f,mp4a.40.2', bandwidth: 1_000_000, width: 1280, height: 720, frameRate: 30 }];
    const u = await catalog.videos.update(v.id, {
      status: 'ready',
      progress: 250,
      duration: 12.5,
      renditions,
      thumbnail: true,
      endedAt: new Date(1_700_000_000_000),
    });
    expect(u).toMatchObject({
      status: 'ready',
      progress: 100,
      duration: 12.5,
      renditions,
      thumbnail: true,
      endedAt: new Date(1_700_000_000_000),
    });
    expect(u!.updatedAt.getTime()).toBeGreaterThanOrEqual(v.updatedAt.getTime());
    await catalog.videos.addSegment(v.id, {
      rendition: 'source',
      msn: 1,
      uri: 'a_1.m4s',
      initUri: 'a_init.mp4',
      duration: 2,
      discontinuity: false,
      gap: false,
      bytes: 100,
      programDateTime: new Date(1000),
    });
    await catalog.videos.addSegment(v.id, {
      rendition: 'source',
      msn: 0,
      uri: 'a_0.m4s',
      initUri: 'a_init.mp4',
      duration: 2.002,
      discontinuity: true,
      gap: false,
      bytes: 90,
      programDateTime: null,
    });
    // The same segment again (a retried write) is ignored.
    await catalog.videos.addSegment(v.id, {
      rendition: 'source',
      msn: 0,
      uri: 'other.m4s',
      initUri: 'x',
      duration: 9,
      discontinuity: false,
      gap: true,
      bytes: 1,
      programDateTime: null,
    });
    const segs = await catalog.videos.segments(v.id);
    expect(segs.map((s) => [s.msn, s.uri, s.duration, s.discontinuity])).toEqual([
      [0, 'a_0.m4s', 2.002, true],
      [1, 'a_1.m4s', 2, false],
    ]);
    expect(segs[1].programDateTime).toEqual(new Date(1000));
    await catalog.videos.recordView(v.id, { viewerId: 'viewer-aaaa', position: 3, startupMs: 500 });
    expect(await catalog.videos.delete(v.id)).toBe(true);
    expect(await catalog.videos.get(v.id)).toBeUndefined();
    expect(await catalog.videos.segments(v.id)).toEqual([]);
    expect(await catalog.videos.delete(v.id)).toBe(false);
  });

  it('journals the segments of several videos and renditions in one call, keeping rows already there', async () => {
    const a = await catalog.videos.create({ type: 'live', source: 'recording', title: 'a', status: 'live', recording: true });
    const b = await catalog.videos.create({ type: 'live', source: 'recording', title: 'b', status: 'live', recording: true });
    const seg = (rendition: string, msn: number, bytes: number) => ({
      rendition,
      msn,
      uri: `${rendition}_${msn}.m4s`,
      initUri: `${rendition}_init.mp4`,
      duration: 2,
      discontinuity: false,
      gap: false,
      bytes,
      programDateTime: new Date(2000 * msn),
      independent: msn !== 7,
    });
    await catalog.videos.addSegment(a.id, seg('source', 7, 1));
    await catalog.videos.addSegments([
      { videoId: a.id, segment: seg('source', 7, 999) }, // already there: kept as it was
      { videoId: a.id, segment: seg('480p', 7, 2) },
      { videoId: b.id, segment: seg('source', 3, 3) },
      { videoId: a.id, segment: seg('source', 8, 4) },
    ]);
    await catalog.videos.addSegments([]);
    const rows = (segs: Awaited<ReturnType<typeof catalog.videos.segments>>) =>
      segs.map((s) => [s.rendition, s.msn, s.bytes, s.independent]);
    expect(rows(await catalog.videos.segments(a.id))).toEqual([
      ['480p', 7, 2, false],
      ['source', 7, 1, false],
      ['source', 8, 4, true],
    ]);
    expect(rows(await catalog.videos.segments(b.id))).toEqual([['source', 3, 3, true]]);
  });

  it('describes renditions one at a time without losing one described at the same moment', async () => {
    const v = await catalog.videos.create({ type: 'live', source: 'recording', title: 'run', status: 'live', recording: true });
    const r = (name: string, height: number) => ({ name, codecs: 'avc1.42c01e', bandwidth: 0, height });
    await Promise.all([
      catalog.videos.putRendition(v.id, r('source', 720)),
      catalog.videos.putRendition(v.id, r('360p', 360)),
      catalog.videos.putRendition(v.id, r('180p', 180)),
    ]);
    await catalog.videos.putRendition(v.id, r('360p', 362));
    const got = (await catalog.videos.get(v.id))!.renditions;
    expect(got.map((x) => `${x.name}:${x.height}`).sort()).toEqual(['180p:180', '360p:362', 'source:720']);
  });

  it('tells runs left open by a gone origin from runs another origin still heartbeats', async () => {
    const mk = (nodeId: string | null) =>
      catalog.videos.create({ type: 'live', source: 'recording', title: 'open run', status: 'live', recording: true, nodeId });
    const mine = await mk('node-a');
    const fresh = await mk('node-b');
    const stale = await mk('node-c');
    const legacy = await mk(null);
    const done = await mk('node-a');
    await catalog.videos.update(done.id, { type: 'vod', status: 'ready' });
    const now = Date.now();
    await catalog.videos.heartbeat([fresh.id], new Date(now));
    await catalog.videos.heartbeat([stale.id], new Date(now - 120_000));
    const open = (await catalog.videos.abandonedRuns('node-a', new Date(now - 60_000))).map((v) => v.id);
    expect(open).toContain(mine.id);
    expect(open).toContain(stale.id);
    expect(open).toContain(legacy.id);
    expect(open).not.toContain(fresh.id);
    expect(open).not.toContain(done.id);
    expect((await catalog.videos.get(fresh.id))!.heartbeatAt).toEqual(new Date(now));
  });

  it('refuses values the schema forbids', async () => {
    await expect(catalog.videos.create({ type: 'vod', source: 'upload', title: '', status: 'queued' })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    await expect(catalog.videos.create({ type: 'vod', source: 'upload', title: 'x', status: 'nonsense' as never })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
  });

  it('lists newest first with filters and exact cursor pages', async () => {
    const stream = await catalog.createStream({ name: 's', profile: 'passthrough', keyHash: hashSecret(newStreamKey()) });
    const made: VideoRecord[] = [];
    for (let i = 0; i < 7; i++) {
      made.push(
        await catalog.videos.create({
          type: i % 2 ? 'live' : 'vod',
          source: 'recording',
          streamId: stream.id,
          title: `run ${i}`,
          status: i % 2 ? 'live' : 'ready',
          visibility: i === 4 ? 'private' : 'public',
        }),
      );
    }
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await catalog.videos.list({ limit: 3, cursor, streamId: stream.id });
      all.push(...page.items.map((v) => v.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    // Newest first; rows made in the same millisecond follow their ids, highest first.
    const expected = [...made].sort((x, y) => y.createdAt.getTime() - x.createdAt.getTime() || (x.id < y.id ? 1 : -1)).map((v) => v.id);
    expect(all).toEqual(expected);
    const vods = await catalog.videos.list({ limit: 100, streamId: stream.id, type: 'vod', status: 'ready' });
    expect(vods.items.map((v) => v.title).sort()).toEqual(['run 0', 'run 2', 'run 4', 'run 6']);
    const publicOnly = await catalog.videos.list({ limit: 100, streamId: stream.id, visibility: ['public'] });
    expect(publicOnly.items.map((v) => v.title)).not.toContain('run 4');
    await expect(catalog.videos.list({ limit: 3, cursor: 'not-a-cursor!' })).rejects.toMatchObject({ code: 'E_VALIDATION' });
    expect((await catalog.videos.withStatus(['live'])).filter((v) => v.streamId === stream.id)).toHaveLength(3);
    // Deleting the stream keeps its recordings, without the link.
    await catalog.deleteStream(stream.id);
    expect((await catalog.videos.get(made[0].id))!.streamId).toBeNull();
  });

  it('full-text search ranks title above description, stems words and respects visibility', async () => {
    const a = await catalog.videos.create({
      type: 'vod',
      source: 'upload',
      title: 'Mountain biking downhill',
      description: 'fast descent',
      status: 'ready',
    });
    const b = await catalog.videos.create({
      type: 'vod',
      source: 'upload',
      title: 'Cooking show',
      description: 'we talk about mountain herbs',
      status: 'ready',
    });
    const c = await catalog.videos.create({
      type: 'vod',
      source: 'upload',
      title: 'Secret mountains',
      status: 'ready',
      visibility: 'private',
    });
    const hits = await catalog.videos.search({ q: 'mountain', limit: 10 });
    expect(
      hits
        .map((v) => v.id)
        .slice(0, 3)
        .sort(),
    ).toEqual([a.id, b.id, c.id].sort());
    expect(hits.findIndex((v) => v.id === a.id)).toBeLessThan(hits.findIndex((v) => v.id === b.id));
    expect((await catalog.videos.search({ q: 'mountain', limit: 10, visibility: ['public'] })).map((v) => v.id)).not.toContain(c.id);
    expect((await catalog.videos.search({ q: 'bikes', limit: 10 })).map((v) => v.id)).toEqual([a.id]);
    expect((await catalog.videos.search({ q: 'mountain -cooking', limit: 10 })).map((v) => v.id)).not.toContain(b.id);
    // Search syntax from outside never breaks the query.
    expect(await catalog.videos.search({ q: `'"):*&|!(`, limit: 10 })).toEqual([]);
    // An edit is searchable at once (generated column).
    await catalog.videos.update(b.id, { title: 'Volcano tour' });
    expect((await catalog.videos.search({ q: 'volcano', limit: 10 })).map((v) => v.id)).toEqual([b.id]);
  });

  it('keeps one viewing entry per viewer with its latest position and growing counters', async () => {
    const v = await catalog.videos.create({ type: 'vod', source: 'upload', title: 'watched', status: 'ready' });
    await catalog.videos.recordView(v.id, { viewerId: 'viewer-1111', position: 1, startupMs: 700, bitrateKbps: 800 }, new Date(10_000));
    await catalog.videos.recordView(
      v.id,
      { viewerId: 'viewer-1111', position: 11, startupMs: 9999, rebuffers: 2, rebufferMs: 400 },
      new Date(20_000),
    );
    await catalog.videos.recordView(v.id, { viewerId: 'viewer-2222', position: 5 }, new Date(15_000));
    const views = await catalog.videos.views(v.id, 10);
    expect(views.map((w) => w.viewerId)).toEqual(['viewer-1111', 'viewer-2222']);
    expect(views[0]).toMatchObject({
      position: 11,
      startupMs: 700,
      rebuffers: 2,
      rebufferMs: 400,
      bitrateKbps: 800,
      beacons: 2,
      startedAt: new Date(10_000),
      updatedAt: new Date(20_000),
    });
    await expect(catalog.videos.recordView('missing-video-id', { viewerId: 'viewer-1111', position: 1 })).rejects.toMatchObject({
      code: 'E_CONFLICT',
    });
  });
}

describe('video catalog on PGlite', () => videoSuite(pgliteBackend));
describe.skipIf(skipPostgres)('video catalog on PostgreSQL', () => videoSuite(postgresBackend));
