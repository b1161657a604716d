import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ChunkParser,
  encodeBasicHeader,
  encodeMessage,
  MessageType,
  type ChunkParserLimits,
  type RtmpMessage,
} from '../../src/ingest/rtmp/chunk.js';
import { TimestampUnwrapper } from '../../src/flv/index.js';
import { Handshake, HANDSHAKE_SIZE } from '../../src/ingest/rtmp/handshake.js';
import { code } from '../helpers/errors.js';

const LIMITS: ChunkParserLimits = { maxChunkSize: 65_536, maxMessageSize: 1 << 20, maxChunkStreams: 16 };

interface Fields {
  ts?: number;
  len?: number;
  type?: number;
  sid?: number;
  ext?: number;
}

/** One chunk: basic header, the message header of `fmt`, optional extended timestamp, payload. */
function chunk(fmt: 0 | 1 | 2 | 3, csid: number, f: Fields, payload: Buffer = Buffer.alloc(0)): Buffer {
  const parts = [encodeBasicHeader(fmt, csid)];
  if (fmt <= 2) {
    const h = Buffer.alloc(fmt === 0 ? 11 : fmt === 1 ? 7 : 3);
    h.writeUIntBE(f.ts ?? 0, 0, 3);
    if (fmt <= 1) {
      h.writeUIntBE(f.len ?? payload.length, 3, 3);
      h[6] = f.type ?? MessageType.video;
    }
    if (fmt === 0) h.writeUInt32LE(f.sid ?? 1, 7);
    parts.push(h);
  }
  if (f.ext !== undefined) {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(f.ext);
    parts.push(e);
  }
  parts.push(payload);
  return Buffer.concat(parts);
}

function bytes(n: number, seed = 1): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
}

function summary(msgs: RtmpMessage[]) {
  return msgs.map((m) => ({
    csid: m.csid,
    type: m.type,
    streamId: m.streamId,
    timestamp: m.timestamp,
    payload: m.payload.toString('hex'),
  }));
}

describe('chunk parser: header types', () => {
  it('reads a type 0 chunk', () => {
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(chunk(0, 4, { ts: 1000, type: MessageType.audio, sid: 1 }, bytes(10)));
    expect(summary(msgs)).toEqual([{ csid: 4, type: 8, streamId: 1, timestamp: 1000, payload: bytes(10).toString('hex') }]);
  });

  it('joins type 3 continuations of a message longer than the chunk size', () => {
    const payload = bytes(300);
    const p = new ChunkParser(LIMITS);
    const wire = Buffer.concat([
      chunk(0, 6, { ts: 5, len: 300 }, payload.subarray(0, 128)),
      chunk(3, 6, {}, payload.subarray(128, 256)),
      chunk(3, 6, {}, payload.subarray(256)),
    ]);
    const msgs = p.push(wire);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].payload).toEqual(payload);
    expect(msgs[0].timestamp).toBe(5);
  });

  it('accumulates deltas from type 1 and type 2 headers and reuses the delta on type 3', () => {
    const p = new ChunkParser(LIMITS);
    const wire = Buffer.concat([
      chunk(0, 6, { ts: 100, sid: 1 }, bytes(4)),
      chunk(1, 6, { ts: 33, len: 6, type: MessageType.audio }, bytes(6)), // new length and type
      chunk(2, 6, { ts: 34 }, bytes(6)), // same length and type
      chunk(3, 6, {}, bytes(6)), // a new message: previous delta again
    ]);
    const msgs = p.push(wire);
    expect(msgs.map((m) => [m.timestamp, m.type, m.streamId, m.payload.length])).toEqual([
      [100, 9, 1, 4],
      [133, 8, 1, 6],
      [167, 8, 1, 6],
      [201, 8, 1, 6],
    ]);
  });

  it('a type 3 message right after a type 0 one adds the first timestamp again (5.3.1.2.4)', () => {
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(Buffer.concat([chunk(0, 4, { ts: 40 }, bytes(2)), chunk(3, 4, {}, bytes(2))]));
    expect(msgs.map((m) => m.timestamp)).toEqual([40, 80]);
  });

  it('reads 1, 2 and 3 byte basic headers (chunk stream ids 2..65599)', () => {
    expect(encodeBasicHeader(0, 63)).toEqual(Buffer.of(0x3f));
    expect(encodeBasicHeader(1, 64)).toEqual(Buffer.of(0x40, 0x00));
    expect(encodeBasicHeader(0, 319)).toEqual(Buffer.of(0x00, 0xff));
    expect(encodeBasicHeader(0, 320)).toEqual(Buffer.of(0x01, 0x00, 0x01));
    expect(encodeBasicHeader(3, 65_599)).toEqual(Buffer.of(0xc1, 0xff, 0xff));
    const ids = [2, 63, 64, 319, 320, 1000, 65_599];
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(Buffer.concat(ids.map((id, i) => chunk(0, id, { ts: i }, bytes(3, i)))));
    expect(msgs.map((m) => m.csid)).toEqual(ids);
    expect(msgs.map((m) => m.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('delivers a zero-length message', () => {
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(chunk(0, 3, { ts: 7, type: MessageType.commandAmf0 }));
    expect(msgs).toHaveLength(1);
    expect(msgs[0].payload.length).toBe(0);
  });
});

describe('chunk parser: extended timestamps', () => {
  it('reads an extended timestamp on type 0 and on every type 3 continuation', () => {
    const payload = bytes(300);
    const p = new ChunkParser(LIMITS);
    const ext = 0x01_00_00_00;
    const msgs = p.push(
      Buffer.concat([
        chunk(0, 6, { ts: 0xffffff, len: 300, ext }, payload.subarray(0, 128)),
        chunk(3, 6, { ext }, payload.subarray(128, 256)),
        chunk(3, 6, { ext }, payload.subarray(256)),
      ]),
    );
    expect(msgs).toHaveLength(1);
    expect(msgs[0].timestamp).toBe(ext);
    expect(msgs[0].payload).toEqual(payload);
  });

  it('tolerates encoders that leave the extended timestamp off continuations', () => {
    const payload = bytes(200, 9);
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(
      Buffer.concat([
        chunk(0, 6, { ts: 0xffffff, len: 200, ext: 0x7000_0000 }, payload.subarray(0, 128)),
        chunk(3, 6, {}, payload.subarray(128)),
      ]),
    );
    expect(msgs[0].payload).toEqual(payload);
    expect(msgs[0].timestamp).toBe(0x7000_0000);
  });

  it('reads extended deltas on type 1/2 and on a type 3 that starts a new message', () => {
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(
      Buffer.concat([
        chunk(0, 4, { ts: 10 }, bytes(1)),
        chunk(2, 4, { ts: 0xffffff, ext: 0x0100_0000 }, bytes(1)),
        chunk(3, 4, { ext: 0x0100_0000 }, bytes(1)),
        chunk(1, 4, { ts: 5, len: 1, type: 8 }, bytes(1)),
      ]),
    );
    expect(msgs.map((m) => m.timestamp)).toEqual([10, 10 + 0x0100_0000, 10 + 0x0200_0000, 15 + 0x0200_0000]);
  });

  it('wraps 32-bit timestamps', () => {
    const p = new ChunkParser(LIMITS);
    const msgs = p.push(Buffer.concat([chunk(0, 4, { ts: 0xffffff, ext: 0xffff_fff0 }, bytes(1)), chunk(2, 4, { ts: 0x20 }, bytes(1))]));
    expect(msgs.map((m) => m.timestamp)).toEqual([0xffff_fff0, 0x10]);
    const u = new TimestampUnwrapper();
    expect(msgs.map((m) => u.next(m.timestamp))).toEqual([0xffff_fff0, 0x1_0000_0010]);
    expect(u.next(0x0c)).toBe(0x1_0000_000c); // a small step back stays a step back, not a wrap
  });
});

describe('chunk parser: protocol control', () => {
  it('applies Set Chunk Size to the next chunk', () => {
    const p = new ChunkParser(LIMITS);
    const size = Buffer.alloc(4);
    size.writeUInt32BE(4096);
    const payload = bytes(4000);
    const msgs = p.push(
      Buffer.concat([chunk(0, 2, { type: MessageType.setChunkSize, sid: 0 }, size), chunk(0, 6, { len: 4000 }, payload)]),
    );
    expect(p.chunkSize).toBe(4096);
    expect(msgs).toHaveLength(1);
    expect(msgs[0].payload).toEqual(payload);
  });

  it('rejects a chunk size of 0, with the top bit set, or over the limit', () => {
    for (const [v, c] of [
      [0, 'E_PROTOCOL'],
      [0x8000_0000, 'E_PROTOCOL'],
      [LIMITS.maxChunkSize + 1, 'E_LIMIT_EXCEEDED'],
    ] as const) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v);
      expect(code(() => new ChunkParser(LIMITS).push(chunk(0, 2, { type: MessageType.setChunkSize, sid: 0 }, b)))).toBe(c);
    }
    expect(code(() => new ChunkParser(LIMITS).push(chunk(0, 2, { type: MessageType.setChunkSize, sid: 0 }, Buffer.of(1))))).toBe(
      'E_PROTOCOL',
    );
  });

  it('Abort Message discards the partial message of a chunk stream', () => {
    const p = new ChunkParser(LIMITS);
    const abort = Buffer.alloc(4);
    abort.writeUInt32BE(6);
    const msgs = p.push(
      Buffer.concat([
        chunk(0, 6, { len: 300 }, bytes(128)), // first chunk of 300 bytes, then abandoned
        chunk(0, 2, { type: MessageType.abort, sid: 0 }, abort),
        chunk(0, 6, { ts: 9, len: 5 }, bytes(5, 3)),
      ]),
    );
    expect(summary(msgs)).toEqual([{ csid: 6, type: 9, streamId: 1, timestamp: 9, payload: bytes(5, 3).toString('hex') }]);
    expect(p.bufferedBytes).toBe(0);
  });

  it('refuses a new header in the middle of a message without Abort', () => {
    const p = new ChunkParser(LIMITS);
    expect(code(() => p.push(Buffer.concat([chunk(0, 6, { len: 300 }, bytes(128)), chunk(0, 6, { len: 5 }, bytes(5))])))).toBe(
      'E_PROTOCOL',
    );
  });
});

describe('chunk parser: interleaving and byte boundaries', () => {
  /** Audio on csid 4 and video on csid 6, chunks alternating, plus a command on csid 3 with a 3-byte basic header id. */
  function interleaved(): { wire: Buffer; expected: ReturnType<typeof summary> } {
    const video = bytes(1000, 1);
    const audio = bytes(300, 2);
    const cmd = bytes(50, 3);
    const parts: Buffer[] = [];
    parts.push(chunk(0, 6, { ts: 0, len: 1000 }, video.subarray(0, 128)));
    parts.push(chunk(0, 4, { ts: 0, len: 300, type: 8 }, audio.subarray(0, 128)));
    parts.push(chunk(0, 400, { ts: 0, len: 50, type: 20, sid: 0 }, cmd));
    for (let off = 128; off < 1000; off += 128) {
      parts.push(chunk(3, 6, {}, video.subarray(off, off + 128)));
      if (off < 300) parts.push(chunk(3, 4, {}, audio.subarray(off, off + 128)));
    }
    parts.push(chunk(1, 4, { ts: 23, len: 100, type: 8 }, audio.subarray(0, 100)));
    parts.push(chunk(1, 6, { ts: 33, len: 10, type: 9 }, video.subarray(0, 10)));
    return {
      wire: Buffer.concat(parts),
      expected: [
        { csid: 400, type: 20, streamId: 0, timestamp: 0, payload: cmd.toString('hex') },
        { csid: 4, type: 8, streamId: 1, timestamp: 0, payload: audio.toString('hex') },
        { csid: 6, type: 9, streamId: 1, timestamp: 0, payload: video.toString('hex') },
        { csid: 4, type: 8, streamId: 1, timestamp: 23, payload: audio.subarray(0, 100).toString('hex') },
        { csid: 6, type: 9, streamId: 1, timestamp: 33, payload: video.subarray(0, 10).toString('hex') },
      ],
    };
  }

  it('reassembles interleaved chunk streams', () => {
    const { wire, expected } = interleaved();
    expect(summary(new ChunkParser(LIMITS).push(wire))).toEqual(expected);
  });

  it('gives the same messages when fed one byte at a time', () => {
    const { wire, expected } = interleaved();
    const p = new ChunkParser(LIMITS);
    const got: RtmpMessage[] = [];
    for (let i = 0; i < wire.length; i++) got.push(...p.push(wire.subarray(i, i + 1)));
    expect(summary(got)).toEqual(expected);
    expect(p.bufferedBytes).toBe(0);
  });

  it('gives the same messages for random split points', () => {
    const { wire, expected } = interleaved();
    for (let round = 0; round < 200; round++) {
      const p = new ChunkParser(LIMITS);
      const got: RtmpMessage[] = [];
      let off = 0;
      while (off < wire.length) {
        const n = 1 + Math.floor(Math.random() * 40);
        got.push(...p.push(Buffer.from(wire.subarray(off, off + n))));
        off += n;
      }
      expect(summary(got)).toEqual(expected);
    }
  });

  it('round-trips encodeMessage output, including extended timestamps', () => {
    const msgs: RtmpMessage[] = [
      { csid: 3, type: 20, streamId: 0, timestamp: 0, payload: bytes(10) },
      { csid: 6, type: 9, streamId: 1, timestamp: 0x0123_4567, payload: randomBytes(10_000) },
      { csid: 70, type: 8, streamId: 1, timestamp: 0xfffffe, payload: randomBytes(129) },
      { csid: 5, type: 18, streamId: 1, timestamp: 12, payload: Buffer.alloc(0) },
    ];
    const p = new ChunkParser(LIMITS);
    const got = p.push(Buffer.concat(msgs.map((m) => encodeMessage(m, 128))));
    expect(summary(got)).toEqual(summary(msgs));
  });
});

describe('chunk parser: limits', () => {
  it('refuses a message over maxMessageSize as soon as its header arrives', () => {
    const p = new ChunkParser({ ...LIMITS, maxMessageSize: 1000 });
    expect(code(() => p.push(chunk(0, 6, { len: 1001 }, bytes(10))))).toBe('E_LIMIT_EXCEEDED');
  });

  it('caps the number of chunk streams', () => {
    const p = new ChunkParser({ ...LIMITS, maxChunkStreams: 4 });
    const wire = Buffer.concat([3, 4, 5, 6, 7].map((id) => chunk(0, id, {}, bytes(1))));
    expect(code(() => p.push(wire))).toBe('E_LIMIT_EXCEEDED');
  });

  it('refuses a chunk stream that starts without a type 0 header', () => {
    for (const fmt of [1, 2, 3] as const) {
      expect(code(() => new ChunkParser(LIMITS).push(chunk(fmt, 9, { len: 1 }, bytes(1))))).toBe('E_PROTOCOL');
    }
  });

  it('caps bytes held in partial messages across chunk streams', () => {
    const p = new ChunkParser({ ...LIMITS, maxMessageSize: 1000 });
    const parts = [3, 4, 5, 6].map((id) => chunk(0, id, { len: 1000 }, bytes(128)));
    const more = [3, 4, 5, 6].flatMap((id) => Array.from({ length: 6 }, () => chunk(3, id, {}, bytes(128))));
    expect(code(() => p.push(Buffer.concat([...parts, ...more])))).toBe('E_LIMIT_EXCEEDED');
  });
});

describe('handshake', () => {
  it('answers C0+C1 with S0+S1+S2 (S2 echoes C1) and hands over what follows C2', () => {
    const h = new Handshake();
    const c1 = randomBytes(HANDSHAKE_SIZE);
    const s = h.push(Buffer.concat([Buffer.of(3), c1]));
    expect(s.done).toBe(false);
    expect(s.reply!.length).toBe(1 + 2 * HANDSHAKE_SIZE);
    expect(s.reply![0]).toBe(3);
    expect(s.reply!.readUInt32BE(5)).toBe(0); // S1 "zero" field
    expect(s.reply!.subarray(1 + HANDSHAKE_SIZE)).toEqual(c1);
    const end = h.push(Buffer.concat([randomBytes(HANDSHAKE_SIZE), Buffer.of(1, 2, 3)]));
    expect(end.done).toBe(true);
    expect(end.rest).toEqual(Buffer.of(1, 2, 3));
    expect(h.state).toBe('done');
  });

  it('works one byte at a time', () => {
    const h = new Handshake();
    const all = Buffer.concat([Buffer.of(3), randomBytes(2 * HANDSHAKE_SIZE)]);
    let replies = 0;
    let done = false;
    for (let i = 0; i < all.length; i++) {
      const s = h.push(all.subarray(i, i + 1));
      if (s.reply) replies++;
      done = s.done;
    }
    expect(replies).toBe(1);
    expect(done).toBe(true);
  });

  it('refuses other versions (RTMPE 6)', () => {
    expect(code(() => new Handshake().push(Buffer.of(6)))).toBe('E_PROTOCOL');
  });
});
