import { describe, expect, it } from 'vitest';
import { msToTicks, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { parseAggregate, parseAudioTag, parseVideoTag } from '../../src/flv/index.js';
import { MediaAssembler, reprefixNals } from '../../src/flv/index.js';
import { code } from '../helpers/errors.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s, 'latin1');
const cat = (...b: (Buffer | number[])[]) => Buffer.concat(b.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(x))));

/** Real records: x264 640x360, x265 320x240, libaom 320x240; AAC-LC 48 kHz stereo / 44.1 kHz stereo. */
const AVC_C = hex('0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800');
const HVC_C = hex(
  '0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959809a10001002a' +
    '42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003c10a2000100074401c172b46240',
);
const AV1_C = hex('81000c000a0b000000043cffbcdaf90040');
const ASC_48K = hex('1190');
const ASC_44K = hex('1210');
const NALS = hex('00000005 6588840021 00000002 0601');

describe('legacy FLV video tags (AVC)', () => {
  it('reads the AVC sequence header', () => {
    expect(parseVideoTag(cat([0x17, 0x00, 0, 0, 0], AVC_C))).toEqual({ type: 'config', codec: 'h264', config: AVC_C });
  });

  it('reads NALUs with a signed 24-bit composition time', () => {
    expect(parseVideoTag(cat([0x17, 0x01, 0x00, 0x00, 0x42], NALS))).toEqual({
      type: 'frame',
      codec: 'h264',
      keyframe: true,
      cts: 66,
      data: NALS,
    });
    expect(parseVideoTag(cat([0x27, 0x01, 0xff, 0xff, 0xfe], NALS))).toMatchObject({ keyframe: false, cts: -2 });
  });

  it('reads end of sequence and ignores command frames and empty messages', () => {
    expect(parseVideoTag(hex('1702000000'))).toEqual({ type: 'end', codec: 'h264' });
    expect(parseVideoTag(hex('5700'))).toMatchObject({ type: 'ignore' });
    expect(parseVideoTag(Buffer.alloc(0))).toMatchObject({ type: 'ignore' });
  });

  it('refuses Sorenson, VP6 and screen video as unsupported', () => {
    for (const b0 of [0x12, 0x14, 0x15, 0x13, 0x16]) expect(code(() => parseVideoTag(cat([b0, 0, 0, 0, 0])))).toBe('E_UNSUPPORTED_CODEC');
  });

  it('refuses truncated tags and unknown packet types as protocol errors', () => {
    expect(code(() => parseVideoTag(hex('1701')))).toBe('E_PROTOCOL');
    expect(code(() => parseVideoTag(hex('1709000000')))).toBe('E_PROTOCOL');
    expect(code(() => parseVideoTag(hex('1700000000')))).toBe('E_PROTOCOL');
  });
});

describe('enhanced RTMP video tags', () => {
  const ex = (frameType: number, packetType: number, fourCc: string, ...rest: (Buffer | number[])[]) =>
    cat([0x80 | (frameType << 4) | packetType], ascii(fourCc), ...rest);

  it('hvc1: SequenceStart, CodedFrames with composition time, CodedFramesX without', () => {
    expect(parseVideoTag(ex(1, 0, 'hvc1', HVC_C))).toEqual({ type: 'config', codec: 'h265', config: HVC_C });
    expect(parseVideoTag(ex(1, 1, 'hvc1', [0, 0, 0x21], NALS))).toEqual({
      type: 'frame',
      codec: 'h265',
      keyframe: true,
      cts: 33,
      data: NALS,
    });
    expect(parseVideoTag(ex(2, 3, 'hvc1', NALS))).toEqual({ type: 'frame', codec: 'h265', keyframe: false, cts: 0, data: NALS });
    expect(parseVideoTag(ex(1, 2, 'hvc1'))).toEqual({ type: 'end', codec: 'h265' });
  });

  it('av01: SequenceStart, CodedFrames carry no composition time, MPEG2TSSequenceStart and Metadata are ignored', () => {
    const obus = hex('12000a0b00000004');
    expect(parseVideoTag(ex(1, 0, 'av01', AV1_C))).toEqual({ type: 'config', codec: 'av1', config: AV1_C });
    expect(parseVideoTag(ex(1, 1, 'av01', obus))).toEqual({ type: 'frame', codec: 'av1', keyframe: true, cts: 0, data: obus });
    expect(parseVideoTag(ex(2, 3, 'av01', obus))).toEqual({ type: 'frame', codec: 'av1', keyframe: false, cts: 0, data: obus });
    expect(parseVideoTag(ex(1, 5, 'av01', hex('8004')))).toMatchObject({ type: 'ignore' });
    expect(parseVideoTag(ex(1, 4, 'av01', hex('02000a636f6c6f72496e666f')))).toMatchObject({ type: 'ignore' });
  });

  it('avc1 in the enhanced layout', () => {
    expect(parseVideoTag(ex(1, 0, 'avc1', AVC_C))).toEqual({ type: 'config', codec: 'h264', config: AVC_C });
    expect(parseVideoTag(ex(2, 1, 'avc1', [0xff, 0xff, 0xdf], NALS))).toMatchObject({ codec: 'h264', keyframe: false, cts: -33 });
  });

  it('unwraps ModEx packets (v2) to the real packet type', () => {
    // ModEx: size-1 = 2 (3 bytes of TimestampOffsetNano), then modExType 0 << 4 | CodedFrames.
    const body = cat([0x80 | 0x10 | 7, 2, 0x00, 0x01, 0x00, 0x01], ascii('hvc1'), [0, 0, 5], NALS);
    expect(parseVideoTag(body)).toEqual({ type: 'frame', codec: 'h265', keyframe: true, cts: 5, data: NALS });
    expect(code(() => parseVideoTag(cat([0x97, 200])))).toBe('E_PROTOCOL');
  });

  it('refuses vp09 and multitrack as unsupported, truncated tags as protocol errors', () => {
    expect(code(() => parseVideoTag(ex(1, 0, 'vp09', hex('0100'))))).toBe('E_UNSUPPORTED_CODEC');
    expect(code(() => parseVideoTag(cat([0x96, 0x00], ascii('hvc1'))))).toBe('E_UNSUPPORTED_CODEC');
    expect(code(() => parseVideoTag(hex('9068')))).toBe('E_PROTOCOL');
    expect(code(() => parseVideoTag(ex(1, 1, 'hvc1', [0])))).toBe('E_PROTOCOL');
    expect(code(() => parseVideoTag(ex(1, 0, 'hvc1')))).toBe('E_PROTOCOL');
    expect(code(() => parseVideoTag(ex(1, 9, 'hvc1')))).toBe('E_PROTOCOL');
  });
});

describe('FLV audio tags', () => {
  it('reads the AAC AudioSpecificConfig and raw frames', () => {
    expect(parseAudioTag(cat([0xaf, 0x00], ASC_48K))).toEqual({ type: 'config', codec: 'aac', config: ASC_48K });
    expect(parseAudioTag(cat([0xaf, 0x01], [1, 2, 3]))).toEqual({ type: 'frame', codec: 'aac', data: Buffer.of(1, 2, 3) });
  });

  it('reads enhanced audio with FourCC mp4a', () => {
    expect(parseAudioTag(cat([0x90], ascii('mp4a'), ASC_44K))).toEqual({ type: 'config', codec: 'aac', config: ASC_44K });
    expect(parseAudioTag(cat([0x91], ascii('mp4a'), [9]))).toEqual({ type: 'frame', codec: 'aac', data: Buffer.of(9) });
  });

  it('refuses MP3, Speex, PCM and enhanced Opus as unsupported', () => {
    for (const b of [hex('2f00'), hex('bf00'), hex('3f00'), cat([0x90], ascii('Opus'), [1])]) {
      expect(code(() => parseAudioTag(b))).toBe('E_UNSUPPORTED_CODEC');
    }
  });

  it('refuses short tags and configs', () => {
    expect(code(() => parseAudioTag(hex('af')))).toBe('E_PROTOCOL');
    expect(code(() => parseAudioTag(hex('af0012')))).toBe('E_PROTOCOL');
    expect(code(() => parseAudioTag(hex('af05')))).toBe('E_PROTOCOL');
  });
});

describe('aggregate messages', () => {
  it('splits FLV tags and rebases their timestamps on the message timestamp', () => {
    const tag = (type: number, ts: number, body: Buffer) => {
      const h = Buffer.alloc(11);
      h[0] = type;
      h.writeUIntBE(body.length, 1, 3);
      h.writeUIntBE(ts & 0xffffff, 4, 3);
      h[7] = ts >>> 24;
      const prev = Buffer.alloc(4);
      prev.writeUInt32BE(11 + body.length);
      return cat(h, body, prev);
    };
    const items = parseAggregate(cat(tag(9, 1000, hex('1701')), tag(8, 1023, hex('af01aa'))), 50);
    expect(items.map((i) => [i.type, i.timestamp, i.body.toString('hex')])).toEqual([
      [9, 50, '1701'],
      [8, 73, 'af01aa'],
    ]);
    expect(code(() => parseAggregate(hex('0900000a'), 0))).toBe('E_PROTOCOL');
  });
});

class Sink {
  tracks: TrackSet[] = [];
  frames: MediaFrame[] = [];
  log: string[] = [];
  setTracks(t: TrackSet) {
    this.tracks.push(t);
    this.log.push('tracks');
  }
  write(f: MediaFrame) {
    this.frames.push(f);
    this.log.push(f.track);
  }
}

const opts = { maxBufferedFrames: 300, maxBufferedTicks: 180_000, now: () => 1234 };
const avcSeq = cat([0x17, 0x00, 0, 0, 0], AVC_C);
const avcKey = (cts = 0) => cat([0x17, 0x01, 0, 0, cts], NALS);
const aacSeq = cat([0xaf, 0x00], ASC_48K);
const aacRaw = cat([0xaf, 0x01], [0x21, 0x10]);

describe('MediaAssembler: track announcement', () => {
  it('waits for every sequence header onMetaData announced, then flushes held frames', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.metadata({ width: 640, height: 360, framerate: 30, videocodecid: 7, audiocodecid: 10 });
    a.video(0, avcSeq);
    a.video(0, avcKey(2));
    expect(sink.tracks).toHaveLength(0);
    a.audio(0, aacSeq);
    expect(sink.log).toEqual(['tracks', 'video']);
    a.audio(21, aacRaw);
    const t = sink.tracks[0];
    expect(t.video).toMatchObject({ kind: 'video', codec: 'h264', width: 640, height: 360, frameRate: 30 });
    expect(Buffer.from(t.video!.codecPrivate)).toEqual(AVC_C);
    expect(t.audio).toMatchObject({ kind: 'audio', codec: 'aac', sampleRate: 48_000, channels: 2 });
    expect(sink.frames[0]).toEqual({ track: 'video', dts: 0, pts: msToTicks(2), keyframe: true, data: NALS, wallClock: 1234 });
    expect(sink.frames[1]).toMatchObject({ track: 'audio', dts: msToTicks(21), pts: msToTicks(21), keyframe: true });
  });

  it('without metadata announces at the first coded frame and re-announces when a header arrives later', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.video(0, avcSeq);
    expect(sink.tracks).toHaveLength(0);
    a.video(0, avcKey());
    expect(sink.tracks).toEqual([expect.objectContaining({ video: expect.objectContaining({ codec: 'h264' }) })]);
    expect(sink.tracks[0].audio).toBeUndefined();
    a.audio(10, aacSeq);
    expect(sink.tracks).toHaveLength(2);
    expect(sink.tracks[1].audio?.sampleRate).toBe(48_000);
  });

  it('re-announces only when a sequence header changes', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.video(0, avcSeq);
    a.video(0, avcKey());
    a.video(33, avcSeq);
    expect(sink.tracks).toHaveLength(1);
    a.video(66, cat([0x90], ascii('hvc1'), HVC_C));
    expect(sink.tracks).toHaveLength(2);
    expect(sink.tracks[1].video).toMatchObject({ codec: 'h265', width: 320, height: 240 });
    // A frame of the old codec after the switch has no config to go with: dropped and counted.
    a.video(99, avcKey());
    expect(a.droppedFrames).toBe(1);
  });

  it('drops coded frames that come before their sequence header', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.video(0, avcKey());
    a.audio(0, aacRaw);
    expect(a.droppedFrames).toBe(2);
    expect(sink.log).toEqual([]);
  });

  it('does not hold frames forever for a declared track that never comes (bounded)', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, { ...opts, maxBufferedTicks: 10 * 90_000 });
    a.metadata({ videocodecid: 7, audiocodecid: 10 });
    a.video(0, avcSeq);
    for (let i = 0; i < 299; i++) a.video(i * 33, avcKey());
    expect(a.heldFrames()).toBe(299);
    expect(sink.tracks).toHaveLength(0);
    a.video(299 * 33, avcKey());
    expect(sink.tracks).toHaveLength(1);
    expect(sink.tracks[0].audio).toBeUndefined();
    expect(sink.frames).toHaveLength(300);
    expect(a.heldFrames()).toBe(0);
  });

  it('also stops holding after 2 s of decode time', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.metadata({ videocodecid: 7, audiocodecid: 10 });
    a.audio(0, aacSeq);
    for (let ms = 0; ms < 2000; ms += 21) a.audio(ms, aacRaw);
    expect(sink.tracks).toHaveLength(0);
    a.audio(2000, aacRaw);
    expect(sink.tracks).toHaveLength(1);
  });

  it('takes width/height from metadata when the codec record does not carry them (av1C without OBUs)', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.metadata({ width: 1280, height: 720, videocodecid: 'av01' });
    a.video(0, cat([0x90], ascii('av01'), hex('81000c00')));
    expect(sink.tracks[0].video).toMatchObject({ codec: 'av1', width: 1280, height: 720 });
  });
});

describe('MediaAssembler: frames', () => {
  it('re-prefixes NAL units to 4-byte lengths when avcC says 2', () => {
    const avc2 = Buffer.from(AVC_C);
    avc2[4] = 0xfd; // lengthSizeMinusOne = 1
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.video(0, cat([0x17, 0, 0, 0, 0], avc2));
    a.video(0, cat([0x17, 1, 0, 0, 0], hex('0005 6588840021 0002 0601')));
    expect(Buffer.from(sink.frames[0].data)).toEqual(NALS);
    expect(code(() => a.video(33, cat([0x17, 1, 0, 0, 0], hex('0009 65'))))).toBe('E_PROTOCOL');
    expect(reprefixNals(hex('01 aa 02 bbcc'), 1)).toEqual(hex('00000001aa 00000002bbcc'));
  });

  it('keeps dts increasing across the 32-bit millisecond wrap', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.audio(0, aacSeq);
    for (const ts of [0xffff_ffd0, 0xffff_ffe5, 0xffff_fffa, 0x0f, 0x24]) a.audio(ts, aacRaw);
    const dts = sink.frames.map((f) => f.dts);
    expect(dts).toEqual([0xffff_ffd0, 0xffff_ffe5, 0xffff_fffa, 0x1_0000_000f, 0x1_0000_0024].map(msToTicks));
  });

  it('clamps a negative composition time so pts >= dts', () => {
    const sink = new Sink();
    const a = new MediaAssembler(sink, opts);
    a.video(100, avcSeq);
    a.video(100, cat([0x27, 1, 0xff, 0xff, 0xf0], NALS));
    expect(sink.frames[0].pts).toBe(sink.frames[0].dts);
  });

  it('refuses a broken sequence header as a protocol error', () => {
    const a = new MediaAssembler(new Sink(), opts);
    expect(code(() => a.video(0, cat([0x17, 0, 0, 0, 0], hex('01640028'))))).toBe('E_PROTOCOL');
    expect(code(() => a.audio(0, hex('af000000')))).toBe('E_PROTOCOL');
  });
});
