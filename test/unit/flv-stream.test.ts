import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError, msToTicks, TIMESCALE, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { decodeAmf0, FlvReader, FlvWriter, MediaAssembler, parseVideoTag, type FlvTag } from '../../src/flv/index.js';
import { code } from '../helpers/errors.js';

/** mulberry32: a small seeded PRNG, so that a failing fuzz case can be replayed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** A 2 s FLV clip from the real FFmpeg: H.264 320x240 at 30 fps (keyframe every second) and AAC mono 48 kHz. */
function ffmpegClip(videoOpts: string[]): Buffer {
  const r = spawnSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '2'],
      ...['-c:v', 'libx264', '-g', '30', ...videoOpts, '-c:a', 'aac', '-f', 'flv', 'pipe:1'],
    ],
    { maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed (${r.status}): ${r.stderr.toString()}`);
  return r.stdout;
}

interface Parsed {
  readonly tracks: TrackSet[];
  readonly frames: MediaFrame[];
  readonly tags: FlvTag[];
}

/** FLV bytes -> tags -> tracks and frames, as the transcoder reads FFmpeg's output. */
function parse(chunks: Iterable<Buffer>, maxTagBytes = 1 << 24): Parsed {
  const out: Parsed = { tracks: [], frames: [], tags: [] };
  const reader = new FlvReader({ maxTagBytes });
  const asm = new MediaAssembler(
    { setTracks: (t) => out.tracks.push(t), write: (f) => out.frames.push(f) },
    { maxBufferedFrames: 300, maxBufferedTicks: 2 * TIMESCALE, now: () => 0 },
  );
  for (const chunk of chunks) {
    for (const tag of reader.push(chunk)) {
      out.tags.push(tag);
      if (tag.type === 9) asm.video(tag.timestamp, tag.body);
      else if (tag.type === 8) asm.audio(tag.timestamp, tag.body);
      else if (tag.type === 18) asm.metadata(decodeAmf0(tag.body)[1]);
    }
  }
  return out;
}

/** Tracks and frames -> one FLV stream with FlvWriter. */
function write(tracks: TrackSet, frames: readonly MediaFrame[], writer = new FlvWriter()): Buffer {
  const parts = [writer.header(tracks)];
  for (const f of frames) parts.push(writer.frame(f, f.track === 'video' ? tracks.video!.codec : 'aac'));
  return Buffer.concat(parts);
}

/** Splits buf into random pieces: a share of 1-byte pieces, the others up to `max` bytes. */
function randomChunks(buf: Buffer, rnd: (n: number) => number, max = 4096): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.byteLength;) {
    const n = rnd(4) === 0 ? 1 : 1 + rnd(max);
    out.push(buf.subarray(p, p + n));
    p += n;
  }
  return out;
}

/** What a consumer sees of a frame: times relative to `origin`, flags and bytes. */
function view(frames: readonly MediaFrame[], origin: number) {
  return frames.map((f) => ({
    track: f.track,
    keyframe: f.keyframe,
    dts: f.dts - origin,
    pts: f.pts - origin,
    bytes: f.data.byteLength,
    sha1: createHash('sha1').update(f.data).digest('hex'),
  }));
}

let clips: { name: string; flv: Buffer; src: Parsed }[] = [];
beforeAll(() => {
  clips = [
    { name: 'no B-frames', opts: ['-preset', 'ultrafast', '-bf', '0'] },
    { name: 'with B-frames', opts: ['-preset', 'veryfast', '-bf', '2'] },
  ].map(({ name, opts }) => {
    const flv = ffmpegClip(opts);
    return { name, flv, src: parse([flv]) };
  });
});

describe('FFmpeg clip fixture', () => {
  it('parses into one track set with 2 s of H.264 and AAC frames', () => {
    for (const { src } of clips) {
      expect(src.tracks).toHaveLength(1);
      expect(src.tracks[0].video).toMatchObject({ codec: 'h264', width: 320, height: 240 });
      expect(src.tracks[0].audio).toMatchObject({ codec: 'aac', sampleRate: 48000, channels: 1 });
      const video = src.frames.filter((f) => f.track === 'video');
      expect(video).toHaveLength(60);
      expect(video.filter((f) => f.keyframe)).toHaveLength(2);
    }
    expect(clips[0].src.frames.every((f) => f.pts === f.dts)).toBe(true);
    expect(clips[1].src.frames.some((f) => f.pts > f.dts)).toBe(true);
  });
});

describe('FlvWriter -> FlvReader -> MediaAssembler round trip', () => {
  function expectSameTracks(got: TrackSet, want: TrackSet): void {
    const gv = Buffer.from(got.video!.codecPrivate);
    const wv = Buffer.from(want.video!.codecPrivate);
    expect(gv.byteLength).toBe(wv.byteLength);
    // Byte 4 of avcC: "reserved (6 bits) '111111'b; lengthSizeMinusOne (2 bits)"; the writer says 4 bytes.
    expect(gv[4]).toBe(0xff);
    expect(Buffer.concat([gv.subarray(0, 4), gv.subarray(5)])).toEqual(Buffer.concat([wv.subarray(0, 4), wv.subarray(5)]));
    expect({ ...got.video, codecPrivate: null, frameRate: null }).toEqual({ ...want.video, codecPrivate: null, frameRate: null });
    expect(Buffer.from(got.audio!.codecPrivate)).toEqual(Buffer.from(want.audio!.codecPrivate));
    expect({ ...got.audio, codecPrivate: null }).toEqual({ ...want.audio, codecPrivate: null });
  }

  it.each([0, 1])('clip %i: same tracks and frames, read in random-sized chunks (1-byte ones among them)', (i) => {
    const { src } = clips[i];
    const writer = new FlvWriter();
    const flv = write(src.tracks[0], src.frames, writer);
    expect(writer.base).toBe(src.frames[0].dts);
    const rnd = prng(1234 + i);
    for (let round = 0; round < 3; round++) {
      const chunks = randomChunks(flv, rnd);
      expect(chunks.some((c) => c.byteLength === 1)).toBe(true);
      const got = parse(chunks);
      expect(got.tracks).toHaveLength(1);
      expectSameTracks(got.tracks[0], src.tracks[0]);
      expect(view(got.frames, 0)).toEqual(view(src.frames, src.frames[0].dts));
    }
  });

  it('same result whether the stream arrives byte by byte or in one piece', () => {
    const { src } = clips[1];
    const flv = write(src.tracks[0], src.frames.slice(0, 12));
    const bytes = Array.from({ length: flv.byteLength }, (_, i) => flv.subarray(i, i + 1));
    const one = parse([flv]);
    const byByte = parse(bytes);
    expect(one.frames).toHaveLength(12);
    expect(view(byByte.frames, 0)).toEqual(view(one.frames, 0));
    expect(byByte.tracks).toEqual(one.tracks);
  });

  it('composition offsets survive: pts - dts of every frame to the ms', () => {
    const { src } = clips[1];
    const got = parse([write(src.tracks[0], src.frames)]);
    const offsets = (fs: readonly MediaFrame[]) => fs.map((f) => f.pts - f.dts);
    expect(offsets(got.frames)).toEqual(offsets(src.frames));
    expect(Math.max(...offsets(got.frames))).toBeGreaterThan(0);
  });

  it('an avcC with 2-byte NAL lengths is rewritten to 4, matching the 4-byte-prefixed frames', () => {
    const { src } = clips[0];
    const avcc = Buffer.from(src.tracks[0].video!.codecPrivate);
    avcc[4] = 0xfd; // lengthSizeMinusOne = 1
    const tracks: TrackSet = { ...src.tracks[0], video: { ...src.tracks[0].video!, codecPrivate: avcc } };
    const got = parse(randomChunks(write(tracks, src.frames), prng(7)));
    expect(Buffer.from(got.tracks[0].video!.codecPrivate)[4]).toBe(0xff);
    expect(view(got.frames, 0)).toEqual(view(src.frames, src.frames[0].dts));
    // The caller's track set (shared with other readers of the hub) is left as it was.
    expect(avcc[4]).toBe(0xfd);
  });

  it('a stream without audio: header flags and tracks say video only', () => {
    const { src } = clips[0];
    const video = src.frames.filter((f) => f.track === 'video');
    const flv = write({ video: src.tracks[0].video }, video);
    expect(flv[4]).toBe(0x01); // TypeFlagsVideo only
    const got = parse([flv]);
    expect(got.tracks[0].audio).toBeUndefined();
    expect(got.frames).toHaveLength(60);
  });
});

describe('FlvWriter timestamps', () => {
  const T = 10 * 3600 * TIMESCALE + 45; // a source 10 h in, not on a millisecond
  const frame = (track: 'video' | 'audio', dts: number, pts = dts, keyframe = track === 'audio'): MediaFrame => ({
    track,
    dts,
    pts,
    keyframe,
    data: track === 'video' ? Buffer.from([0, 0, 0, 2, 0x65, 0x88]) : Buffer.from([0x21, 0x10]),
    wallClock: 0,
  });

  it('the first frame sets the base; tags carry ms after it, composition offsets as written', () => {
    const { src } = clips[0];
    const writer = new FlvWriter();
    const header = writer.header(src.tracks[0]);
    expect(writer.base).toBeUndefined();
    const frames = [
      frame('video', T, T + 6000, true), // pts 66.7 ms later: a B-frame stream's first frame
      frame('audio', T + 1920), // 21.3 ms
      frame('video', T + 3000, T + 3000),
      frame('video', T + 6000, T + 9000), // cts 33.3 ms
      frame('video', T + 5 * 3600 * TIMESCALE), // 18 000 000 ms: beyond the 24-bit timestamp
    ];
    const body = Buffer.concat(frames.map((f) => writer.frame(f, f.track === 'video' ? 'h264' : 'aac')));
    expect(writer.base).toBe(T);
    const tags = new FlvReader({ maxTagBytes: 1 << 20 }).push(Buffer.concat([header, body]));
    expect(tags.map((t) => [t.type, t.timestamp])).toEqual([
      [9, 0],
      [8, 0],
      [9, 0],
      [8, 21],
      [9, 33],
      [9, 67],
      [9, 18_000_000],
    ]);
    const cts = tags
      .filter((t) => t.type === 9)
      .map((t) => parseVideoTag(t.body))
      .map((p) => (p.type === 'frame' ? p.cts : 'config'));
    expect(cts).toEqual(['config', 67, 0, 33, 0]);
  });

  it('read back, the frames are where they were relative to the base, to the ms', () => {
    const { src } = clips[0];
    const writer = new FlvWriter();
    const frames = [
      frame('video', T, T + 6000, true),
      frame('audio', T + 1920),
      frame('video', T + 2970, T + 11_970),
      frame('video', T + 5 * 3600 * TIMESCALE),
    ];
    const got = parse([write(src.tracks[0], frames, writer)]);
    expect(got.frames.map((f) => [f.track, f.dts + writer.base!, f.pts + writer.base!])).toEqual([
      ['video', T, T + msToTicks(67)], // 66.7 ms rounded to 67
      ['audio', T + msToTicks(21), T + msToTicks(21)], // 21.3 ms rounded to 21
      ['video', T + 2970, T + 11_970], // whole ms: exact
      ['video', T + 5 * 3600 * TIMESCALE, T + 5 * 3600 * TIMESCALE],
    ]);
  });

  it('the base stays that of the first frame; a frame before it is written at 0, not wrapped', () => {
    const writer = new FlvWriter();
    writer.frame(frame('video', T, T, true), 'h264');
    const early = new FlvReader({ maxTagBytes: 1024 }).push(
      Buffer.concat([Buffer.from('464c5601050000000900000000', 'hex'), writer.frame(frame('audio', T - 900), 'aac')]),
    );
    expect(writer.base).toBe(T);
    expect(early.map((t) => t.timestamp)).toEqual([0]);
  });
});

describe('FlvReader', () => {
  const header = (dataOffset = 9) => {
    const h = Buffer.from('464c5601050000000900000000', 'hex');
    h.writeUInt32BE(dataOffset, 5);
    return h;
  };
  const tag = (type: number, size: number, ts = 0) => {
    const t = Buffer.alloc(11 + size + 4);
    t[0] = type;
    t.writeUIntBE(size, 1, 3);
    t.writeUIntBE(ts & 0xffffff, 4, 3);
    t[7] = ts >>> 24;
    t.fill(0xab, 11, 11 + size);
    t.writeUInt32BE(11 + size, 11 + size);
    return t;
  };

  it('refuses a stream without the FLV signature', () => {
    expect(code(() => new FlvReader({ maxTagBytes: 1024 }).push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')))).toBe('E_PROTOCOL');
    // An MP4 file: size, then 'ftyp'.
    expect(code(() => new FlvReader({ maxTagBytes: 1024 }).push(Buffer.from('00000020667479706973366d00000200', 'hex')))).toBe(
      'E_PROTOCOL',
    );
  });

  it('refuses a header size out of range', () => {
    expect(code(() => new FlvReader({ maxTagBytes: 1024 }).push(header(8)))).toBe('E_PROTOCOL');
    expect(code(() => new FlvReader({ maxTagBytes: 1024 }).push(header(0xffffffff)))).toBe('E_PROTOCOL');
  });

  it('skips the extra bytes of a longer header', () => {
    const h = header(12);
    const stream = Buffer.concat([h.subarray(0, 9), Buffer.from([1, 2, 3]), h.subarray(9), tag(8, 5, 40)]);
    const tags = new FlvReader({ maxTagBytes: 1024 }).push(stream);
    expect(tags.map((t) => [t.type, t.timestamp, t.body.byteLength])).toEqual([[8, 40, 5]]);
  });

  it('refuses a tag over maxTagBytes as soon as its header arrives, without buffering its body', () => {
    const r = new FlvReader({ maxTagBytes: 1000 });
    expect(r.push(header())).toEqual([]);
    const big = tag(9, 1001);
    expect(code(() => r.push(big.subarray(0, 11)))).toBe('E_PROTOCOL');
    expect(r.buffered).toBeLessThanOrEqual(11);
  });

  it('accepts a tag of exactly maxTagBytes', () => {
    const tags = new FlvReader({ maxTagBytes: 1000 }).push(Buffer.concat([header(), tag(9, 1000, 0x01abcdef)]));
    expect(tags.map((t) => [t.type, t.timestamp, t.body.byteLength])).toEqual([[9, 0x01abcdef, 1000]]);
  });

  it('hands out tag bodies that later chunks cannot change', () => {
    const r = new FlvReader({ maxTagBytes: 1000 });
    const chunk = Buffer.concat([header(), tag(8, 4)]);
    const [t] = r.push(chunk);
    chunk.fill(0);
    expect(t.body).toEqual(Buffer.from([0xab, 0xab, 0xab, 0xab]));
  });
});

describe('FlvReader fuzz (seeded)', () => {
  const MAX = 16 * 1024;

  /** Feeds chunks until the first error; checks the error type and the buffering bound at every step. */
  function feed(chunks: readonly Buffer[], onTags?: (tags: FlvTag[]) => void, codes = ['E_PROTOCOL']): { tags: number; error: boolean } {
    const r = new FlvReader({ maxTagBytes: MAX });
    let tags = 0;
    // Plain checks, not expect(): this runs a hundred thousand times.
    for (const c of chunks) {
      try {
        const got = r.push(c);
        tags += got.length;
        if (r.buffered > MAX + 15) throw new Error(`${r.buffered} bytes buffered after a push`);
        onTags?.(got);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        if (!codes.includes(err.code)) throw new Error(`unexpected code ${err.code}: ${err.message}`, { cause: err });
        if (r.buffered > MAX + 15 + c.byteLength)
          throw new Error(`${r.buffered} bytes buffered after a failed push of ${c.byteLength}`, { cause: err });
        return { tags, error: true };
      }
    }
    return { tags, error: false };
  }

  let valid: Buffer;
  let tagStarts: number[];
  beforeAll(() => {
    const { src } = clips[0];
    valid = write(src.tracks[0], src.frames.slice(0, 24));
    tagStarts = [];
    for (let p = 13; p < valid.byteLength; p += 11 + valid.readUIntBE(p + 1, 3) + 4) tagStarts.push(p);
    expect(tagStarts).toHaveLength(26);
  });

  function mutate(rnd: (n: number) => number): Buffer {
    let b = Buffer.from(valid);
    for (let i = 0, n = 1 + rnd(4); i < n; i++) {
      const pos = rnd(b.byteLength);
      switch (rnd(6)) {
        case 0:
          b[pos] = rnd(256);
          break;
        case 1:
          b[pos] ^= 1 << rnd(8);
          break;
        case 2: {
          // A tag header field: type, size, timestamp or stream id.
          const at = tagStarts[rnd(tagStarts.length)] + rnd(11);
          if (at < b.byteLength) b[at] = [0x00, 0xff, 0x7f, 0x80, rnd(256)][rnd(5)];
          break;
        }
        case 3: {
          const ins = Buffer.alloc(rnd(32));
          for (let k = 0; k < ins.byteLength; k++) ins[k] = rnd(256);
          b = Buffer.concat([b.subarray(0, pos), ins, b.subarray(pos + rnd(32))]);
          break;
        }
        case 4:
          b = b.subarray(0, pos);
          break;
        default: // a tag body byte near its start: codec headers, packet types, config records
          b[Math.min(b.byteLength - 1, tagStarts[rnd(tagStarts.length)] + 11 + rnd(16))] = rnd(256);
      }
    }
    return b;
  }

  it('random bytes, with and without an FLV header: typed errors only, bounded buffering', () => {
    const rnd = prng(42);
    let errors = 0;
    let tags = 0;
    for (let i = 0; i < 3000; i++) {
      const junk = Buffer.alloc(rnd(2 * MAX) & ~3);
      for (let k = 0; k < junk.byteLength; k += 4) junk.writeUInt32LE(rnd(2 ** 32), k);
      // Junk alone, after an FLV header, or after a valid stream cut anywhere.
      const prefix = [Buffer.alloc(0), valid.subarray(0, 13), valid.subarray(0, rnd(valid.byteLength))][rnd(3)];
      const res = feed(randomChunks(Buffer.concat([prefix, junk]), rnd, 2048));
      errors += Number(res.error);
      tags += res.tags;
    }
    expect(errors).toBeGreaterThan(2000);
    expect(tags).toBeGreaterThan(1000);
  });

  it('mutated valid streams: typed errors only, bounded buffering', () => {
    const rnd = prng(4242);
    let errors = 0;
    let tags = 0;
    for (let i = 0; i < 3000; i++) {
      const res = feed(randomChunks(mutate(rnd), rnd, 2048));
      errors += Number(res.error);
      tags += res.tags;
    }
    expect(errors).toBeGreaterThan(100);
    expect(tags).toBeGreaterThan(3000 * 10);
  });

  it('mutated valid streams through the assembler too (the transcoder path): typed errors only', () => {
    const rnd = prng(777);
    let errors = 0;
    let frames = 0;
    for (let i = 0; i < 3000; i++) {
      const asm = new MediaAssembler(
        { setTracks: () => {}, write: () => frames++ },
        { maxBufferedFrames: 300, maxBufferedTicks: 2 * TIMESCALE, now: () => 0 },
      );
      const res = feed(
        randomChunks(mutate(rnd), rnd, 2048),
        (tags) => {
          for (const t of tags) {
            if (t.type === 9) asm.video(t.timestamp, t.body);
            else if (t.type === 8) asm.audio(t.timestamp, t.body);
            else if (t.type === 18) asm.metadata(decodeAmf0(t.body)[1]);
          }
        },
        ['E_PROTOCOL', 'E_UNSUPPORTED_CODEC'],
      );
      errors += Number(res.error);
    }
    expect(errors).toBeGreaterThan(100);
    expect(frames).toBeGreaterThan(3000 * 5);
  });
});
