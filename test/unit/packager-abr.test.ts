import { describe, expect, it } from 'vitest';
import { silentLogger, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { LivePackager } from '../../src/packager/index.js';
import { renderMediaPlaylist } from '../../src/packager/playlist.js';
import { rungStreamId, StreamHub, type Publisher } from '../../src/stream/index.js';
import { parseMediaPlaylist } from '../helpers/server.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
/** avcC of a 640x360 stream (libx264), as in segmenter.test.ts. */
const AVCC = hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20');
const ASC = hex('1190');
const WALL = Date.UTC(2026, 0, 1, 12, 0, 0);
const FPS = 30;

const tracks = (height: number): TrackSet => ({
  video: { kind: 'video', codec: 'h264', codecPrivate: AVCC, width: Math.round((height * 16) / 9), height, frameRate: FPS },
  audio: { kind: 'audio', codec: 'aac', codecPrivate: ASC, sampleRate: 48_000, channels: 2 },
});

const nal = (key: boolean) => Uint8Array.from([0, 0, 0, 3, key ? 0x65 : 0x41, 0x88, 0x00]);
/** RTMP's whole milliseconds. */
const ms = (k: number) => Math.round((k * 1000) / FPS) * 90;

/** Source frame k: B-frames, so each is presented two frames after it is decoded. */
function sourceVideo(k: number, gop: number): MediaFrame {
  const key = k % gop === 0;
  return { track: 'video', dts: ms(k), pts: ms(k + 2), keyframe: key, data: nal(key), wallClock: WALL + ms(k) / 90 + 5 };
}
/**
 * The same picture out of FFmpeg: no B-frames (dts = pts = the source's pts), keyframes forced where the
 * source has them, and the encoder's first frame is always a keyframe wherever it joined.
 */
function rungVideo(k: number, gop: number, first: boolean): MediaFrame {
  const key = first || k % gop === 0;
  return { track: 'video', dts: ms(k + 2), pts: ms(k + 2), keyframe: key, data: nal(key), wallClock: WALL + ms(k) / 90 + 60 };
}
const audioAt = (j: number): MediaFrame => {
  const t = Math.round((j * 1024 * 1000) / 48_000) * 90;
  return { track: 'audio', dts: t, pts: t, keyframe: true, data: Uint8Array.from([0x21, 0x00]), wallClock: WALL + t / 90 };
};

const settle = async () => {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
};

function setup() {
  const mk = () => new StreamHub({ graceMs: 60_000, readerQueueFrames: 100_000, logger: silentLogger });
  const hub = mk();
  const rungHub = mk();
  const packager = new LivePackager({
    hub,
    rungHub,
    logger: silentLogger,
    partTargetMs: 200,
    segmentTargetMs: 2000,
    windowSeconds: 60,
    endedRetentionMs: 1000,
    maxHeldRequests: 100,
  });
  packager.start();
  const close = () => {
    packager.close();
    hub.close();
    rungHub.close();
  };
  return { hub, rungHub, packager, close };
}

/** Drive a source and one rung that joins at source frame `join` and may be interrupted. */
async function run(opts: { gop: number; frames: number; join: number; outage?: [number, number]; stopAt?: number }) {
  const { hub, rungHub, packager, close } = setup();
  const src = hub.publish('s1', { sessionId: 'src-1', protocol: 'rtmp', remoteAddress: 'x' }, () => {});
  src.setTracks(tracks(720));
  let rung: Publisher | undefined;
  let rungSession = 0;
  let audioJ = 0;
  let rungFirst = true;
  const startRung = () => {
    rung = rungHub.publish(
      rungStreamId({ streamId: 's1', rung: '360p' }),
      { sessionId: `r${++rungSession}`, protocol: 'transcode', remoteAddress: 'ffmpeg', sourceSessionId: 'src-1' },
      () => {},
    );
    rung.setTracks(tracks(360));
    rungFirst = true;
  };
  const LAG = 4; // the rung comes out a few frames after the source went in
  for (let k = 0; k < opts.frames + LAG; k++) {
    if (k < opts.frames) {
      const v = sourceVideo(k, opts.gop);
      while (audioAt(audioJ).dts <= v.dts) {
        src.write(audioAt(audioJ));
        const a = audioAt(audioJ);
        if (rung && !rung.closed) rung.write(a);
        audioJ++;
      }
      src.write(v);
    }
    const r = k - LAG;
    if (r === opts.join) startRung();
    if (opts.outage && r === opts.outage[0]) rung?.close('ffmpeg killed');
    if (opts.outage && r === opts.outage[1]) startRung();
    if (r === opts.stopAt) rungHub.end(rungStreamId({ streamId: 's1', rung: '360p' }), 'dropped: not enough CPU');
    if (rung && !rung.closed && r >= 0) {
      rung.write(rungVideo(r, opts.gop, rungFirst));
      rungFirst = false;
    }
    if (k % 10 === 0) await settle();
  }
  await settle();
  const pkg = packager.get('s1')!;
  const text = (name: string) => renderMediaPlaylist(pkg.rendition(name)!.state([]));
  const result = {
    source: parseMediaPlaylist(text('source')),
    rung: parseMediaPlaylist(text('360p')),
    rungText: text('360p'),
    counters: { ...packager.counters },
  };
  close();
  return result;
}

describe('ABR rungs follow the source segment for segment', () => {
  it('a rung that joins mid-segment starts at the next source segment, with its MSN and PDT', async () => {
    const { source, rung } = await run({ gop: 60, frames: 600, join: 45 });
    expect(source.segments.length).toBeGreaterThanOrEqual(9);
    // Its first keyframe (frame 45, the encoder's first) is not a source boundary: it starts at frame 60.
    expect(rung.segments[0].msn).toBe(1);
    expect(rung.segments.every((s) => !s.gap)).toBe(true);
    for (const seg of rung.segments) {
      const twin = source.segments.find((s) => s.msn === seg.msn);
      if (!twin) continue; // the source's last segment is still open
      expect(seg.pdt, `PDT of ${seg.msn}`).toBe(twin.pdt);
      expect(Math.abs(seg.duration - twin.duration)).toBeLessThan(0.0015);
    }
  });

  it('stays aligned when the keyframe interval does not divide the segment target', async () => {
    const { source, rung } = await run({ gop: 75, frames: 750, join: 10 });
    expect(source.segments[1].duration).toBeCloseTo(2.5, 2);
    const common = rung.segments.filter((s) => source.segments.some((x) => x.msn === s.msn));
    expect(common.length).toBeGreaterThanOrEqual(7);
    for (const seg of common) expect(seg.pdt).toBe(source.segments.find((s) => s.msn === seg.msn)!.pdt);
  });

  it('lists EXT-X-GAP for what a rung missed while down, then continues aligned after a discontinuity', async () => {
    const { source, rung, rungText, counters } = await run({ gop: 60, frames: 900, join: 0, outage: [250, 400] });
    const gaps = rung.segments.filter((s) => s.gap);
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    expect(counters.gapSegments).toBe(gaps.length);
    expect(rungText).toContain('#EXT-X-GAP');
    // Consecutive media sequence numbers, no hole, and a discontinuity where the new FFmpeg begins.
    rung.segments.forEach((s, i) => i > 0 && expect(s.msn).toBe(rung.segments[i - 1].msn + 1));
    const resumed = rung.segments.find((s) => s.discontinuity)!;
    expect(resumed.msn).toBeGreaterThan(gaps[gaps.length - 1].msn);
    expect(resumed.gap).toBe(false);
    for (const seg of rung.segments) {
      const twin = source.segments.find((s) => s.msn === seg.msn);
      if (twin) expect(seg.pdt, `PDT of ${seg.gap ? 'gap ' : ''}${seg.msn}`).toBe(twin.pdt);
    }
    expect(counters.unalignedSegments).toBe(0);
  });

  it('keeps a dropped rung playlist in step with the source: one gap per source segment', async () => {
    const { source, rung } = await run({ gop: 60, frames: 600, join: 0, stopAt: 250 });
    const lastComplete = source.segments[source.segments.length - 1].msn;
    expect(rung.segments[rung.segments.length - 1].msn).toBe(lastComplete);
    const gaps = rung.segments.filter((s) => s.gap);
    expect(gaps.length).toBeGreaterThanOrEqual(lastComplete - 5);
    for (const g of gaps) expect(g.pdt).toBe(source.segments.find((s) => s.msn === g.msn)!.pdt);
  });
});
