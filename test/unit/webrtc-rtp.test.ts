import { describe, expect, it } from 'vitest';
import { buildFir, buildNack, buildPli, buildReceiverReport, buildRemb, isRtcp, parseRtcp, parseRtp } from '../../src/ingest/webrtc/rtp.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('RTP and RTCP packets', () => {
  it('parses an RTP header with CSRCs, an extension and padding', () => {
    const b = Buffer.from(
      'b1e0' +
        '1234' +
        '0000abcd' +
        'deadbeef' +
        '00000001' +
        'bede0001' +
        '10ff0000' +
        'c0ffee' +
        '0003'.slice(0, 2) +
        '0003'.slice(0, 0) +
        '0000' +
        '03',
      'hex',
    );
    // header: V=2 P=1 X=1 CC=1; M=1 PT=96; seq 0x1234; ts; ssrc; 1 CSRC; ext (1 word); payload c0ffee 00 ; padding 00 00 03
    const p = parseRtp(b)!;
    expect(p).toMatchObject({ payloadType: 96, marker: true, sequence: 0x1234, timestamp: 0xabcd, ssrc: 0xdeadbeef });
    expect(hex(p.payload)).toBe('c0ffee00');
    expect(parseRtp(b.subarray(0, 11))).toBeUndefined();
    expect(parseRtp(Buffer.alloc(1501, 0x80))).toBeUndefined();
    const badPad = Buffer.from(b);
    badPad[badPad.length - 1] = 200;
    expect(parseRtp(badPad)).toBeUndefined();
  });

  it('tells RTCP from RTP by payload type (RFC 5761)', () => {
    expect(isRtcp(Buffer.from([0x80, 200]))).toBe(true);
    expect(isRtcp(Buffer.from([0x81, 206]))).toBe(true);
    expect(isRtcp(Buffer.from([0x80, 96]))).toBe(false);
    expect(isRtcp(Buffer.from([0x80, 0xe0]))).toBe(false); // marker + PT 96
  });

  it('reads sender reports and BYE from a compound packet', () => {
    const sr = Buffer.alloc(28);
    sr[0] = 0x80;
    sr[1] = 200;
    sr.writeUInt16BE(6, 2);
    sr.writeUInt32BE(0x11223344, 4);
    sr.writeUInt32BE(2_208_988_800 + 1_700_000_000, 8); // NTP seconds
    sr.writeUInt32BE(0x80000000, 12); // .5 s
    sr.writeUInt32BE(90_000, 16);
    const bye = Buffer.from('81cb0001' + '11223344', 'hex');
    const info = parseRtcp(Buffer.concat([sr, bye]));
    expect(info.senderReports).toEqual([
      {
        ssrc: 0x11223344,
        ntpMs: 1_700_000_000_500,
        ntpMiddle: ((1_700_000_000 + 2_208_988_800) & 0xffff) * 65536 + 0x8000,
        rtpTimestamp: 90_000,
      },
    ]);
    expect(info.byes).toEqual([0x11223344]);
    expect(parseRtcp(Buffer.from('80c8ffff', 'hex')).senderReports).toEqual([]); // length past the end
  });

  it('builds PLI, FIR, NACK, RR and REMB byte for byte', () => {
    expect(hex(buildPli(0xaabbccdd))).toBe('81ce0002' + '00000001' + 'aabbccdd');
    expect(hex(buildFir(0xaabbccdd, 3))).toBe('84ce0004' + '00000001' + '00000000' + 'aabbccdd' + '03000000');
    // 100, 101, 103 -> one FCI (pid 100, blp bits 0 and 2); 200 -> a second one; wrap 65535 -> 0 in one.
    expect(hex(buildNack(0x1, [100, 101, 103, 200])!)).toBe('81cd0004' + '00000001' + '00000001' + '00640005' + '00c80000');
    expect(hex(buildNack(0x1, [65535, 0])!)).toBe('81cd0003' + '00000001' + '00000001' + 'ffff0001');
    expect(buildNack(1, [])).toBeUndefined();
    const rr = buildReceiverReport([
      {
        ssrc: 0x10,
        fractionLost: 0.25,
        cumulativeLost: 5,
        extendedHighestSeq: 70000,
        jitter: 12.4,
        lastSr: 0x12345678,
        delaySinceLastSr: 65536,
      },
    ]);
    expect(hex(rr)).toBe('81c90007' + '00000001' + '00000010' + '40000005' + '00011170' + '0000000c' + '12345678' + '00010000');
    // 8 Mb/s = 250000 (0x3d090, < 2^18) * 2^5: exponent 5, mantissa 0x3d090.
    expect(hex(buildRemb(8_000_000, [0xa, 0xb]))).toBe(
      '8fce0006' + '00000001' + '00000000' + '52454d42' + '02' + '17d090' + '0000000a' + '0000000b',
    );
  });
});

describe('RTP/RTCP parsing of random bytes (fuzz)', () => {
  it('never throws and never reads past the end', () => {
    let s = 3;
    const rnd = () => (s = (s * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.from(Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256)));
      if (rnd() < 0.5 && b.length > 1) b[0] = (b[0] & 0x3f) | 0x80; // mostly version 2
      const p = parseRtp(b);
      if (p) expect(p.payload.byteOffset + p.payload.length).toBeLessThanOrEqual(b.byteOffset + b.length);
      parseRtcp(b);
    }
  });
});
