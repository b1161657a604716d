import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppError, ClosedError, type TrackSet } from '../../src/core/index.js';
import {
  fmtDuration,
  renderMediaPlaylist,
  renderMultivariantPlaylist,
  renderVodPlaylist,
  skippableSegments,
  type MediaPlaylistState,
  type PartEntry,
  type SegmentEntry,
} from '../../src/packager/playlist.js';
import { LiveRendition } from '../../src/packager/rendition.js';
import type { PartOut } from '../../src/packager/segmenter.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0); // 2024-01-01T12:00:00.000Z

/** Parts of segment msn: four of 0.5 s, named by a running part number (4 per segment), the first independent. */
function parts(prefix: string, msn: number, count = 4): PartEntry[] {
  return Array.from({ length: count }, (_, i) => ({ uri: `${prefix}_p${msn * 4 + i}.m4s`, duration: 0.5, independent: i === 0 }));
}

function segment(msn: number, o: { prefix?: string; discontinuity?: boolean; duration?: number } = {}): SegmentEntry {
  const prefix = o.prefix ?? 'r1s1';
  return {
    msn,
    uri: `${prefix}_${msn}.m4s`,
    duration: o.duration ?? 2,
    parts: parts(prefix, msn),
    programDateTime: T0 + msn * 2000,
    discontinuity: o.discontinuity ?? false,
    initUri: `${prefix}_init.mp4`,
  };
}

function state(o: Partial<MediaPlaylistState>): MediaPlaylistState {
  return {
    version: 9,
    targetDuration: 2,
    partTarget: 0.5,
    partHoldBack: 1.5,
    canSkipUntil: 12,
    discontinuitySequence: 0,
    segments: [],
    renditionReports: [],
    ended: false,
    partWindow: 6,
    ...o,
  };
}

const lines = (...l: string[]) => l.join('\n') + '\n';

describe('renderMediaPlaylist', () => {
  it('renders a live window: complete segments, parts near the edge, pending parts, preload hint, rendition reports', () => {
    const text = renderMediaPlaylist(
      state({
        segments: [segment(10), segment(11), segment(12)],
        pending: { msn: 13, parts: parts('r1s1', 13, 2), programDateTime: T0 + 26_000, discontinuity: false, initUri: 'r1s1_init.mp4' },
        preloadHint: 'r1s1_p54.m4s',
        renditionReports: [
          { uri: '../720p/index.m3u8', lastMsn: 13, lastPart: 1 },
          { uri: '../360p/index.m3u8', lastMsn: 12, lastPart: 3 },
        ],
        // Segment 10 ends 4 s before the last complete segment's end: outside a 4 s part window.
        partWindow: 4,
      }),
    );
    expect(text).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:10',
        '#EXT-X-MAP:URI="r1s1_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:20.000Z',
        '#EXTINF:2.0,',
        'r1s1_10.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:22.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p44.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p45.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p46.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p47.m4s"',
        '#EXTINF:2.0,',
        'r1s1_11.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:24.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p48.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p49.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p50.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p51.m4s"',
        '#EXTINF:2.0,',
        'r1s1_12.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:26.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p52.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p53.m4s"',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1s1_p54.m4s"',
        '#EXT-X-RENDITION-REPORT:URI="../720p/index.m3u8",LAST-MSN=13,LAST-PART=1',
        '#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=12,LAST-PART=3',
      ),
    );
  });

  it('renders an ended playlist: ENDLIST, no SERVER-CONTROL, no preload hint', () => {
    const text = renderMediaPlaylist(
      state({
        segments: [segment(0), segment(1, { duration: 1.25 })],
        preloadHint: 'r1s1_p8.m4s',
        ended: true,
        // Segment 1 is 1.25 s long: segment 0 ends 1.25 s before the end, outside a 1 s part window.
        partWindow: 1,
      }),
      { skip: true },
    );
    expect(text).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-MAP:URI="r1s1_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:00.000Z',
        '#EXTINF:2.0,',
        'r1s1_0.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:02.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p4.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p5.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p6.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p7.m4s"',
        '#EXTINF:1.25,',
        'r1s1_1.m4s',
        '#EXT-X-ENDLIST',
      ),
    );
  });

  it('renders a delta update: EXT-X-SKIP for the segments older than CAN-SKIP-UNTIL, EXT-X-MAP on the first one shown', () => {
    const s = state({ segments: Array.from({ length: 10 }, (_, i) => segment(i)), preloadHint: 'r1s1_p40.m4s' });
    // 10 segments of 2 s; the last 12 s (6 segments) stay.
    expect(skippableSegments(s)).toBe(4);
    expect(renderMediaPlaylist(s, { skip: true })).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-SKIP:SKIPPED-SEGMENTS=4',
        '#EXT-X-MAP:URI="r1s1_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:08.000Z',
        '#EXTINF:2.0,',
        'r1s1_4.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:10.000Z',
        '#EXTINF:2.0,',
        'r1s1_5.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:12.000Z',
        '#EXTINF:2.0,',
        'r1s1_6.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:14.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p28.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p29.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p30.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p31.m4s"',
        '#EXTINF:2.0,',
        'r1s1_7.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:16.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p32.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p33.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p34.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p35.m4s"',
        '#EXTINF:2.0,',
        'r1s1_8.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:18.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p36.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p37.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p38.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s1_p39.m4s"',
        '#EXTINF:2.0,',
        'r1s1_9.m4s',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1s1_p40.m4s"',
      ),
    );
    // The full playlist lists every segment and no EXT-X-SKIP.
    const full = renderMediaPlaylist(s);
    expect(full).not.toContain('EXT-X-SKIP');
    expect(full.match(/^#EXTINF/gm)).toHaveLength(10);
  });

  it('skips nothing when the window is not longer than CAN-SKIP-UNTIL', () => {
    const s = state({ segments: Array.from({ length: 6 }, (_, i) => segment(i)) });
    expect(skippableSegments(s)).toBe(0);
    expect(renderMediaPlaylist(s, { skip: true })).toBe(renderMediaPlaylist(s));
    // One more segment: exactly one can go.
    expect(skippableSegments(state({ segments: Array.from({ length: 7 }, (_, i) => segment(i)) }))).toBe(1);
  });

  it('marks a new session with EXT-X-DISCONTINUITY and a new EXT-X-MAP, on complete and pending segments', () => {
    const text = renderMediaPlaylist(
      state({
        segments: [segment(20), segment(21, { prefix: 'r1s2', discontinuity: true, duration: 1.5 })],
        pending: { msn: 22, parts: parts('r1s3', 22, 1), programDateTime: T0 + 90_000, discontinuity: true, initUri: 'r1s3_init.mp4' },
        preloadHint: 'r1s3_p89.m4s',
        partWindow: 1,
      }),
    );
    expect(text).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:20',
        '#EXT-X-MAP:URI="r1s1_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:40.000Z',
        '#EXTINF:2.0,',
        'r1s1_20.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="r1s2_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:42.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s2_p84.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.5,URI="r1s2_p85.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s2_p86.m4s"',
        '#EXT-X-PART:DURATION=0.5,URI="r1s2_p87.m4s"',
        '#EXTINF:1.5,',
        'r1s2_21.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="r1s3_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:01:30.000Z',
        '#EXT-X-PART:DURATION=0.5,URI="r1s3_p88.m4s",INDEPENDENT=YES',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1s3_p89.m4s"',
      ),
    );
  });

  it('counts discontinuities that left the window in EXT-X-DISCONTINUITY-SEQUENCE', () => {
    const text = renderMediaPlaylist(
      state({
        discontinuitySequence: 1,
        segments: [segment(22, { prefix: 'r1s2' }), segment(23, { prefix: 'r1s2' })],
        pending: { msn: 24, parts: [], programDateTime: T0 + 48_000, discontinuity: false, initUri: 'r1s2_init.mp4' },
        preloadHint: 'r1s2_p96.m4s',
        partWindow: 0,
      }),
    );
    expect(text).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:22',
        '#EXT-X-DISCONTINUITY-SEQUENCE:1',
        '#EXT-X-MAP:URI="r1s2_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:44.000Z',
        '#EXTINF:2.0,',
        'r1s2_22.m4s',
        '#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:46.000Z',
        '#EXTINF:2.0,',
        'r1s2_23.m4s',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1s2_p96.m4s"',
      ),
    );
  });

  it('renders an empty live playlist before the first part', () => {
    expect(renderMediaPlaylist(state({ preloadHint: 'r1s1_p0.m4s' }))).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:2',
        '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.5',
        '#EXT-X-PART-INF:PART-TARGET=0.5',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="r1s1_p0.m4s"',
      ),
    );
  });

  it('formats durations to five decimals without trailing zeros', () => {
    expect(fmtDuration(2)).toBe('2.0');
    expect(fmtDuration(0.2)).toBe('0.2');
    expect(fmtDuration(18018 / 90000)).toBe('0.2002'); // 6 frames at 29.97 fps
    expect(fmtDuration(180180 / 90000)).toBe('2.002');
    expect(fmtDuration(0.201)).toBe('0.201');
    expect(fmtDuration(1 / 3)).toBe('0.33333');
    expect(fmtDuration(12)).toBe('12.0');
  });
});

describe('renderMultivariantPlaylist', () => {
  it('lists two variants with their attributes', () => {
    const text = renderMultivariantPlaylist([
      {
        uri: 'source/index.m3u8',
        bandwidth: 3_000_000.4,
        averageBandwidth: 2_499_999.6,
        codecs: 'avc1.64001f,mp4a.40.2',
        width: 1280,
        height: 720,
        frameRate: 30_000 / 1001,
        name: 'source',
      },
      { uri: 'audio/index.m3u8', bandwidth: 128_000, codecs: 'mp4a.40.2' },
    ]);
    expect(text).toBe(
      lines(
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,NAME="source"',
        'source/index.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"',
        'audio/index.m3u8',
      ),
    );
  });

  it('leaves out EXT-X-INDEPENDENT-SEGMENTS once a segment was cut without a keyframe', () => {
    const text = renderMultivariantPlaylist([{ uri: 'source/index.m3u8', bandwidth: 1000, codecs: 'avc1.42c01e' }], {
      independentSegments: false,
    });
    expect(text).toBe(lines('#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.42c01e"', 'source/index.m3u8'));
  });
});

// ---- LiveRendition ----

const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: Uint8Array.of(1), width: 640, height: 360, frameRate: 30 },
};
const INIT1 = Uint8Array.from([0xaa, 1]);
const INIT2 = Uint8Array.from([0xaa, 2]);
const noReports = () => [];

function rendition(
  o: {
    windowSegments?: number;
    retainSegments?: number;
    maxHeldRequests?: number;
    targetDuration?: number;
    partHoldBackParts?: number;
  } = {},
) {
  return new LiveRendition('source', 'run1', {
    windowSegments: o.windowSegments ?? 3,
    retainSegments: o.retainSegments ?? 2,
    segmentTargetMs: 2000,
    partTarget: () => 0.5,
    partHoldBackParts: o.partHoldBackParts ?? 3,
    targetDuration: () => o.targetDuration ?? 2,
    maxHeldRequests: o.maxHeldRequests ?? 1000,
  });
}

/** Feeds parts the way the segmenter does; part bytes are [part number, 0xbb]. */
class Feeder {
  n = 0;
  constructor(readonly r: LiveRendition) {}
  part(independent = this.n % 4 === 0): PartOut {
    const p: PartOut = {
      bytes: Uint8Array.from([this.n, 0xbb]),
      duration: 0.5,
      independent,
      programDateTime: T0 + this.n * 500,
      timelineDts: this.n * 45_000,
    };
    this.n++;
    this.r.part(p);
    return p;
  }
  segment(count = 4): void {
    for (let i = 0; i < count; i++) this.part(i === 0);
    this.r.segmentEnd();
  }
}

/** Whether a promise settled by the time the event loop turns once. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('LiveRendition: blocking playlist reload', () => {
  afterEach(() => vi.useRealTimers());

  it('answers at once without msn, and for a part it already has', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    expect(r.lastMsnPart()).toEqual({ msn: 1, part: 0 });
    const now = await r.playlist({}, noReports, 5000);
    expect(now).toBe(renderMediaPlaylist(r.state([])));
    expect(now).toContain(
      '#EXT-X-PART:DURATION=0.5,URI="run1s1_p4.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="run1s1_p5.m4s"\n',
    );
    expect(await r.playlist({ msn: 1, part: 0 }, noReports, 5000)).toBe(now);
    expect(await r.playlist({ msn: 0 }, noReports, 5000)).toBe(now);
    expect(r.heldRequests).toBe(0);
  });

  it('says PART-HOLD-BACK in the parts it was given (3 by default, 2 when the operator chose it)', async () => {
    for (const [parts, said] of [
      [3, 'PART-HOLD-BACK=1.5'],
      [2, 'PART-HOLD-BACK=1.0'],
    ] as const) {
      const r = rendition({ partHoldBackParts: parts });
      r.init(INIT1, TRACKS, false);
      new Feeder(r).part();
      expect(await r.playlist({}, noReports, 5000)).toContain(`CAN-SKIP-UNTIL=12.0,${said}\n`);
    }
  });

  it('holds a request for a future part until part() delivers it', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    const held = r.playlist({ msn: 1, part: 1 }, () => [{ uri: '../360p/index.m3u8', lastMsn: 1, lastPart: 1 }], 5000);
    expect(await settled(held)).toBe(false);
    expect(r.heldRequests).toBe(1);
    f.part();
    const text = await held;
    expect(text).toContain('#EXT-X-PART:DURATION=0.5,URI="run1s1_p5.m4s"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="run1s1_p6.m4s"\n');
    expect(text.endsWith('#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=1,LAST-PART=1\n')).toBe(true);
    expect(r.heldRequests).toBe(0);
  });

  it('holds a request for a whole segment until that segment is complete', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    const held = r.playlist({ msn: 1 }, noReports, 5000);
    f.part();
    f.part();
    expect(await settled(held)).toBe(false);
    f.part();
    r.segmentEnd();
    expect(await held).toContain('#EXTINF:2.0,\nrun1s1_1.m4s\n');
  });

  it('rejects requests too far ahead with E_PLAYLIST_TOO_FAR_AHEAD', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part(); // last: msn 1, part 0
    const tooFar = async (q: { msn: number; part?: number }) => {
      const err = await r.playlist(q, noReports, 5000).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('E_PLAYLIST_TOO_FAR_AHEAD');
      expect((err as AppError).status).toBe(400);
    };
    await tooFar({ msn: 4 });
    await tooFar({ msn: 4, part: 0 });
    await tooFar({ msn: 1, part: 4 });
    // Parts count across the segment boundary: part 3 of the next segment is at least four parts ahead.
    await tooFar({ msn: 2, part: 3 });
    expect(r.heldRequests).toBe(0);
    // The limits themselves are held, not refused.
    const ac = new AbortController();
    const held = [r.playlist({ msn: 3 }, noReports, 5000, ac.signal), r.playlist({ msn: 1, part: 3 }, noReports, 5000, ac.signal)];
    expect(await settled(Promise.race(held))).toBe(false);
    expect(r.heldRequests).toBe(2);
    ac.abort();
    for (const h of held) await expect(h).rejects.toBeInstanceOf(ClosedError);
    expect(r.heldRequests).toBe(0);
  });

  it('can fetch every part it lists, whatever the segment durations', async () => {
    const r = rendition({ windowSegments: 10, targetDuration: 3 });
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    for (let i = 0; i < 12; i++) f.segment(3); // 1.5 s segments: parts of six segments are listed
    f.part();
    const text = await r.playlist({}, noReports, 10);
    const listed = [...text.matchAll(/#EXT-X-PART:DURATION=[\d.]+,URI="([^"]+)"/g)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(12);
    for (const uri of listed) expect((await r.file(uri, 10))?.kind, uri).toBe('part');
  });

  it('drops the init of a session that never completed a segment', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    r.sessionEnd();
    r.init(INIT2, TRACKS, true); // publishes, but no segment before it goes away
    r.sessionEnd();
    r.init(Uint8Array.from([0xaa, 3]), TRACKS, true);
    expect(await r.file('run1s1_init.mp4', 10)).toEqual({ kind: 'init', bytes: INIT1 }); // still used by segment 0
    expect(await r.file('run1s2_init.mp4', 10)).toBeUndefined();
    expect((await r.file('run1s3_init.mp4', 10))?.kind).toBe('init');
  });

  it('refuses to hold more than maxHeldRequests at once with E_LIMIT_EXCEEDED (429)', async () => {
    const r = rendition({ maxHeldRequests: 2 });
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    const ac = new AbortController();
    const held = [r.playlist({ msn: 1, part: 1 }, noReports, 5000, ac.signal), r.file('run1s1_p4.m4s', 5000, ac.signal)];
    expect(r.heldRequests).toBe(2);
    await expect(r.playlist({ msn: 1, part: 2 }, noReports, 5000)).rejects.toMatchObject({ code: 'E_LIMIT_EXCEEDED', status: 429 });
    await expect(r.file('run1s1_p4.m4s', 5000)).rejects.toMatchObject({ code: 'E_LIMIT_EXCEEDED' });
    // What needs no holding is still answered.
    expect(await r.playlist({ msn: 0 }, noReports, 5000)).toContain('run1s1_0.m4s');
    ac.abort();
    for (const h of held) await expect(h).rejects.toBeInstanceOf(ClosedError);
    expect(r.heldRequests).toBe(0);
  });

  it('rejects before the first part only what is more than two segments ahead', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    expect(r.lastMsnPart()).toEqual({ msn: -1, part: -1 });
    await expect(r.playlist({ msn: 2 }, noReports, 5000)).rejects.toMatchObject({ code: 'E_PLAYLIST_TOO_FAR_AHEAD' });
    const held = r.playlist({ msn: 0, part: 0 }, noReports, 5000);
    new Feeder(r).part();
    expect(await held).toContain('URI="run1s1_p0.m4s",INDEPENDENT=YES');
  });

  it('releases a held request when the client goes away', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    const ac = new AbortController();
    const held = r.playlist({ msn: 1, part: 2 }, noReports, 60_000, ac.signal);
    expect(r.heldRequests).toBe(1);
    ac.abort();
    await expect(held).rejects.toMatchObject({ code: 'E_CLOSED' });
    expect(r.heldRequests).toBe(0);
  });

  it('does not hold a request whose client has already gone away', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    const ac = new AbortController();
    ac.abort();
    const held = r.playlist({ msn: 1, part: 2 }, noReports, 2000, ac.signal);
    expect(await settled(held)).toBe(true);
    await expect(held).rejects.toMatchObject({ code: 'E_CLOSED' });
    expect(r.heldRequests).toBe(0);
  });

  it('answers a held request at holdMs with the current playlist', async () => {
    vi.useFakeTimers();
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    let text: string | undefined;
    void r.playlist({ msn: 1, part: 0 }, noReports, 3000).then((t) => (text = t));
    await vi.advanceTimersByTimeAsync(2999);
    expect(text).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(text).toBe(renderMediaPlaylist(r.state([])));
    expect(text).not.toContain('#EXT-X-PART:DURATION=0.5,URI="run1s1_p4.m4s"');
    expect(text).toContain('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="run1s1_p4.m4s"');
    expect(r.heldRequests).toBe(0);
  });

  it('close() (server shutdown) answers held requests without ending the playlist, and holds no more', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    const held = [r.playlist({ msn: 1, part: 1 }, noReports, 60_000), r.file('run1s1_p5.m4s', 60_000)];
    expect(r.heldRequests).toBe(2);
    r.close();
    const text = await held[0];
    expect(text).not.toContain('#EXT-X-ENDLIST');
    expect(text).toContain('run1s1_p4.m4s');
    expect(await held[1]).toBeUndefined();
    expect(r.heldRequests).toBe(0);
    expect(r.ended).toBe(false);
    expect(await settled(r.playlist({ msn: 1, part: 2 }, noReports, 60_000))).toBe(true);
    expect(r.heldRequests).toBe(0);
  });

  it('end() answers held requests with a playlist that has EXT-X-ENDLIST', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    const held = [r.playlist({ msn: 1, part: 1 }, noReports, 60_000), r.playlist({ msn: 2 }, noReports, 60_000)];
    expect(r.heldRequests).toBe(2);
    r.end();
    for (const h of held) {
      const text = await h;
      expect(text.endsWith('#EXT-X-ENDLIST\n')).toBe(true);
      expect(text).not.toContain('EXT-X-SERVER-CONTROL');
      expect(text).not.toContain('PRELOAD-HINT');
    }
    expect(r.ended).toBe(true);
    expect(r.heldRequests).toBe(0);
    // After the end nothing is held or refused.
    expect(await r.playlist({ msn: 9, part: 9 }, noReports, 60_000)).toContain('#EXT-X-ENDLIST');
  });
});

describe('LiveRendition: files', () => {
  it('serves the init segment, parts and complete segments by name', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    f.part();
    expect(await r.file('run1s1_init.mp4', 1000)).toEqual({ kind: 'init', bytes: INIT1 });
    expect(await r.file('run1s1_p2.m4s', 1000)).toEqual({ kind: 'part', bytes: Uint8Array.from([2, 0xbb]) });
    expect(await r.file('run1s1_p4.m4s', 1000)).toEqual({ kind: 'part', bytes: Uint8Array.from([4, 0xbb]) });
    const seg = await r.file('run1s1_0.m4s', 1000);
    expect(seg?.kind).toBe('segment');
    expect(Uint8Array.from(seg!.bytes)).toEqual(Uint8Array.from([0, 0xbb, 1, 0xbb, 2, 0xbb, 3, 0xbb]));
    // The pending segment is not a file yet; unknown names are not found without waiting.
    for (const name of ['run1s1_1.m4s', 'run1s1_p9.m4s', 'run1s2_p4.m4s', 'other_0.m4s', 'run1s1_init.m4s', 'x.mp4']) {
      const p = r.file(name, 60_000);
      expect(await settled(p)).toBe(true);
      expect(await p).toBeUndefined();
    }
    expect(r.heldRequests).toBe(0);
  });

  it('holds a request for the preload-hinted part and answers it when the part arrives', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    expect(r.state([]).preloadHint).toBe('run1s1_p4.m4s');
    const held = r.file('run1s1_p4.m4s', 60_000);
    expect(await settled(held)).toBe(false);
    expect(r.heldRequests).toBe(1);
    const p = f.part();
    expect(await held).toEqual({ kind: 'part', bytes: p.bytes });
    expect(r.heldRequests).toBe(0);
  });

  it("answers a held hint with nothing when the session ends, then hints the next session's first part", async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    const held = r.file('run1s1_p4.m4s', 60_000);
    r.sessionEnd();
    expect(await held).toBeUndefined();
    // The old session's next part will never come: asked again, it is answered at once.
    const again = r.file('run1s1_p4.m4s', 60_000);
    expect(await settled(again)).toBe(true);
    expect(await again).toBeUndefined();
    expect(r.heldRequests).toBe(0);
    // A live playlist never ends in a segment URI (hls.js would take that segment for the one in
    // progress): between sessions the hint names the part the next session starts with.
    expect(r.state([]).preloadHint).toBe('run1s2_p4.m4s');
    expect(renderMediaPlaylist(r.state([])).trimEnd().split('\n').pop()).toBe('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="run1s2_p4.m4s"');
    const next = r.file('run1s2_p4.m4s', 60_000);
    expect(await settled(next)).toBe(false);
    r.init(INIT2, TRACKS, true);
    f.part();
    expect(await next).toEqual({ kind: 'part', bytes: Uint8Array.from([4, 0xbb]) });
  });

  it('ends without a hint once the stream ended', () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    r.sessionEnd();
    r.end();
    expect(r.state([]).preloadHint).toBeUndefined();
    expect(renderMediaPlaylist(r.state([])).trimEnd().split('\n').pop()).toBe('#EXT-X-ENDLIST');
  });

  it('answers held playlist requests when the session ends and holds new ones only three parts until a publisher returns', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    const last = r.lastMsnPart();
    const held = r.playlist({ msn: last.msn + 1, part: 0 }, () => [], 60_000);
    expect(await settled(held)).toBe(false);
    r.sessionEnd();
    expect(await settled(held)).toBe(true);
    const t0 = Date.now();
    await r.playlist({ msn: last.msn + 1, part: 0 }, () => [], 60_000);
    const waited = Date.now() - t0;
    // PART-TARGET here is 0.5 s: held 1.5 s, inside hls.js's own limit (max(3 parts, 0.8 x TARGETDURATION)).
    expect(waited).toBeGreaterThanOrEqual(1450);
    expect(waited).toBeLessThan(3000);
  });

  it('answers a held hint of the old session with nothing when a new session starts', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment();
    const held = r.file('run1s1_p4.m4s', 60_000);
    r.init(INIT2, TRACKS, true);
    expect(await held).toBeUndefined();
    expect(r.state([]).preloadHint).toBe('run1s2_p4.m4s');
    f.part();
    expect(await r.file('run1s2_p4.m4s', 1000)).toEqual({ kind: 'part', bytes: Uint8Array.from([4, 0xbb]) });
  });

  it('releases a held file request when the client goes away', async () => {
    const r = rendition();
    r.init(INIT1, TRACKS, false);
    new Feeder(r).segment();
    const ac = new AbortController();
    const held = r.file('run1s1_p4.m4s', 60_000, ac.signal);
    expect(r.heldRequests).toBe(1);
    ac.abort();
    await expect(held).rejects.toBeInstanceOf(ClosedError);
    expect(r.heldRequests).toBe(0);
  });
});

describe('LiveRendition: window', () => {
  it('keeps windowSegments segments, counts discontinuities that leave, and keeps retired files for a while', async () => {
    const r = rendition({ windowSegments: 3, retainSegments: 2 });
    const f = new Feeder(r);
    r.init(INIT1, TRACKS, false);
    f.segment();
    f.segment();
    r.sessionEnd();
    r.init(INIT2, TRACKS, true);
    f.segment();
    let s = r.state([]);
    expect(s.segments.map((x) => [x.msn, x.uri, x.discontinuity, x.initUri])).toEqual([
      [0, 'run1s1_0.m4s', false, 'run1s1_init.mp4'],
      [1, 'run1s1_1.m4s', false, 'run1s1_init.mp4'],
      [2, 'run1s2_2.m4s', true, 'run1s2_init.mp4'],
    ]);
    expect(s.discontinuitySequence).toBe(0);
    // The part numbers keep counting across sessions.
    expect(s.segments[2].parts.map((p) => p.uri)).toEqual(['run1s2_p8.m4s', 'run1s2_p9.m4s', 'run1s2_p10.m4s', 'run1s2_p11.m4s']);

    f.segment(); // msn 3: segment 0 leaves the window
    f.segment(); // msn 4: segment 1 leaves
    s = r.state([]);
    expect(s.segments.map((x) => x.msn)).toEqual([2, 3, 4]);
    expect(s.discontinuitySequence).toBe(0);
    let text = renderMediaPlaylist(s);
    expect(text).toContain('#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="run1s2_init.mp4"\n');
    // Retired segments (and their init) can still be fetched by players a little behind.
    expect((await r.file('run1s1_0.m4s', 10))?.kind).toBe('segment');
    expect((await r.file('run1s1_init.mp4', 10))?.kind).toBe('init');

    f.segment(); // msn 5: segment 2, the discontinuity, leaves
    s = r.state([]);
    expect(s.segments.map((x) => x.msn)).toEqual([3, 4, 5]);
    expect(s.discontinuitySequence).toBe(1);
    text = renderMediaPlaylist(s);
    expect(text).toContain('#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI="run1s2_init.mp4"\n');
    expect(text).not.toContain('#EXT-X-DISCONTINUITY\n');
    // Only retainSegments retired segments are kept: segment 0 is gone, then session 1's init with segment 1.
    expect(await r.file('run1s1_0.m4s', 10)).toBeUndefined();
    expect((await r.file('run1s1_1.m4s', 10))?.kind).toBe('segment');
    expect((await r.file('run1s1_init.mp4', 10))?.kind).toBe('init');
    f.segment(); // msn 6
    expect(await r.file('run1s1_1.m4s', 10)).toBeUndefined();
    expect(await r.file('run1s1_init.mp4', 10)).toBeUndefined();
    expect(await r.file('run1s2_init.mp4', 10)).toEqual({ kind: 'init', bytes: INIT2 });
    expect((await r.file('run1s2_2.m4s', 10))?.kind).toBe('segment');
  });

  it('reports the target duration it is given and the bandwidth of what it served', () => {
    const r = rendition({ targetDuration: 4 });
    r.init(INIT1, TRACKS, false);
    const f = new Feeder(r);
    f.segment(4); // 2 s, 8 bytes
    f.segment(7); // 3.5 s, 14 bytes
    expect(r.targetDuration()).toBe(4);
    expect(r.peakBandwidth).toBe(32);
    expect(r.averageBandwidth).toBeCloseTo((22 * 8) / 5.5, 9);
    const s = r.state([]);
    expect(s).toMatchObject({ targetDuration: 4, partTarget: 0.5, partHoldBack: 1.5, canSkipUntil: 24, partWindow: 12, version: 9 });
  });
});

describe('VOD media playlist', () => {
  it('lists every segment with its init, discontinuities, gaps and ENDLIST; no LL-HLS tags', () => {
    const text = renderVodPlaylist([
      { uri: 'a_0.m4s', duration: 2, initUri: 'a_init.mp4', discontinuity: true, programDateTime: Date.UTC(2026, 0, 1) },
      { uri: 'a_1.m4s', duration: 1.4, initUri: 'a_init.mp4', discontinuity: false },
      { uri: 'b_2.m4s', duration: 2.6, initUri: 'b_init.mp4', discontinuity: true },
      { uri: 'b_3.m4s', duration: 2, initUri: 'b_init.mp4', discontinuity: false, gap: true },
    ]);
    expect(text).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-TARGETDURATION:3',
        '#EXT-X-PLAYLIST-TYPE:VOD',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MAP:URI="a_init.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z',
        '#EXTINF:2.0,',
        'a_0.m4s',
        '#EXTINF:1.4,',
        'a_1.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="b_init.mp4"',
        '#EXTINF:2.6,',
        'b_2.m4s',
        '#EXT-X-GAP',
        '#EXTINF:2.0,',
        'b_3.m4s',
        '#EXT-X-ENDLIST',
        '',
      ].join('\n'),
    );
  });
});
