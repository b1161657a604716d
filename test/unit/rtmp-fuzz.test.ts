import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError, type MediaFrame, type TrackSet } from '../../src/core/index.js';
import { decodeAmf0, encodeAmf0, encodeAmf0EcmaArray } from '../../src/flv/index.js';
import { ChunkParser, encodeMessage, type RtmpMessage } from '../../src/ingest/rtmp/chunk.js';
import { parseAggregate, parseAudioTag, parseVideoTag } from '../../src/flv/index.js';
import { Handshake } from '../../src/ingest/rtmp/handshake.js';
import { MediaAssembler } from '../../src/flv/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const AVC_C = hex('0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800');
const HVC_C = hex(
  '0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959809a10001002a' +
    '42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003c10a2000100074401c172b46240',
);
const AV1_C = hex('81000c000a0b000000043cffbcdaf90040');

const rnd = (n: number) => Math.floor(Math.random() * n);

function mutate(src: Buffer, max = 6): Buffer {
  const b = Buffer.from(src);
  for (let i = 0, n = 1 + rnd(max); i < n && b.length > 0; i++) {
    const op = rnd(4);
    const pos = rnd(b.length);
    if (op === 0) b[pos] = rnd(256);
    else if (op === 1) b[pos] ^= 1 << rnd(8);
    else if (op === 2) b[pos] = [0x00, 0xff, 0x7f, 0x80][rnd(4)];
    else return Buffer.concat([b.subarray(0, pos), randomBytes(rnd(8)), b.subarray(pos + rnd(8))]);
  }
  return rnd(5) === 0 ? b.subarray(0, rnd(b.length + 1)) : b;
}

/** Runs fn; anything thrown must be an AppError with one of the codes a parser may use. */
function typedOnly(fn: () => unknown): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    expect(['E_PROTOCOL', 'E_LIMIT_EXCEEDED', 'E_UNSUPPORTED_CODEC']).toContain(err.code);
    return 'error';
  }
}

describe('fuzz: chunk parser', () => {
  const limits = { maxChunkSize: 4096, maxMessageSize: 32 * 1024, maxChunkStreams: 16 };
  const bound = 2 * limits.maxMessageSize + 18;

  const valid = Buffer.concat(
    Array.from({ length: 40 }, (_, i): RtmpMessage => ({
      csid: [3, 4, 6, 70, 400][i % 5],
      type: [20, 8, 9, 18, 9][i % 5],
      streamId: 1,
      timestamp: i * 33 + (i % 7 === 0 ? 0x0100_0000 : 0),
      payload: randomBytes(rnd(900)),
    })).map((m) => encodeMessage(m, 128)),
  );

  it('random buffers: typed errors only, bounded buffering', () => {
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      const p = new ChunkParser(limits);
      const input = randomBytes(rnd(2000));
      const r = typedOnly(() => {
        for (let off = 0; off < input.length;) {
          const n = 1 + rnd(300);
          p.push(input.subarray(off, off + n));
          expect(p.bufferedBytes).toBeLessThanOrEqual(bound);
          off += n;
        }
      });
      if (r === 'error') errors++;
    }
    expect(errors).toBeGreaterThan(1000);
  });

  it('mutated valid streams: typed errors only, bounded buffering, sane messages', () => {
    for (let i = 0; i < 3000; i++) {
      const p = new ChunkParser(limits);
      const input = mutate(valid, 10);
      typedOnly(() => {
        for (let off = 0; off < input.length;) {
          const n = 1 + rnd(500);
          for (const m of p.push(input.subarray(off, off + n))) {
            expect(m.payload.length).toBeLessThanOrEqual(limits.maxMessageSize);
            expect(m.timestamp).toBeGreaterThanOrEqual(0);
            expect(m.timestamp).toBeLessThanOrEqual(0xffff_ffff);
          }
          expect(p.bufferedBytes).toBeLessThanOrEqual(bound);
          off += n;
        }
      });
    }
  });
});

describe('fuzz: AMF0', () => {
  const valid = Buffer.concat([
    encodeAmf0('connect', 1, { app: 'live', tcUrl: 'rtmp://x/live', fourCcList: ['hvc1', 'av01'], n: null, d: new Date(5) }),
    encodeAmf0EcmaArray({ width: 1920, height: 1080, framerate: 60, nested: { a: [1, 2, { b: 'c' }] } }),
  ]);

  it('random and mutated bodies decode or throw E_PROTOCOL', () => {
    for (let i = 0; i < 5000; i++) typedOnly(() => decodeAmf0(i % 2 ? randomBytes(rnd(200)) : mutate(valid)));
  });

  it('hostile counts and lengths are refused without big allocations', () => {
    expect(typedOnly(() => decodeAmf0(hex('0c ffffffff')))).toBe('error');
    expect(typedOnly(() => decodeAmf0(hex('0a 7fffffff 00')))).toBe('error');
    expect(typedOnly(() => decodeAmf0(Buffer.alloc(10_000, 0x0a)))).toBe('error'); // nested strict arrays
    expect(typedOnly(() => decodeAmf0(Buffer.concat(Array.from({ length: 5000 }, () => hex('05')))))).toBe('error');
  });
});

describe('fuzz: FLV tags and track assembly', () => {
  const videos = [
    Buffer.concat([hex('1700000000'), AVC_C]),
    Buffer.concat([hex('1701000021'), hex('00000005 6588840021')]),
    Buffer.concat([hex('90'), Buffer.from('hvc1'), HVC_C]),
    Buffer.concat([hex('91'), Buffer.from('hvc1'), hex('000021 00000002 2601')]),
    Buffer.concat([hex('90'), Buffer.from('av01'), AV1_C]),
    Buffer.concat([hex('a3'), Buffer.from('av01'), hex('12000a')]),
  ];
  const audios = [hex('af001190'), hex('af01210a'), Buffer.concat([hex('90'), Buffer.from('mp4a'), hex('1210')])];

  it('tag parsers: typed errors only', () => {
    for (let i = 0; i < 5000; i++) {
      typedOnly(() => parseVideoTag(i % 3 === 0 ? randomBytes(rnd(64)) : mutate(videos[i % videos.length])));
      typedOnly(() => parseAudioTag(i % 3 === 0 ? randomBytes(rnd(16)) : mutate(audios[i % audios.length])));
      typedOnly(() => parseAggregate(randomBytes(rnd(100)), rnd(1000)));
    }
  });

  it('assembler: typed errors only, frames always well formed', () => {
    for (let i = 0; i < 2000; i++) {
      const frames: MediaFrame[] = [];
      const tracks: TrackSet[] = [];
      const a = new MediaAssembler(
        { setTracks: (t) => tracks.push(t), write: (f) => frames.push(f) },
        { maxBufferedFrames: 50, maxBufferedTicks: 90_000, now: () => 0 },
      );
      if (i % 2) a.metadata({ videocodecid: 7, audiocodecid: 10, width: rnd(4000) });
      for (let j = 0; j < 30; j++) {
        const ts = rnd(2) ? j * 33 : rnd(2 ** 32);
        typedOnly(() => (rnd(2) ? a.video(ts, mutate(videos[rnd(videos.length)])) : a.audio(ts, mutate(audios[rnd(audios.length)]))));
        expect(a.heldFrames()).toBeLessThanOrEqual(50);
      }
      for (const f of frames) expect(Number.isFinite(f.dts) && f.pts >= f.dts).toBe(true);
      for (const t of tracks) expect(t.video ?? t.audio).toBeDefined();
    }
  });
});

describe('fuzz: handshake', () => {
  it('random bytes: typed errors only, at most one reply', () => {
    for (let i = 0; i < 2000; i++) {
      const h = new Handshake();
      const input = Buffer.concat([Buffer.of(rnd(4) ? 3 : rnd(256)), randomBytes(rnd(4000))]);
      let replies = 0;
      typedOnly(() => {
        for (let off = 0; off < input.length;) {
          const n = 1 + rnd(1000);
          if (h.push(input.subarray(off, off + n)).reply) replies++;
          off += n;
        }
      });
      expect(replies).toBeLessThanOrEqual(1);
    }
  });
});
