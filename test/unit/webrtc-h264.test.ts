import { describe, expect, it } from 'vitest';
import { parseAvcDecoderConfig } from '../../src/core/index.js';
import { buildAvcC, H264Assembler, H264Depacketizer, type AccessUnit } from '../../src/ingest/webrtc/h264.js';
import type { JitterEvent } from '../../src/ingest/webrtc/jitter.js';

// A real SPS (640x360 constrained baseline, from Chrome) and PPS.
const SPS = Buffer.from('Z0LAHtoCgL/lwFqAgICgAAADACAAAAeR4sXU', 'base64');
const PPS = Buffer.from('aM48gA==', 'base64');
const IDR = Buffer.from([0x65, 0x88, 0x84, 0x00, 0x33, 0xff]);
const P = Buffer.from([0x41, 0x9a, 0x02, 0x04]);

let seq = 0;
const ev = (payload: Uint8Array, ts: number, marker = false): JitterEvent => ({
  kind: 'packet',
  packet: { payloadType: 96, marker, sequence: seq++, timestamp: ts, ssrc: 1, payload },
});
const stapA = (...nals: Uint8Array[]) =>
  Buffer.concat([Buffer.from([0x78]), ...nals.flatMap((n) => [Buffer.from([n.length >> 8, n.length & 0xff]), n])]);
const fuA = (nal: Uint8Array, size: number): Buffer[] => {
  const body = nal.subarray(1);
  const out: Buffer[] = [];
  for (let o = 0; o < body.length; o += size) {
    const start = o === 0;
    const end = o + size >= body.length;
    out.push(
      Buffer.concat([
        Buffer.from([(nal[0] & 0xe0) | 28, (start ? 0x80 : 0) | (end ? 0x40 : 0) | (nal[0] & 0x1f)]),
        body.subarray(o, o + size),
      ]),
    );
  }
  return out;
};
const lengthPrefixed = (...nals: Uint8Array[]) =>
  Buffer.concat(nals.flatMap((n) => [Buffer.from([0, 0, n.length >> 8, n.length & 0xff]), n]));

describe('H.264 RTP depacketizer (RFC 6184, packetization-mode 1)', () => {
  it('builds access units from STAP-A, FU-A and single NAL packets, ending at the marker', () => {
    const d = new H264Depacketizer();
    const big = Buffer.concat([Buffer.from([0x65]), Buffer.alloc(3000, 7)]);
    const aus: AccessUnit[] = [];
    aus.push(...d.push(ev(stapA(SPS, PPS), 1000)));
    const frags = fuA(big, 1000);
    frags.forEach((f, i) => aus.push(...d.push(ev(f, 1000, i === frags.length - 1))));
    aus.push(...d.push(ev(P, 4000, true)));
    expect(aus.map((a) => [a.rtpTimestamp, a.nals.map((n) => n[0] & 0x1f), a.damaged])).toEqual([
      [1000, [7, 8, 5], false],
      [4000, [1], false],
    ]);
    expect(Buffer.from(aus[0].nals[2]).equals(big)).toBe(true);
  });

  it('marks a unit damaged on loss, a missing marker, or a fragment without its start', () => {
    const d = new H264Depacketizer();
    const frags = fuA(Buffer.concat([Buffer.from([0x65]), Buffer.alloc(2500, 1)]), 1000);
    d.push(ev(frags[0], 10));
    expect(d.push({ kind: 'lost', count: 1 })).toEqual([]);
    const out = d.push(ev(frags[2], 10, true));
    expect(out.map((a) => a.damaged)).toEqual([true]);
    d.push(ev(P, 20)); // marker lost: the timestamp change ends it
    expect(d.push(ev(P, 30, true)).map((a) => [a.rtpTimestamp, a.damaged])).toEqual([
      [20, true],
      [30, false],
    ]);
  });

  it('refuses STAP-B/MTAP/FU-B, truncated aggregates and units over the limits', () => {
    const d = new H264Depacketizer({ maxNalBytes: 100, maxAccessUnitBytes: 150, maxNalsPerAccessUnit: 3 });
    expect(d.push(ev(Buffer.from([0x79, 0, 1, 0x41]), 1, true))[0].damaged).toBe(true); // STAP-B
    expect(d.push(ev(Buffer.from([0x78, 0, 9, 0x41]), 2, true))[0].damaged).toBe(true); // size past the end
    expect(d.push(ev(Buffer.alloc(101, 0x41), 3, true))[0].damaged).toBe(true);
    expect(d.push(ev(stapA(P, P, P, P), 4, true))[0].damaged).toBe(true);
    expect(d.malformed).toBe(4);
  });

  it('never throws on random payloads (fuzz)', () => {
    const d = new H264Depacketizer();
    const a = new H264Assembler();
    let s = 1;
    const rnd = () => (s = (s * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 5000; i++) {
      const len = Math.floor(rnd() * 40);
      const b = Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
      const evs: JitterEvent = rnd() < 0.05 ? { kind: 'lost', count: 1 } : ev(b, Math.floor(i / 3), rnd() < 0.3);
      for (const au of d.push(evs)) a.push(au);
    }
  });
});

describe('H.264 access units to frames', () => {
  it('builds the avcC from in-band SPS/PPS and starts at the first IDR', () => {
    const a = new H264Assembler();
    expect(a.push({ rtpTimestamp: 0, nals: [P], damaged: false })).toEqual({
      kind: 'dropped',
      reason: 'waiting-for-keyframe',
      needKeyframe: true,
    });
    const f = a.push({ rtpTimestamp: 3000, nals: [Buffer.from([0x09, 0xf0]), SPS, PPS, IDR], damaged: false });
    expect(f.kind).toBe('frame');
    if (f.kind !== 'frame') return;
    expect(f.keyframe).toBe(true);
    expect(f.configChanged).toBe(true);
    expect(Buffer.from(f.data).equals(lengthPrefixed(IDR))).toBe(true); // AUD, SPS, PPS moved out
    expect(f.config).toMatchObject({ width: 640, height: 360 });
    const c = parseAvcDecoderConfig(f.config.avcC);
    expect(c.nalLengthSize).toBe(4);
    expect(Buffer.from(c.sps[0]).equals(SPS)).toBe(true);
    const p = a.push({ rtpTimestamp: 6000, nals: [P], damaged: false });
    expect(p).toMatchObject({ kind: 'frame', keyframe: false, configChanged: false });
  });

  it('uses sprop-parameter-sets when the IDR comes without them (OBS + NVENC)', () => {
    expect(new H264Assembler().push({ rtpTimestamp: 0, nals: [IDR], damaged: false })).toMatchObject({
      kind: 'dropped',
      reason: 'no-parameter-sets',
    });
    expect(new H264Assembler([SPS, PPS]).push({ rtpTimestamp: 0, nals: [IDR], damaged: false })).toMatchObject({
      kind: 'frame',
      keyframe: true,
    });
  });

  it('drops everything after a damaged unit until the next IDR', () => {
    const a = new H264Assembler([SPS, PPS]);
    a.push({ rtpTimestamp: 0, nals: [IDR], damaged: false });
    expect(a.push({ rtpTimestamp: 1, nals: [P], damaged: true })).toMatchObject({ kind: 'dropped', reason: 'damaged', needKeyframe: true });
    expect(a.push({ rtpTimestamp: 2, nals: [P], damaged: false })).toMatchObject({ kind: 'dropped', reason: 'waiting-for-keyframe' });
    expect(a.push({ rtpTimestamp: 3, nals: [IDR], damaged: false })).toMatchObject({ kind: 'frame', keyframe: true, configChanged: false });
    expect(a.push({ rtpTimestamp: 4, nals: [SPS, PPS], damaged: false })).toMatchObject({
      kind: 'dropped',
      reason: 'no-picture',
      needKeyframe: false,
    });
  });

  it('writes the High profile extension into the avcC', () => {
    // 1280x720 High profile SPS (x264).
    const high = Buffer.from('Z2QAH6zZQFAFuhAAAAMAEAAAAwPA8YMZYA==', 'base64');
    const avcC = buildAvcC(high, PPS);
    expect(avcC.length).toBe(11 + high.length + PPS.length + 4);
    expect(Buffer.from(avcC.subarray(avcC.length - 4)).toString('hex')).toBe('fdf8f800');
    expect(parseAvcDecoderConfig(avcC).profile).toBe(100);
  });
});
