import { describe, expect, it } from 'vitest';
import { TIMESCALE, msToTicks, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { Segmenter, type PartOut, type SegmenterSink } from '../../src/packager/index.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** avcC of a 640x360 Constrained Baseline stream (libx264), the same vector codecs.test.ts parses. */
const AVCC_640x360 = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
/** AudioSpecificConfig: AAC LC, 48000 Hz, stereo. */
const ASC_48000_STEREO = hex('1190');
const AAC_FRAME_TICKS = (1024 * TIMESCALE) / 48_000; // 1920
const WALL_BASE = Date.UTC(2024, 0, 1, 12, 0, 0);

const videoTrack = (fps: number) =>
  ({ kind: 'video', codec: 'h264', codecPrivate: AVCC_640x360, width: 640, height: 360, frameRate: fps }) as const;
const audioTrack = { kind: 'audio', codec: 'aac', codecPrivate: ASC_48000_STEREO, sampleRate: 48_000, channels: 2 } as const;

/** One 4-byte length-prefixed NAL unit: IDR slice (type 5) or non-IDR slice (type 1). */
function nal(keyframe: boolean, n: number): Uint8Array {
  const body = [keyframe ? 0x65 : 0x41, 0x88, n & 0xff, (n >> 8) & 0xff, 0x00, 0x11];
  return Uint8Array.from([0, 0, 0, body.length, ...body]);
}

interface GenOptions {
  readonly fps: number;
  /** Keyframe every this many video frames. */
  readonly gop: number;
  readonly videoFrames: number;
  readonly audio: boolean;
  readonly video?: boolean;
  /** Round every timestamp to whole milliseconds first, as RTMP does. */
  readonly msRound: boolean;
  /** Video frames before the first keyframe (an encoder joined mid-GOP). */
  readonly leadingNonKey?: number;
  readonly wallBase?: number;
}

/** Ticks of video frame k and audio frame j, exact or through RTMP's whole milliseconds. */
function videoDts(k: number, fps: number, msRound: boolean): number {
  return msRound ? msToTicks(Math.round((k * 1000) / fps)) : Math.round((k * TIMESCALE) / fps);
}
function audioDts(j: number, msRound: boolean): number {
  return msRound ? msToTicks(Math.round((j * 1024 * 1000) / 48_000)) : j * AAC_FRAME_TICKS;
}

/** Synthetic frames interleaved by dts (video first on a tie), wall clock advancing with media time. */
function makeFrames(o: GenOptions): MediaFrame[] {
  const wall = o.wallBase ?? WALL_BASE;
  const lead = o.leadingNonKey ?? 0;
  const frames: MediaFrame[] = [];
  let endTicks: number;
  if (o.video !== false) {
    for (let k = 0; k < o.videoFrames + lead; k++) {
      const dts = videoDts(k, o.fps, o.msRound);
      const keyframe = k >= lead && (k - lead) % o.gop === 0;
      // A constant composition offset of two frames, as an encoder with B-frames would stamp.
      const pts = dts + videoDts(2, o.fps, o.msRound);
      frames.push({ track: 'video', dts, pts, keyframe, data: nal(keyframe, k), wallClock: wall + dts / 90 });
    }
    endTicks = videoDts(o.videoFrames + lead, o.fps, o.msRound);
  } else {
    endTicks = videoDts(o.videoFrames, o.fps, o.msRound);
  }
  if (o.audio) {
    for (let j = 0; audioDts(j, o.msRound) < endTicks; j++) {
      const dts = audioDts(j, o.msRound);
      frames.push({
        track: 'audio',
        dts,
        pts: dts,
        keyframe: true,
        data: Uint8Array.from([0x21, j & 0xff, 0x42]),
        wallClock: wall + dts / 90,
      });
    }
  }
  // Stable sort: video frames were pushed first, so they come first on equal dts.
  return frames.sort((a, b) => a.dts - b.dts);
}

interface InitCall {
  readonly bytes: Uint8Array;
  readonly tracks: TrackSet;
  readonly discontinuity: boolean;
}

/** A sink that records every call. */
class RecordingSink implements SegmenterSink {
  inits: InitCall[] = [];
  segments: PartOut[][] = [];
  open: PartOut[] = [];
  calls: string[] = [];

  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void {
    this.calls.push('init');
    this.inits.push({ bytes, tracks, discontinuity });
  }
  part(part: PartOut): void {
    this.calls.push('part');
    this.open.push(part);
  }
  segmentPdts: number[] = [];
  segmentEnd(programDateTime: number): void {
    this.segmentPdts.push(programDateTime);
    this.calls.push('segmentEnd');
    this.segments.push(this.open);
    this.open = [];
  }
  get parts(): PartOut[] {
    return this.segments.flat().concat(this.open);
  }
}

// ---- a minimal reader of the fragments the muxer wrote ----

interface TrafInfo {
  readonly trackId: number;
  readonly baseMediaDecodeTime: number;
  readonly durations: number[];
}

function boxes(buf: Uint8Array, start: number, end: number): Array<{ type: string; body: number; end: number }> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  for (let pos = start; pos < end;) {
    const size = view.getUint32(pos);
    const type = Buffer.from(buf.subarray(pos + 4, pos + 8)).toString('latin1');
    if (size < 8 || pos + size > end) throw new Error(`bad box ${type} at ${pos}`);
    out.push({ type, body: pos + 8, end: pos + size });
    pos += size;
  }
  return out;
}

function readFragment(buf: Uint8Array): TrafInfo[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const top = boxes(buf, 0, buf.length);
  expect(top.map((b) => b.type)).toEqual(['moof', 'mdat']);
  const trafs: TrafInfo[] = [];
  for (const traf of boxes(buf, top[0].body, top[0].end).filter((b) => b.type === 'traf')) {
    let trackId = 0;
    let bmdt = 0;
    const durations: number[] = [];
    for (const b of boxes(buf, traf.body, traf.end)) {
      if (b.type === 'tfhd') trackId = view.getUint32(b.body + 4);
      if (b.type === 'tfdt') bmdt = view.getUint32(b.body + 4) * 2 ** 32 + view.getUint32(b.body + 8);
      if (b.type === 'trun') {
        const count = view.getUint32(b.body + 4);
        // data offset (4), then per sample: duration, size, flags, composition offset.
        for (let i = 0; i < count; i++) durations.push(view.getUint32(b.body + 12 + i * 16));
      }
    }
    trafs.push({ trackId, baseMediaDecodeTime: bmdt, durations });
  }
  return trafs;
}

// ---- the matrix ----

const RATES = [
  { name: '25', fps: 25 },
  { name: '29.97', fps: 30_000 / 1001 },
  { name: '30', fps: 30 },
  { name: '50', fps: 50 },
  { name: '60', fps: 60 },
] as const;
const PART_TARGET_MS = 200;
const SEGMENT_TARGET_MS = 2000;

function runSession(o: GenOptions, tracks: TrackSet) {
  const sink = new RecordingSink();
  const seg = new Segmenter({ partTargetMs: PART_TARGET_MS, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
  seg.startSession(tracks);
  const frames = makeFrames(o);
  for (const f of frames) seg.push(f);
  seg.endSession();
  return { sink, seg, frames };
}

/**
 * About 20 s of one session at `fps` with a keyframe every `gopSeconds`; `metaFps` is the frame rate the
 * track info announces (0: unknown, as from an RTMP source without onMetaData framerate).
 */
function checkRun(fps: number, gopSeconds: number, msRound: boolean, metaFps: number): void {
  const gop = Math.round(fps) * gopSeconds;
  const framesPerSegment = gopSeconds === 1 ? 2 * gop : gop;
  const segmentsWanted = 10; // about 20 s
  const videoFrames = segmentsWanted * framesPerSegment;
  const o: GenOptions = { fps, gop, videoFrames, audio: true, msRound };
  const { sink, seg, frames } = runSession(o, { video: videoTrack(metaFps), audio: audioTrack });

  const frameTicks = TIMESCALE / fps;
  const partTarget = seg.partTargetSeconds;
  // PART-TARGET is the nominal 200 ms fitted to whole frames, rounded up to the millisecond.
  const fitted = Math.ceil(Math.round(PART_TARGET_MS / (1000 / fps)) * (1000 / fps) - 1e-6) / 1000;
  if (metaFps > 0 || !msRound) expect(partTarget).toBeCloseTo(fitted, 9);
  // Without an announced rate one spacing of whole milliseconds is ambiguous: PART-TARGET may come out a
  // few ms longer (never shorter) than the exact fit.
  else expect(partTarget * 1000).toSatisfy((ms: number) => ms >= fitted * 1000 - 1e-6 && ms <= fitted * 1000 + 5);
  // Every boundary is a frame's own timestamp, so parts are exact to the tick (PART-TARGET is whole ms).
  const tol = 1 / TIMESCALE;

  expect(sink.inits).toHaveLength(1);
  expect(sink.inits[0].discontinuity).toBe(false);
  expect(sink.calls[0]).toBe('init');
  expect(sink.open).toHaveLength(0);
  expect(sink.segments).toHaveLength(segmentsWanted);
  expect(seg.droppedBeforeKeyframe).toBe(0);
  expect(seg.oversizedParts).toBe(0);

  const keyframeDts = new Set(frames.filter((f) => f.track === 'video' && f.keyframe).map((f) => f.dts));
  const parts = sink.parts;
  for (const s of sink.segments) {
    expect(s.length).toBeGreaterThan(0);
    // Segments start with an independent part (on a keyframe).
    expect(s[0].independent).toBe(true);
    const duration = s.reduce((a, p) => a + p.duration, 0);
    expect(Math.abs(duration - SEGMENT_TARGET_MS / 1000)).toBeLessThanOrEqual(frameTicks / TIMESCALE + 1e-9);
    s.forEach((p, i) => {
      expect(p.duration).toBeLessThanOrEqual(partTarget + tol);
      if (i < s.length - 1) expect(p.duration).toBeGreaterThanOrEqual(0.85 * partTarget - tol);
    });
  }

  let videoSamples = 0;
  let audioSamples = 0;
  let audioNext: number | undefined;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    // INDEPENDENT exactly where a part starts on a keyframe.
    expect(p.independent).toBe(keyframeDts.has(p.timelineDts));
    if (i + 1 < parts.length)
      expect(Math.abs(parts[i + 1].timelineDts - (p.timelineDts + p.duration * TIMESCALE))).toBeLessThanOrEqual(1e-6);
    // Program date-time follows media time from the first keyframe's wall clock.
    expect(p.programDateTime).toBeCloseTo(WALL_BASE + p.timelineDts / 90, 6);
    const trafs = readFragment(p.bytes);
    const v = trafs.find((t) => t.trackId === 1)!;
    expect(v.baseMediaDecodeTime).toBe(p.timelineDts);
    expect(v.durations.reduce((a, b) => a + b, 0)).toBe(Math.round(p.duration * TIMESCALE));
    videoSamples += v.durations.length;
    const a = trafs.find((t) => t.trackId === 2);
    if (a) {
      // Audio runs are contiguous on the 48 kHz timeline.
      if (audioNext !== undefined) expect(a.baseMediaDecodeTime).toBe(audioNext);
      audioNext = a.baseMediaDecodeTime + a.durations.reduce((x, y) => x + y, 0);
      audioSamples += a.durations.length;
    }
  }
  expect(parts[0].timelineDts).toBe(0);
  expect(parts[0].programDateTime).toBe(WALL_BASE);
  // Every frame went into exactly one part.
  expect(videoSamples).toBe(videoFrames);
  expect(audioSamples).toBe(frames.filter((f) => f.track === 'audio').length);
  // The last frame's duration is a guess at session end: exact for exact timestamps, within half a
  // millisecond of where the next frame would have been stamped otherwise.
  const end = parts[parts.length - 1].timelineDts + parts[parts.length - 1].duration * TIMESCALE;
  expect(Math.abs(end - videoDts(videoFrames, fps, msRound))).toBeLessThanOrEqual(msRound ? 45 : 0);
}

describe('Segmenter: parts and segments for common frame rates', () => {
  for (const rate of RATES) {
    for (const gopSeconds of [1, 2]) {
      for (const msRound of [false, true]) {
        it(`${rate.name} fps, keyframe every ${gopSeconds} s, ${msRound ? 'ms-rounded (RTMP)' : 'exact 90 kHz'} timestamps`, () => {
          checkRun(rate.fps, gopSeconds, msRound, rate.fps);
        });
      }
    }
  }
});

describe('Segmenter: frame rate not announced', () => {
  for (const rate of RATES) {
    for (const msRound of [false, true]) {
      it(`${rate.name} fps, ${msRound ? 'ms-rounded (RTMP)' : 'exact 90 kHz'} timestamps`, () => {
        checkRun(rate.fps, 2, msRound, 0);
      });
    }
  }
});

describe('Segmenter: sessions', () => {
  const tracks = { video: videoTrack(30_000 / 1001), audio: audioTrack };

  it('continues the timeline in a second session whose timestamps restart at 0', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: PART_TARGET_MS, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
    const fps = 30_000 / 1001;
    seg.startSession(tracks);
    for (const f of makeFrames({ fps, gop: 60, videoFrames: 150, audio: true, msRound: true })) seg.push(f);
    seg.endSession();
    const first = sink.parts;
    const firstEnd = first[first.length - 1].timelineDts + first[first.length - 1].duration * TIMESCALE;
    const segmentsBefore = sink.segments.length;
    expect(segmentsBefore).toBe(3); // 60 + 60 + 30 frames

    const wall2 = WALL_BASE + 60_000;
    seg.startSession(tracks);
    for (const f of makeFrames({ fps, gop: 60, videoFrames: 120, audio: true, msRound: true, wallBase: wall2 })) seg.push(f);
    seg.endSession();

    expect(sink.inits.map((i) => i.discontinuity)).toEqual([false, true]);
    expect(sink.calls.filter((c) => c === 'init')).toHaveLength(2);
    // The init of session 2 comes after session 1's last segment was closed.
    expect(sink.calls.indexOf('init', 1)).toBe(sink.calls.lastIndexOf('segmentEnd', sink.calls.indexOf('init', 1)) + 1);
    const second = sink.parts.slice(first.length);
    expect(second[0].timelineDts).toBe(firstEnd);
    expect(Number.isInteger(second[0].timelineDts)).toBe(true);
    expect(second[0].independent).toBe(true);
    expect(second[0].programDateTime).toBe(wall2);
    for (const p of second) {
      expect(p.programDateTime).toBeCloseTo(wall2 + (p.timelineDts - firstEnd) / 90, 6);
      const v = readFragment(p.bytes).find((t) => t.trackId === 1)!;
      expect(v.baseMediaDecodeTime).toBe(p.timelineDts);
    }
    for (let i = 0; i + 1 < second.length; i++) {
      expect(Math.abs(second[i + 1].timelineDts - (second[i].timelineDts + second[i].duration * TIMESCALE))).toBeLessThanOrEqual(1e-6);
    }
    expect(sink.segments.length).toBe(segmentsBefore + 2);
    // The part target advertised for the run does not change with the session.
    expect(seg.partTargetSeconds).toBe(0.201);
  });

  it('drops frames before the first keyframe and counts them', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: PART_TARGET_MS, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
    seg.startSession({ video: videoTrack(25), audio: audioTrack });
    const frames = makeFrames({ fps: 25, gop: 50, videoFrames: 100, audio: true, msRound: false, leadingNonKey: 5 });
    const firstKey = frames.findIndex((f) => f.keyframe && f.track === 'video');
    expect(firstKey).toBeGreaterThan(5); // 5 video frames and the audio stamped before the keyframe
    for (const f of frames) seg.push(f);
    seg.endSession();
    expect(seg.droppedBeforeKeyframe).toBe(firstKey);
    const parts = sink.parts;
    expect(parts[0].timelineDts).toBe(0);
    expect(parts[0].independent).toBe(true);
    // Program date-time starts at the wall clock of the first keyframe (5 frames of 40 ms in).
    expect(parts[0].programDateTime).toBe(WALL_BASE + 200);
    let video = 0;
    for (const p of parts) video += readFragment(p.bytes).find((t) => t.trackId === 1)!.durations.length;
    expect(video).toBe(100);
    expect(sink.segments).toHaveLength(2);
  });

  it('cuts an audio-only session into parts and segments', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: PART_TARGET_MS, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
    seg.startSession({ audio: audioTrack });
    // 10 s of audio.
    const frames = makeFrames({ fps: 25, gop: 1, videoFrames: 250, audio: true, video: false, msRound: true });
    for (const f of frames) seg.push(f);
    seg.endSession();
    expect(seg.droppedBeforeKeyframe).toBe(0);
    expect(sink.inits).toHaveLength(1);
    // 9 AAC frames of 21.33 ms: the closest whole number of frames to 200 ms.
    expect(seg.partTargetSeconds).toBe(0.192);
    const parts = sink.parts;
    expect(parts.length).toBeGreaterThan(40);
    for (const s of sink.segments.slice(0, -1)) {
      const d = s.reduce((a, p) => a + p.duration, 0);
      expect(Math.abs(d - 2)).toBeLessThanOrEqual(AAC_FRAME_TICKS / TIMESCALE);
      s.forEach((p, i) => {
        expect(p.independent).toBe(true);
        expect(p.duration).toBeLessThanOrEqual(0.192 + 1 / TIMESCALE);
        if (i < s.length - 1) expect(p.duration).toBeGreaterThanOrEqual(0.85 * 0.192);
      });
    }
    let samples = 0;
    let audioNext = 0;
    for (let i = 0; i < parts.length; i++) {
      const trafs = readFragment(parts[i].bytes);
      expect(trafs.map((t) => t.trackId)).toEqual([2]);
      // One continuous 48 kHz timeline (no gap, no overlap), within a millisecond of the part's (rounded) start.
      expect(trafs[0].baseMediaDecodeTime).toBe(audioNext);
      expect(Math.abs(trafs[0].baseMediaDecodeTime - (parts[i].timelineDts * 48_000) / TIMESCALE)).toBeLessThanOrEqual(48);
      audioNext += trafs[0].durations.reduce((a, b) => a + b, 0);
      samples += trafs[0].durations.length;
      if (i + 1 < parts.length)
        expect(Math.abs(parts[i + 1].timelineDts - (parts[i].timelineDts + parts[i].duration * TIMESCALE))).toBeLessThanOrEqual(1e-6);
    }
    expect(samples).toBe(frames.length);
  });

  it('ignores frames of a track the session did not announce', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: PART_TARGET_MS, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
    seg.startSession({ video: videoTrack(25) });
    for (const f of makeFrames({ fps: 25, gop: 25, videoFrames: 50, audio: true, msRound: false })) seg.push(f);
    seg.endSession();
    for (const p of sink.parts) expect(readFragment(p.bytes).map((t) => t.trackId)).toEqual([1]);
    expect(seg.droppedBeforeKeyframe).toBe(0);
  });
});

describe('Segmenter PROGRAM-DATE-TIME anchor', () => {
  it('is not made late by a first keyframe that arrived late', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: 2000 }, sink);
    seg.startSession({ video: videoTrack(30) });
    // Every frame reaches the server 20 ms after capture, but the first keyframe 70 ms after (a busy event loop).
    const frames = makeFrames({ fps: 30, gop: 30, videoFrames: 150, audio: false, msRound: false });
    frames.forEach((f, i) => seg.push({ ...f, wallClock: f.wallClock + (i === 0 ? 70 : 20) }));
    const second = sink.segments[1];
    expect(second).toBeDefined();
    // From the second segment on, PDT follows the typical (smallest) delay, not the first frame's.
    expect(second[0].programDateTime).toBeCloseTo(WALL_BASE + 20 + second[0].timelineDts / 90, 6);
  });

  it('never moves a PDT it has published: the anchor is fixed with the first part', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: 2000 }, sink);
    seg.startSession({ video: videoTrack(30) });
    // The first 11 frames arrive 70 ms after capture (a busy start), the rest 20 ms after. The first part
    // (6 frames) went out on the late anchor; a player has seen that PDT, so it stays, and every later
    // segment follows it by exactly the media time (a PDT that changes between reloads breaks players).
    const frames = makeFrames({ fps: 30, gop: 30, videoFrames: 150, audio: false, msRound: false });
    frames.forEach((f, i) => seg.push({ ...f, wallClock: f.wallClock + (i <= 10 ? 70 : 20) }));
    expect(sink.segments[0][0].programDateTime).toBeCloseTo(WALL_BASE + 70, 6);
    expect(sink.segmentPdts[0]).toBeCloseTo(sink.segments[0][0].programDateTime, 6);
    expect(sink.segmentPdts[1] - sink.segmentPdts[0]).toBeCloseTo(2000, 6);
    for (const p of sink.parts) expect(p.programDateTime).toBeCloseTo(WALL_BASE + 70 + p.timelineDts / 90, 6);
  });

  it('is fixed once the first part is published', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: 2000 }, sink);
    seg.startSession({ video: videoTrack(30) });
    const frames = makeFrames({ fps: 30, gop: 30, videoFrames: 180, audio: false, msRound: false });
    // From the 8th frame on (inside the first segment) the source arrives 30 ms earlier, and after 3 s
    // 500 ms early (a clock step): PDT must not move back mid-session.
    frames.forEach((f, i) => seg.push({ ...f, wallClock: f.wallClock + (f.dts >= 3 * TIMESCALE ? -500 : i >= 8 ? -30 : 0) }));
    for (const p of sink.parts) expect(p.programDateTime).toBeCloseTo(WALL_BASE + p.timelineDts / 90, 6);
    for (const [i, pdt] of sink.segmentPdts.entries()) expect(pdt).toBeCloseTo(sink.segments[i][0].programDateTime, 6);
  });
});

describe('Segmenter TARGETDURATION and sources without keyframes in time', () => {
  const run = (gop: number, videoFrames: number) => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: 2000 }, sink);
    seg.startSession({ video: videoTrack(30), audio: audioTrack });
    const targets = new Set<number>();
    for (const f of makeFrames({ fps: 30, gop, videoFrames, audio: true, msRound: true })) {
      seg.push(f);
      if (sink.segments.length > 0) targets.add(seg.targetDurationSeconds);
    }
    seg.endSession();
    return { sink, seg, targets };
  };
  const duration = (parts: PartOut[]) => parts.reduce((a, p) => a + p.duration, 0);

  it('cuts a source with a single keyframe into bounded segments, never growing one without end', () => {
    const { sink, seg, targets } = run(100_000, 30 * 30); // 30 s, one keyframe
    expect(sink.segments.length).toBe(5); // 6 s, then about 6.47 s each
    expect(seg.forcedCuts).toBe(sink.segments.length - 1);
    // The first segment is cut at three times the target; TARGETDURATION follows it and never changes.
    expect([...targets]).toEqual([6]);
    for (const s of sink.segments) expect(Math.round(duration(s))).toBeLessThanOrEqual(6);
    // Only the very first part starts on a keyframe.
    expect(sink.segments.slice(1).every((s) => !s[0].independent)).toBe(true);
  });

  it('takes TARGETDURATION from a keyframe interval longer than the target, without forced cuts', () => {
    const { sink, seg, targets } = run(75, 30 * 20); // 2.5 s GOP
    expect([...targets]).toEqual([3]);
    expect(seg.forcedCuts).toBe(0);
    for (const s of sink.segments.slice(0, -1)) expect(duration(s)).toBeCloseTo(2.5, 2);
  });

  it('keeps TARGETDURATION when one keyframe comes late, cutting that segment within its rounding', () => {
    const sink = new RecordingSink();
    const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: 2000 }, sink);
    seg.startSession({ video: videoTrack(30) });
    // Keyframes every 60 frames until the one due at frame 240 comes at 260; the encoder's GOP goes on from there.
    const isKey = (i: number) => (i < 240 ? i % 60 === 0 : (i - 260) % 60 === 0);
    const frames = makeFrames({ fps: 30, gop: 60, videoFrames: 600, audio: false, msRound: false }).map((f, i) => ({
      ...f,
      keyframe: isKey(i),
    }));
    for (const f of frames) seg.push(f);
    seg.endSession();
    expect(seg.targetDurationSeconds).toBe(2);
    for (const s of sink.segments) expect(Math.round(duration(s))).toBeLessThanOrEqual(2);
    expect(seg.forcedCuts).toBe(1);
    // The forced segment is followed by a short one that ends at the late keyframe; from there every
    // segment starts on a keyframe again.
    const forced = sink.segments.findIndex((s, i) => i > 0 && !s[0].independent);
    expect(duration(sink.segments[forced])).toBeCloseTo(6 / 30, 3);
    expect(sink.segments.slice(forced + 1).every((s) => s[0].independent)).toBe(true);
  });
});
