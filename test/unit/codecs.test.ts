import { describe, expect, it } from 'vitest';
import {
  AppError,
  codecString,
  parseAudioSpecificConfig,
  parseAv1CodecConfig,
  parseAvcDecoderConfig,
  parseHevcDecoderConfig,
  parseOpusHead,
  type TrackInfo,
} from '../../src/core/index.js';

/*
 * Real records, pulled out of MP4 files written by FFmpeg 5.1 (libx264, libx265, libsvtav1, aac), e.g.
 *   ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 0.2 -c:v libx264 -profile:v high -f mp4 out.mp4
 * and copying the payload of the avcC / hvcC / av1C box (and the DecoderSpecificInfo of the esds).
 */
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

const AVC = {
  baseline360: hex('0142c01effe100196742c01ed900a02ff970110000030001000003003c0f162e4801000568cb83cb20'),
  high720: hex('0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800'),
  high1080: hex('01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000668ebe3cb22c0fdf8f800'),
  high444p1080: hex('01f40028ffe1001b67f40028919b280f0044fc4e0220000003002000000781e30632c001000668ebe3c44844fff8f800'),
  high422p720: hex('017a001fffe1001a677a001fbcd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fef8f800'),
  // -flags +ildct+ilme -x264-params interlaced=1: frame_mbs_only_flag = 0
  interlaced720: hex('01640020ffe1001a67640020acd940500bbf2e0220000003002000000783e2c5b2c001000668fba3cb22c0fdf8f800'),
  // 1000x562: cropping on the right and at the bottom
  odd1000x562: hex('0164001fffe1001b6764001facd940fc12796230110000030001000003003c0f1831960100' + '0768ebe3cb3002c0fdf8f800'),
};

const HEVC = {
  // -x265-params info=0 keeps x265's version SEI out of the record
  main1080: hex(
    '01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff016000000300900000030000030078959809' +
      'a10001002a420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000f04a20001' +
      '00074401c172b46240',
  ),
  main10_720: hex(
    '0102200000009000000000005df000fcfdfafa00000f03a00001001840010c01ffff02200000030090000003000003005d959809' +
      'a10001002b42010102200000030090000003000003005da00280802d1365959a4932bc05a020000003002000000303c1a20001' +
      '00074401c172b46240',
  ),
  odd1000x562: hex(
    '0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003005d959809' +
      'a10001002c42010101600000030090000003000003005da007d2008e7c996566924caf016808000003000800000300f040a2' +
      '000100074401c172b46240',
  ),
};

const AV1_854x480 = hex('81040c000a0b00000024c6abdf00be0010');
const ASC_44100_STEREO = hex('1210');
const ASC_48000_MONO = hex('1188');

/** MSB-first bit writer for hand-built SPS / ASC vectors. */
class Bits {
  #bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.#bits.push(Math.floor(v / 2 ** i) % 2);
    return this;
  }
  ue(v: number): this {
    const len = Math.floor(Math.log2(v + 1));
    return this.u(len, 0).u(len + 1, v + 1);
  }
  se(v: number): this {
    return this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }
  bytes(): Uint8Array {
    const b = [...this.#bits];
    while (b.length % 8) b.push(0);
    return Uint8Array.from({ length: b.length / 8 }, (_, i) => parseInt(b.slice(i * 8, i * 8 + 8).join(''), 2));
  }
}

/** Inserts emulation prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3). */
function escapeRbsp(rbsp: Uint8Array): Uint8Array {
  const out: number[] = [];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

function avcCWith(sps: Uint8Array): Uint8Array {
  const pps = hex('68ebe3cb22c0');
  return Uint8Array.from([1, sps[1], sps[2], sps[3], 0xff, 0xe1, 0, sps.length, ...sps, 1, 0, pps.length, ...pps]);
}

function expectProtocolError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('E_PROTOCOL');
    return;
  }
  expect.unreachable('expected an E_PROTOCOL AppError');
}

describe('parseAvcDecoderConfig', () => {
  it.each([
    ['baseline360', 66, 0xc0, 30, 640, 360],
    ['high720', 100, 0, 31, 1280, 720],
    ['high1080', 100, 0, 40, 1920, 1080],
    ['high444p1080', 244, 0, 40, 1920, 1080],
    ['high422p720', 122, 0, 31, 1280, 720],
    ['interlaced720', 100, 0, 32, 1280, 720],
    ['odd1000x562', 100, 0, 31, 1000, 562],
  ] as const)('%s', (name, profile, compat, level, width, height) => {
    const c = parseAvcDecoderConfig(AVC[name]);
    expect({ profile: c.profile, compat: c.compat, level: c.level, width: c.width, height: c.height }).toEqual({
      profile,
      compat,
      level,
      width,
      height,
    });
    expect(c.nalLengthSize).toBe(4);
    expect(c.sps).toHaveLength(1);
    expect(c.pps).toHaveLength(1);
    expect(c.sps[0][0] & 0x1f).toBe(7);
    expect(c.pps[0][0] & 0x1f).toBe(8);
  });

  it('returns the parameter sets byte for byte', () => {
    const c = parseAvcDecoderConfig(AVC.baseline360);
    expect(Buffer.from(c.sps[0]).toString('hex')).toBe('6742c01ed900a02ff970110000030001000003003c0f162e48');
    expect(Buffer.from(c.pps[0]).toString('hex')).toBe('68cb83cb20');
  });

  it('parses scaling matrices, POC type 1, field coding and cropping, across emulation prevention bytes', () => {
    const b = new Bits().u(8, 0x67).u(8, 100).u(8, 0).u(8, 40).ue(0);
    b.ue(1).ue(0).ue(0).u(1, 0).u(1, 1); // 4:2:0, 8-bit, seq_scaling_matrix_present_flag
    for (let i = 0; i < 8; i++) {
      if (i === 0) {
        b.u(1, 1);
        for (let j = 0; j < 16; j++) b.se(j % 2 ? 3 : -2);
      } else if (i === 6) {
        b.u(1, 1).se(4).se(-12); // nextScale becomes 0: the rest of the list is not coded
      } else {
        b.u(1, 0);
      }
    }
    b.ue(0)
      .ue(1)
      .u(1, 0)
      .se(2 ** 28)
      .se(-7)
      .ue(3)
      .se(1)
      .se(-1)
      .se(2); // POC type 1 with a long code
    b.ue(4).u(1, 0).ue(119).ue(33).u(1, 0).u(1, 1).u(1, 1); // 120 x 34 MBs, field pairs
    b.u(1, 1).ue(0).ue(0).ue(0).ue(2); // crop 2 * 2 * 2 = 8 lines at the bottom
    b.u(1, 0).u(1, 1); // no VUI, rbsp_stop_one_bit
    const sps = escapeRbsp(b.bytes());
    expect(Buffer.from(sps).includes(Buffer.from([0, 0, 3]))).toBe(true);
    const c = parseAvcDecoderConfig(avcCWith(sps));
    expect([c.width, c.height]).toEqual([1920, 1080]);
  });

  it('rejects truncated records and bad fields', () => {
    for (const avcC of Object.values(AVC)) {
      const end = avcC.length - 4; // the 4-byte high-profile extension after the PPS is optional
      for (let n = 0; n < (avcC[1] === 66 ? avcC.length : end); n++) expectProtocolError(() => parseAvcDecoderConfig(avcC.subarray(0, n)));
    }
    const bad = Uint8Array.from(AVC.high720);
    bad[0] = 2;
    expectProtocolError(() => parseAvcDecoderConfig(bad));
    const noSps = Uint8Array.from(AVC.high720);
    noSps[5] = 0xe0;
    expectProtocolError(() => parseAvcDecoderConfig(noSps));
    const truncatedSps = Uint8Array.from([1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 0]);
    expectProtocolError(() => parseAvcDecoderConfig(truncatedSps));
  });
});

describe('parseHevcDecoderConfig', () => {
  it.each([
    ['main1080', 1920, 1080, 'hvc1.1.6.L120.90'],
    ['main10_720', 1280, 720, 'hvc1.2.4.L93.90'],
    ['odd1000x562', 1000, 562, 'hvc1.1.6.L93.90'],
  ] as const)('%s', (name, width, height, codec) => {
    expect(parseHevcDecoderConfig(HEVC[name])).toEqual({ width, height, codecString: codec });
  });

  it('writes profile space, tier and constraint bytes as annex E says', () => {
    const r = Uint8Array.from(HEVC.main1080);
    r[1] = (2 << 6) | (1 << 5) | 1; // profile_space 2 (B), high tier, Main
    r[6] = 0xb0;
    r[9] = 0x01; // constraint bytes B0.00.00.01.00.00: trailing zero bytes dropped
    expect(parseHevcDecoderConfig(r).codecString).toBe('hvc1.B1.6.H120.B0.0.0.1');
    r[6] = 0;
    r[9] = 0;
    expect(parseHevcDecoderConfig(r).codecString).toBe('hvc1.B1.6.H120');
  });

  it('rejects truncated records', () => {
    for (const hvcC of Object.values(HEVC)) {
      for (let n = 0; n < hvcC.length; n++) expectProtocolError(() => parseHevcDecoderConfig(hvcC.subarray(0, n)));
    }
  });
});

describe('parseAv1CodecConfig', () => {
  it('reads the codec string and the sequence header size', () => {
    expect(parseAv1CodecConfig(AV1_854x480)).toEqual({ width: 854, height: 480, codecString: 'av01.0.04M.08' });
  });

  it('returns 0x0 without configOBUs and names 10/12-bit profiles', () => {
    expect(parseAv1CodecConfig(hex('81 4d 60 00'))).toEqual({ width: 0, height: 0, codecString: 'av01.2.13M.12' });
    expect(parseAv1CodecConfig(hex('81 0d c0 00'))).toEqual({ width: 0, height: 0, codecString: 'av01.0.13H.10' });
  });

  it('rejects truncated records and bad markers', () => {
    for (let n = 0; n < AV1_854x480.length; n++) {
      if (n === 4) continue; // the 4-byte header alone is a valid record
      expectProtocolError(() => parseAv1CodecConfig(AV1_854x480.subarray(0, n)));
    }
    expectProtocolError(() => parseAv1CodecConfig(hex('01040c00')));
  });
});

describe('parseAudioSpecificConfig', () => {
  it('reads FFmpeg AAC-LC configs', () => {
    expect(parseAudioSpecificConfig(ASC_44100_STEREO)).toEqual({ objectType: 2, sampleRate: 44100, channels: 2 });
    expect(parseAudioSpecificConfig(ASC_48000_MONO)).toEqual({ objectType: 2, sampleRate: 48000, channels: 1 });
  });

  it('reads an explicit frequency (index 15), the object type escape (31) and 7.1', () => {
    const explicit = new Bits().u(5, 2).u(4, 15).u(24, 22_222).u(4, 2).bytes();
    expect(parseAudioSpecificConfig(explicit)).toEqual({ objectType: 2, sampleRate: 22_222, channels: 2 });
    const escaped = new Bits()
      .u(5, 31)
      .u(6, 42 - 32)
      .u(4, 3)
      .u(4, 7)
      .bytes();
    expect(parseAudioSpecificConfig(escaped)).toEqual({ objectType: 42, sampleRate: 48_000, channels: 8 });
    const heAac = new Bits().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2).bytes();
    expect(parseAudioSpecificConfig(heAac)).toEqual({ objectType: 5, sampleRate: 24_000, channels: 2 });
  });

  it('rejects truncated and reserved values', () => {
    expectProtocolError(() => parseAudioSpecificConfig(new Uint8Array(0)));
    expectProtocolError(() => parseAudioSpecificConfig(ASC_44100_STEREO.subarray(0, 1)));
    expectProtocolError(() => parseAudioSpecificConfig(new Bits().u(5, 2).u(4, 15).u(8, 1).bytes()));
    expectProtocolError(() => parseAudioSpecificConfig(new Bits().u(5, 2).u(4, 13).u(4, 2).bytes()));
    expectProtocolError(() => parseAudioSpecificConfig(new Bits().u(5, 2).u(4, 4).u(4, 9).bytes()));
    expectProtocolError(() => parseAudioSpecificConfig(new Bits().u(5, 0).u(4, 4).u(4, 2).bytes()));
  });
});

describe('parseOpusHead', () => {
  it('reads the little-endian identification header', () => {
    const head = hex('4f707573486561640102380180bb00000000' + '00');
    expect(parseOpusHead(head)).toMatchObject({ channels: 2, preSkip: 312, inputSampleRate: 48000, mappingFamily: 0 });
    expectProtocolError(() => parseOpusHead(head.subarray(0, 18)));
    expectProtocolError(() => parseOpusHead(hex('4f707573486561640106380180bb0000000001')));
  });
});

describe('codecString', () => {
  const video = (codec: 'h264' | 'h265' | 'av1', codecPrivate: Uint8Array): TrackInfo => ({
    kind: 'video',
    codec,
    codecPrivate,
    width: 0,
    height: 0,
    frameRate: 0,
  });
  const audio = (codec: 'aac' | 'opus', codecPrivate: Uint8Array): TrackInfo => ({
    kind: 'audio',
    codec,
    codecPrivate,
    sampleRate: 48000,
    channels: 2,
  });

  it('names every codec', () => {
    expect(codecString(video('h264', AVC.baseline360))).toBe('avc1.42c01e');
    expect(codecString(video('h264', AVC.high1080))).toBe('avc1.640028');
    expect(codecString(video('h265', HEVC.main10_720))).toBe('hvc1.2.4.L93.90');
    expect(codecString(video('av1', AV1_854x480))).toBe('av01.0.04M.08');
    expect(codecString(audio('aac', ASC_44100_STEREO))).toBe('mp4a.40.2');
    expect(codecString(audio('opus', new Uint8Array(0)))).toBe('opus');
  });
});

describe('robustness', () => {
  // xorshift32: deterministic, so a failure reproduces
  let seed = 0x9e3779b9;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const parsers: [string, (b: Uint8Array) => unknown, Uint8Array[]][] = [
    ['avcC', parseAvcDecoderConfig, Object.values(AVC)],
    ['hvcC', parseHevcDecoderConfig, Object.values(HEVC)],
    ['av1C', parseAv1CodecConfig, [AV1_854x480]],
    ['asc', parseAudioSpecificConfig, [ASC_44100_STEREO, ASC_48000_MONO]],
    ['OpusHead', parseOpusHead, [hex('4f707573486561640102380180bb0000000000')]],
  ];

  it.each(parsers)('%s: random and mutated input either parses or throws E_PROTOCOL', (_, parse, seeds) => {
    const check = (input: Uint8Array) => {
      try {
        const out = parse(input) as { width?: number; height?: number };
        if (out.width !== undefined) expect(out.width).toBeLessThanOrEqual(16384);
        if (out.height !== undefined) expect(out.height).toBeLessThanOrEqual(16384);
      } catch (err) {
        expect(err).toBeInstanceOf(AppError);
        expect((err as AppError).code).toBe('E_PROTOCOL');
      }
    };
    for (let i = 0; i < 3000; i++) {
      check(Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      const mutated = Uint8Array.from(seeds[i % seeds.length]);
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) {
        mutated[Math.floor(rand() * mutated.length)] ^= 1 << Math.floor(rand() * 8);
      }
      check(mutated);
    }
  });

  it('degenerate SPS bit patterns end quickly', () => {
    const sps = (fill: number) => {
      const b = new Uint8Array(64).fill(fill);
      b.set([0x67, 100, 0, 31]);
      return avcCWith(b);
    };
    // all zeros: an exp-Golomb prefix longer than 32 bits
    expectProtocolError(() => parseAvcDecoderConfig(sps(0x00)));
    // all ones: every ue(v) is 0 and every flag is set: one macroblock, 4:0:0
    expect(parseAvcDecoderConfig(sps(0xff))).toMatchObject({ width: 16, height: 16 });
  });
});
