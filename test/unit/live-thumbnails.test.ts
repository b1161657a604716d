/**
 * The bounds of LiveThumbnails (one image per stream, no second cut of a stream while one runs, at most
 * maxConcurrent at once, no cut of a keyframe already cut, a size cap, nothing kept after the end) with a
 * fake cutter and keyframe source on fake timers; and which part of which rendition a keyframe comes from.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type TrackSet } from '../../src/core/index.js';
import { LiveThumbnails } from '../../src/vod/recording/live-thumbnails.js';
import {
  keyframesFromPackager,
  pickRendition,
  type KeyframeClip,
  type LiveKeyframes,
  type LiveRenditionView,
} from '../../src/vod/recording/live-keyframes.js';

const INTERVAL = 10_000;

/** A keyframe source whose newest keyframe per stream the test sets. */
function fakeKeyframes() {
  const clips = new Map<string, KeyframeClip>();
  const source: LiveKeyframes = { latest: async (id) => clips.get(id) };
  const set = (id: string, n: number) =>
    clips.set(id, { id: `${id}-k${n}`, rendition: 'source', init: new Uint8Array(8), media: new Uint8Array(16) });
  return { source, set };
}

/** A cutter whose runs the test finishes by hand. */
function manualCutter() {
  const runs: Array<{ clip: KeyframeClip; signal: AbortSignal; finish: (bytes?: Buffer) => void; fail: (err: Error) => void }> = [];
  const cut = (clip: KeyframeClip, signal: AbortSignal) =>
    new Promise<Buffer>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      runs.push({ clip, signal, finish: (bytes) => resolve(bytes ?? Buffer.from(clip.id)), fail: reject });
    });
  return { cut, runs };
}

describe('LiveThumbnails', () => {
  let hub: EventEmitter;
  let kf: ReturnType<typeof fakeKeyframes>;
  let cutter: ReturnType<typeof manualCutter>;
  let thumbs: LiveThumbnails;

  beforeEach(async () => {
    vi.useFakeTimers();
    hub = new EventEmitter();
    kf = fakeKeyframes();
    cutter = manualCutter();
    thumbs = new LiveThumbnails({
      streams: hub,
      keyframes: kf.source,
      cut: cutter.cut,
      intervalMs: INTERVAL,
      maxConcurrent: 2,
      maxBytes: 100,
      logger: silentLogger,
    });
    await thumbs.start();
  });
  afterEach(async () => {
    await thumbs.close();
    vi.useRealTimers();
  });

  it('cuts a stream once its first keyframe exists, keeps one image, and replaces it every interval', async () => {
    hub.emit('stream-start', 'a');
    await vi.advanceTimersByTimeAsync(3000);
    expect(cutter.runs).toHaveLength(0); // no keyframe yet: nothing to cut
    kf.set('a', 1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(cutter.runs).toHaveLength(1);
    cutter.runs[0].finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(thumbs.get('a')?.bytes.toString()).toBe('a-k1');
    expect(thumbs.has('a')).toBe(true);
    const etag = thumbs.get('a')!.etag;
    kf.set('a', 2);
    await vi.advanceTimersByTimeAsync(INTERVAL - 2000);
    expect(cutter.runs).toHaveLength(1); // not before the interval
    await vi.advanceTimersByTimeAsync(2000);
    expect(cutter.runs).toHaveLength(2);
    cutter.runs[1].finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(thumbs.get('a')?.bytes.toString()).toBe('a-k2');
    expect(thumbs.get('a')!.etag).not.toBe(etag);
    expect(thumbs.counters.cuts).toBe(2);
  });

  it('never runs a second cut of a stream while one runs, and at most maxConcurrent over all streams', async () => {
    for (const id of ['a', 'b', 'c']) {
      hub.emit('stream-start', id);
      kf.set(id, 1);
    }
    await vi.advanceTimersByTimeAsync(1000);
    expect(cutter.runs.map((r) => r.clip.id)).toEqual(['a-k1', 'b-k1']);
    kf.set('a', 2);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    // 'a' and 'b' are still cutting: neither is cut again, and 'c' waits for a free slot.
    expect(cutter.runs).toHaveLength(2);
    expect(thumbs.counters.deferred).toBeGreaterThan(0);
    expect(thumbs.stats()).toEqual({ streams: 3, running: 2 });
    cutter.runs[0].finish();
    await vi.advanceTimersByTimeAsync(1000);
    expect(cutter.runs.map((r) => r.clip.id)).toEqual(['a-k1', 'b-k1', 'c-k1']);
  });

  it('does not cut the keyframe it cut last time (a publisher away), nor keep an image over maxBytes', async () => {
    hub.emit('stream-start', 'a');
    kf.set('a', 1);
    await vi.advanceTimersByTimeAsync(1000);
    cutter.runs[0].finish();
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(cutter.runs).toHaveLength(1);
    expect(thumbs.counters.unchanged).toBe(3);
    kf.set('a', 2);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    cutter.runs[1].finish(Buffer.alloc(101));
    await vi.advanceTimersByTimeAsync(0);
    expect(thumbs.counters.oversized).toBe(1);
    expect(thumbs.get('a')?.bytes.toString()).toBe('a-k1'); // the last one within the cap stays
  });

  it('a failed cut keeps the last image and tries the next keyframe at the next interval', async () => {
    hub.emit('stream-start', 'a');
    kf.set('a', 1);
    await vi.advanceTimersByTimeAsync(1000);
    cutter.runs[0].fail(new Error('ffmpeg exited with 1'));
    await vi.advanceTimersByTimeAsync(0);
    expect(thumbs.counters.failures).toBe(1);
    expect(thumbs.has('a')).toBe(false);
    kf.set('a', 2);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(cutter.runs).toHaveLength(2);
  });

  it('drops the image when the stream ends, stops its cut, and keeps nothing a late cut makes', async () => {
    hub.emit('stream-start', 'a');
    kf.set('a', 1);
    await vi.advanceTimersByTimeAsync(1000);
    cutter.runs[0].finish();
    await vi.advanceTimersByTimeAsync(0);
    kf.set('a', 2);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    const running = cutter.runs[1];
    hub.emit('stream-end', 'a', 'ended');
    expect(thumbs.get('a')).toBeUndefined();
    expect(running.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(cutter.runs).toHaveLength(2);
    expect(thumbs.stats()).toEqual({ streams: 0, running: 0 });
    // The same id live again starts afresh.
    hub.emit('stream-start', 'a');
    await vi.advanceTimersByTimeAsync(1000);
    cutter.runs[2].finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(thumbs.get('a')?.bytes.toString()).toBe('a-k2');
  });

  it('close() stops the cuts in progress, waits for them and forgets every stream; it is idempotent', async () => {
    hub.emit('stream-start', 'a');
    kf.set('a', 1);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([thumbs.close(), thumbs.close()]);
    expect(cutter.runs[0].signal.aborted).toBe(true);
    expect(thumbs.stats()).toEqual({ streams: 0, running: 0 });
    expect(hub.listenerCount('stream-start') + hub.listenerCount('stream-end')).toBe(0);
  });
});

/** A live rendition as the packager shows it: parts listed by name, some with bytes still in memory. */
function rendition(
  name: string,
  tracks: TrackSet,
  files: Record<string, string>,
  state: ReturnType<LiveRenditionView['state']>,
  live = true,
): LiveRenditionView {
  return {
    name,
    tracks,
    live,
    ended: false,
    state: () => state,
    file: async (n) => (n in files ? { bytes: Buffer.from(files[n]) } : undefined),
  };
}

const video = (width: number, height: number): TrackSet => ({
  video: { kind: 'video', codec: 'h264', codecPrivate: new Uint8Array(0), width, height, frameRate: 30 },
});

describe('keyframes of a live stream', () => {
  it('come from the lowest running rendition with video', () => {
    const state = { segments: [] };
    const source = rendition('source', video(1280, 720), {}, state);
    const low = rendition('360p', video(640, 360), {}, state);
    const stopped = rendition('180p', video(320, 180), {}, state, false);
    const audio = rendition('audio', {}, {}, state);
    expect(pickRendition([source, low, stopped, audio])?.name).toBe('360p');
    expect(pickRendition([source, stopped])?.name).toBe('source');
    expect(pickRendition([audio])).toBeUndefined();
  });

  it('are the newest independent part with its init, else a whole segment whose part bytes are gone', async () => {
    const part = (uri: string, independent: boolean) => ({ uri, independent });
    const state = {
      segments: [
        { uri: 's1.m4s', initUri: 'i1.mp4', parts: [part('p0', true), part('p1', false)] },
        { uri: 's2.m4s', initUri: 'i2.mp4', parts: [part('p2', true), part('p3', false), part('p4', true)] },
      ],
      pending: { initUri: 'i2.mp4', parts: [part('p5', false)] },
    };
    const files = { 'i1.mp4': 'INIT1', 'i2.mp4': 'INIT2', p4: 'PART4', p5: 'PART5', 's1.m4s': 'SEG1' };
    const packages = (r: LiveRenditionView) => keyframesFromPackager({ get: (id) => (id === 'x' ? { renditions: [r] } : undefined) });
    const clip = await packages(rendition('source', video(640, 360), files, state)).latest('x');
    expect(clip && { id: clip.id, init: Buffer.from(clip.init).toString(), media: Buffer.from(clip.media).toString() }).toEqual({
      id: 'p4',
      init: 'INIT2',
      media: 'PART4',
    });
    // p4 and p2 no longer in memory (parts far from the edge): segment s1 whole, from its keyframe.
    const older = { 'i1.mp4': 'INIT1', 's1.m4s': 'SEG1' };
    const whole = await packages(rendition('source', video(640, 360), older, state)).latest('x');
    expect(whole && { id: whole.id, init: Buffer.from(whole.init).toString(), media: Buffer.from(whole.media).toString() }).toEqual({
      id: 's1.m4s',
      init: 'INIT1',
      media: 'SEG1',
    });
    expect(await packages(rendition('source', video(640, 360), files, state)).latest('other')).toBeUndefined();
  });
});
