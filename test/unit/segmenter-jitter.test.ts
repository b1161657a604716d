import { describe, expect, it } from 'vitest';
import { TIMESCALE, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { Segmenter, type PartOut, type SegmenterSink } from '../../src/packager/index.js';
import { fmtDuration } from '../../src/packager/playlist.js';

/**
 * Parts against PART-TARGET whatever the source's frame timing: capture-clock jitter, dropped frames, a
 * frame rate that changes, RTMP's whole milliseconds, WebRTC's 90 kHz. Checked on what the playlist prints
 * (fmtDuration): every part at most PART-TARGET, PART-TARGET one value for the whole run, and every part but
 * a segment's last at least 85% of it. Where the source leaves no frame boundary between 85% and 100% of
 * PART-TARGET after a part's start (a 66.7 ms hole from a dropped frame when the window is 30 ms wide), no
 * cut can meet both rules: the part then ends at the last frame that fits, and the test checks exactly
 * that: the frame after it would have taken it past PART-TARGET.
 */

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** avcC of a 640x360 Constrained Baseline stream (libx264), as in segmenter.test.ts. */
const AVCC_640x360 = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const audioTrack = { kind: 'audio', codec: 'aac', codecPrivate: hex('1190'), sampleRate: 48_000, channels: 2 } as const;
const videoTrack = (fps: number) =>
  ({ kind: 'video', codec: 'h264', codecPrivate: AVCC_640x360, width: 640, height: 360, frameRate: fps }) as const;
const WALL_BASE = Date.UTC(2024, 0, 1, 12, 0, 0);
const SEGMENT_TARGET_MS = 2000;
const SECONDS = 20;

/** mulberry32: a small seeded PRNG, so every run sees the same timestamps. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How timestamps reach the segmenter: RTMP's (and a browser's RTP) whole milliseconds, or 90 kHz ticks. */
type Stamp = 'ms' | 'tick';
const stamp = (ms: number, s: Stamp) => (s === 'ms' ? Math.round(ms) * 90 : Math.round(ms * 90));

/**
 * Capture times of `fps` with uniform jitter of ±`jitterMs`: around each frame's slot on the grid (a capture
 * clock), or added to each spacing (the timestamps wander).
 */
function jittered(fps: number, jitterMs: number, model: 'grid' | 'spacing', seed: number, s: Stamp): number[] {
  const rnd = prng(seed);
  const out: number[] = [];
  let t = 0;
  for (let k = 0; k < SECONDS * fps; k++) {
    const noise = k === 0 ? 0 : (rnd() * 2 - 1) * jitterMs;
    t = model === 'grid' ? (k * 1000) / fps + noise : k === 0 ? 0 : t + 1000 / fps + noise;
    out.push(stamp(t, s));
  }
  return out;
}

/** Stretches of constant frame rate one after the other (a variable frame rate source). */
function stretches(rates: readonly number[], secondsEach: number, s: Stamp): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; t < SECONDS * 1000; i++) {
    const fps = rates[i % rates.length];
    const end = t + secondsEach * 1000;
    for (; t < end - 1e-9; t += 1000 / fps) out.push(stamp(t, s));
  }
  return out;
}

/**
 * Video frames at `times` (ticks) with a keyframe at the first frame of every 2 s (the segment target),
 * and AAC frames (1024 samples at 48 kHz) over the same span, interleaved by dts.
 */
function frames(times: readonly number[], audio: boolean, s: Stamp): MediaFrame[] {
  const out: MediaFrame[] = [];
  let lastGop = -1;
  times.forEach((dts, k) => {
    const gop = Math.floor(dts / (2 * TIMESCALE));
    const keyframe = gop !== lastGop;
    lastGop = gop;
    const data = Uint8Array.from([0, 0, 0, 3, keyframe ? 0x65 : 0x41, k & 0xff, 0x11]);
    out.push({ track: 'video', dts, pts: dts, keyframe, data, wallClock: WALL_BASE + dts / 90 });
  });
  if (audio) {
    const end = times.length > 0 ? times[times.length - 1] : SECONDS * TIMESCALE;
    for (let j = 0; ; j++) {
      const dts = stamp((j * 1024 * 1000) / 48_000, s);
      if (dts > end) break;
      out.push({ track: 'audio', dts, pts: dts, keyframe: true, data: Uint8Array.from([0x21, j & 0xff]), wallClock: WALL_BASE + dts / 90 });
    }
  }
  return out.sort((a, b) => a.dts - b.dts);
}

class RecordingSink implements SegmenterSink {
  segments: PartOut[][] = [];
  open: PartOut[] = [];
  parts = 0;
  /** Called when a segment completes: from then on a playlist can be served. */
  onSegment: () => void = () => {};
  init(): void {}
  part(part: PartOut): void {
    this.parts++;
    this.open.push(part);
  }
  segmentEnd(): void {
    this.segments.push(this.open);
    this.open = [];
    this.onSegment();
  }
}

/** Samples per track id in one fragment (moof > traf > tfhd, trun). */
function sampleCounts(buf: Uint8Array): Map<number, number> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const counts = new Map<number, number>();
  const walk = (start: number, end: number, trackId: number): number => {
    for (let pos = start; pos < end;) {
      const size = view.getUint32(pos);
      const type = Buffer.from(buf.subarray(pos + 4, pos + 8)).toString('latin1');
      if (type === 'moof' || type === 'traf') trackId = walk(pos + 8, pos + size, trackId);
      if (type === 'tfhd') trackId = view.getUint32(pos + 12);
      if (type === 'trun') counts.set(trackId, (counts.get(trackId) ?? 0) + view.getUint32(pos + 12));
      pos += size;
    }
    return trackId;
  };
  walk(0, buf.length, 0);
  return counts;
}

interface Case {
  readonly frames: MediaFrame[];
  readonly tracks: TrackSet;
  readonly partTargetMs: number;
  /** The source leaves a frame boundary in every window: no part but a segment's last may be short. */
  readonly strict: boolean;
  /** Parts made of a single frame longer than PART-TARGET (nothing to split). */
  readonly oversized?: number;
}

function check(c: Case): { partTarget: string; parts: number; short: number } {
  const sink = new RecordingSink();
  const seg = new Segmenter({ partTargetMs: c.partTargetMs, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
  seg.startSession(c.tracks);
  // What the playlist says as PART-TARGET whenever one can be served: once a segment is complete.
  const advertised = new Set<string>();
  sink.onSegment = () => advertised.add(fmtDuration(seg.partTargetSeconds));
  for (const f of c.frames) {
    seg.push(f);
    if (sink.segments.length > 0) advertised.add(fmtDuration(seg.partTargetSeconds));
  }
  seg.endSession();
  advertised.add(fmtDuration(seg.partTargetSeconds));
  expect([...advertised]).toHaveLength(1);
  const partTarget = Number(fmtDuration(seg.partTargetSeconds));
  const partTargetTicks = Math.round(seg.partTargetSeconds * TIMESCALE);

  const drivesCuts = c.frames.filter((f) => f.track === (c.tracks.video ? 'video' : 'audio')).map((f) => f.dts);
  expect(drivesCuts[0]).toBe(0); // the timeline starts at the first frame, so its dts are the timeline's
  expect(sink.open).toHaveLength(0);
  let short = 0;
  let next = 0;
  const samples = new Map<number, number>();
  for (const s of sink.segments) {
    s.forEach((p, i) => {
      const printed = Number(fmtDuration(p.duration));
      const start = p.timelineDts;
      const end = start + Math.round(p.duration * TIMESCALE);
      const single = drivesCuts.filter((d) => d >= start && d < end).length === 1;
      if (!(single && c.oversized))
        expect(printed, `part of ${p.duration} s against PART-TARGET ${partTarget}`).toBeLessThanOrEqual(partTarget);
      expect(start).toBe(next); // parts follow one another without gap or overlap
      next = end;
      if (i < s.length - 1 && printed < 0.85 * partTarget) {
        short++;
        // Short only because the frame after it would have taken the part past PART-TARGET.
        const after = drivesCuts.find((d) => d > end);
        expect(after, `part of ${p.duration} s at ${start}`).toBeDefined();
        expect(after! - start, `part of ${p.duration} s at ${start}`).toBeGreaterThan(partTargetTicks);
      }
      for (const [id, n] of sampleCounts(p.bytes)) samples.set(id, (samples.get(id) ?? 0) + n);
    });
  }
  // Every frame went into exactly one part.
  if (c.tracks.video) expect(samples.get(1)).toBe(c.frames.filter((f) => f.track === 'video').length);
  if (c.tracks.audio) expect(samples.get(2)).toBe(c.frames.filter((f) => f.track === 'audio').length);
  expect(seg.oversizedParts).toBe(c.oversized ?? 0);
  if (c.strict) expect(short).toBe(0);
  return { partTarget: fmtDuration(seg.partTargetSeconds), parts: sink.parts, short };
}

const TARGETS = [200, 100] as const;
const SEEDS = [1, 2, 3] as const;

describe('Segmenter parts within PART-TARGET: capture-clock jitter around 30 fps', () => {
  for (const partTargetMs of TARGETS) {
    for (const announced of [30, 0]) {
      for (const s of ['tick', 'ms'] as const) {
        for (const [jitterMs, model, strict] of [
          [3, 'grid', true],
          [3, 'spacing', false],
          [10, 'grid', false],
          [10, 'spacing', false],
        ] as const) {
          it(`±${jitterMs} ms (${model}), ${s} timestamps, ${announced ? '30 fps announced' : 'no frame rate announced'}, part target ${partTargetMs} ms`, () => {
            for (const seed of SEEDS) {
              const r = check({
                frames: frames(jittered(30, jitterMs, model, seed, s), true, s),
                tracks: { video: videoTrack(announced), audio: audioTrack },
                partTargetMs,
                strict,
              });
              // An announced 30 fps keeps 6 frames (3) in the middle of the window: 200 / 0.925 ms, rounded up.
              if (announced) expect(r.partTarget).toBe(partTargetMs === 200 ? '0.217' : '0.109');
            }
          });
        }
      }
    }
  }
});

/** Clean frames at `fps` as RTMP stamps them (whole ms) or exact 90 kHz ticks. */
const clean = (fps: number, s: Stamp) => Array.from({ length: SECONDS * fps }, (_, k) => stamp((k * 1000) / fps, s));

describe('Segmenter parts within PART-TARGET: other timings', () => {
  for (const partTargetMs of TARGETS) {
    for (const announced of [true, false]) {
      const rate = (fps: number) => (announced ? fps : 0);
      const label = `${announced ? 'frame rate announced' : 'no frame rate announced'}, part target ${partTargetMs} ms`;

      it(`29.97 fps in whole milliseconds (RTMP), ${label}`, () => {
        const r = check({
          frames: frames(clean(30_000 / 1001, 'ms'), true, 'ms'),
          tracks: { video: videoTrack(rate(30_000 / 1001)), audio: audioTrack },
          partTargetMs,
          strict: true,
        });
        // 6 frames = 200.2 ms (3 = 100.1 ms), rounded up to the millisecond, as before.
        expect(r.partTarget).toBe(partTargetMs === 200 ? '0.201' : '0.101');
      });

      for (const s of ['ms', 'tick'] as const) {
        it(`single dropped frames at 30 fps, ${s} timestamps, ${label}`, () => {
          // Every 37th frame is missing (never a keyframe), so the holes fall at every position within a part.
          const times = clean(30, s).filter((_, k) => k % 37 !== 11);
          const r = check({
            frames: frames(times, true, s),
            tracks: { video: videoTrack(rate(30)), audio: audioTrack },
            partTargetMs,
            strict: false,
          });
          // The holes do not move PART-TARGET off the clean fit (0.201: 33 ms is also 29.97 fps's spacing)...
          expect(r.partTarget).toBe(`0.${partTargetMs === 200 ? 2 : 1}${s === 'ms' && !announced ? '01' : ''}`);
          // ...and only a hole where a part would have ended shortens one: at most one short part per hole.
          expect(r.short).toBeLessThanOrEqual(clean(30, s).length - times.length);
        });

        it(`variable frame rate (1.5 s at 25 fps, 1.5 s at 30 fps, ...), ${s} timestamps, ${label}`, () => {
          const r = check({
            frames: frames(stretches([25, 30], 1.5, s), true, s),
            tracks: { video: videoTrack(rate(25)), audio: audioTrack },
            partTargetMs,
            strict: false,
          });
          // Fitted to the first rate: 5 frames (3) of 40 ms; the 30 fps stretches are cut within it.
          expect(r.partTarget).toBe(partTargetMs === 200 ? '0.2' : '0.12');
        });

        it(`variable frame rate starting at 30 fps, ${s} timestamps, ${label}`, () => {
          const r = check({
            frames: frames(stretches([30, 25], 1.5, s), true, s),
            tracks: { video: videoTrack(rate(30)), audio: audioTrack },
            partTargetMs,
            strict: false,
          });
          expect(r.partTarget).toBe(`0.${partTargetMs === 200 ? 2 : 1}${s === 'ms' && !announced ? '01' : ''}`);
        });

        it(`audio only (AAC), ${s} timestamps, part target ${partTargetMs} ms`, () => {
          if (!announced) return; // audio has no frame rate to announce: its frame size is its spacing
          const r = check({ frames: frames([], true, s), tracks: { audio: audioTrack }, partTargetMs, strict: true });
          // 9 AAC frames of 21.33 ms = 192 ms; 5 = 106.7 ms.
          expect(r.partTarget).toBe(partTargetMs === 200 ? '0.192' : '0.107');
        });
      }

      for (const seed of SEEDS) {
        it(`WebRTC from a browser: 90 kHz RTP from a capture clock in whole ms, ±1.5 ms, seed ${seed}, ${label}`, () => {
          const r = check({
            frames: frames(jittered(30, 1.5, 'grid', seed, 'ms'), true, 'tick'),
            tracks: { video: videoTrack(rate(30)), audio: audioTrack },
            partTargetMs,
            strict: true,
          });
          // Told from a clean source (0.201) by the first second of frames, and given the headroom.
          expect(Number(r.partTarget)).toBeGreaterThan(partTargetMs === 200 ? 0.21 : 0.105);
        });
      }

      it(`WebRTC from OBS: exact 90 kHz timestamps at 30 fps, ${label}`, () => {
        const r = check({
          frames: frames(clean(30, 'tick'), true, 'tick'),
          tracks: { video: videoTrack(rate(30)), audio: audioTrack },
          partTargetMs,
          strict: true,
        });
        // A clean source keeps the exact fit: 6 frames of 33.3 ms (3 for 100 ms).
        expect(r.partTarget).toBe(partTargetMs === 200 ? '0.2' : '0.1');
      });
    }
  }
});

describe('Segmenter PART-TARGET once advertised', () => {
  it('a source clean at first keeps the exact fit; a frame that comes late later is not let past it', () => {
    // The symptom of issue 12: PART-TARGET=0.2 and parts of DURATION=0.201. The first 2 s are exact 30 fps, then
    // every frame is 1 ms late or early by turns (a capture clock), so six frames may span 201 ms.
    const times = clean(30, 'tick').map((t, k) => (k < 60 ? t : t + (k % 2 === 0 ? 90 : -90)));
    const r = check({
      frames: frames(times, true, 'tick'),
      tracks: { video: videoTrack(0), audio: audioTrack },
      partTargetMs: 200,
      strict: false,
    });
    expect(r.partTarget).toBe('0.2');
    // Six frames do not fit then; five (166.7 ms) are all that can: no cut can meet both rules.
    expect(r.short).toBeGreaterThan(0);
  });

  it('is fixed by its first read, from the frames seen by then', () => {
    // Clean for the first part, then a capture clock's ±2 ms.
    const rnd = prng(7);
    const times = clean(30, 'tick').map((t, k) => (k <= 6 ? t : t + Math.round((rnd() * 2 - 1) * 180)));
    const run = (readEarly: boolean) => {
      const sink = new RecordingSink();
      const seg = new Segmenter({ partTargetMs: 200, segmentTargetMs: SEGMENT_TARGET_MS }, sink);
      seg.startSession({ video: videoTrack(30) });
      const seen = new Set<string>();
      for (const f of frames(times, false, 'tick')) {
        seg.push(f);
        if (readEarly && sink.parts > 0) seen.add(fmtDuration(seg.partTargetSeconds));
      }
      seg.endSession();
      seen.add(fmtDuration(seg.partTargetSeconds));
      const parts = sink.segments.flat();
      expect(parts.every((p) => Number(fmtDuration(p.duration)) <= Number([...seen][0]))).toBe(true);
      return [...seen];
    };
    // Read once the first part is out (a playlist served that early): the clean fit, kept from then on.
    expect(run(true)).toEqual(['0.2']);
    // Read only once a segment is complete: a second of frames showed the jitter, and it got headroom.
    expect(run(false)).toEqual(['0.217']);
  });

  it('counts a single frame longer than PART-TARGET, the one part that cannot be kept within it', () => {
    // A 300 ms hole in the video (the encoder stalled) after 3 s of clean frames.
    const times = clean(30, 'tick').filter((t) => t < 3 * TIMESCALE || t >= 3.3 * TIMESCALE);
    const r = check({
      frames: frames(times, false, 'tick'),
      tracks: { video: videoTrack(30) },
      partTargetMs: 200,
      strict: false,
      oversized: 1,
    });
    expect(r.partTarget).toBe('0.2');
  });
});
