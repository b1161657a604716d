import { describe, expect, it } from 'vitest';
import { JitterBuffer, type JitterEvent } from '../../src/ingest/webrtc/jitter.js';
import type { RtpPacket } from '../../src/ingest/webrtc/rtp.js';

const pkt = (sequence: number, timestamp = sequence * 3000): RtpPacket => ({
  payloadType: 96,
  marker: false,
  sequence: sequence & 0xffff,
  timestamp,
  ssrc: 1,
  payload: new Uint8Array([sequence & 0xff]),
});
const seqs = (evs: JitterEvent[]) => evs.map((e) => (e.kind === 'packet' ? e.packet.sequence : `lost${e.count}`));
const jb = () => new JitterBuffer({ maxDelayMs: 100, maxPackets: 64, clockRate: 90_000, nackIntervalMs: 40, maxNacks: 3 });

describe('RTP reorder buffer', () => {
  it('passes packets in order through at once', () => {
    const j = jb();
    expect(seqs([...j.push(pkt(10), 0), ...j.push(pkt(11), 1), ...j.push(pkt(12), 2)])).toEqual([10, 11, 12]);
    expect(j.cumulativeLost).toBe(0);
  });

  it('reorders, and a late packet fills its gap', () => {
    const j = jb();
    expect(seqs(j.push(pkt(1), 0))).toEqual([1]);
    expect(seqs(j.push(pkt(3), 1))).toEqual([]);
    expect(seqs(j.push(pkt(4), 2))).toEqual([]);
    expect(seqs(j.push(pkt(2), 3))).toEqual([2, 3, 4]);
    expect(j.cumulativeLost).toBe(0);
    expect(seqs(j.push(pkt(2), 4))).toEqual([]); // too late now
    expect(j.late).toBe(1);
  });

  it('NACKs a gap a few times, then gives it up and goes on', () => {
    const j = jb();
    j.push(pkt(1), 0);
    j.push(pkt(4), 10);
    expect(j.poll(10).nack).toEqual([2, 3]);
    expect(j.poll(20).nack).toEqual([]); // not again within the interval
    expect(j.poll(50).nack).toEqual([2, 3]);
    expect(j.poll(90).nack).toEqual([2, 3]);
    expect(j.poll(100).events).toEqual([]); // 90 ms since the gap was seen
    const out = j.poll(140);
    expect(seqs(out.events)).toEqual(['lost2', 4]);
    expect(out.nack).toEqual([]); // at most 3 NACKs each, and given up anyway
    expect(j.lost).toBe(2);
    expect(j.cumulativeLost).toBe(2);
    expect(j.nacksSent).toBe(3);
  });

  it('crosses the 16-bit sequence wrap', () => {
    const j = jb();
    const out = [65534, 65535, 0, 1].flatMap((s, i) => j.push(pkt(s), i));
    expect(seqs(out)).toEqual([65534, 65535, 0, 1]);
    j.push(pkt(3), 5);
    expect(j.poll(5).nack).toEqual([2]);
  });

  it('drops duplicates and starts over after a sender restart', () => {
    const j = jb();
    j.push(pkt(100), 0);
    j.push(pkt(102), 1);
    expect(seqs(j.push(pkt(102), 2))).toEqual([]);
    expect(j.duplicates).toBe(1);
    expect(seqs(j.push(pkt(40_000), 3))).toEqual(['lost1', 102, 40_000]);
  });

  it('never holds more than maxPackets', () => {
    const j = jb();
    j.push(pkt(0), 0);
    let released = 0;
    for (let s = 2; s < 200; s++) released += j.push(pkt(s), s).filter((e) => e.kind === 'packet').length;
    expect(j.held).toBeLessThanOrEqual(64);
    expect(released).toBeGreaterThan(100);
  });

  it('reports loss and jitter as RFC 3550 does', () => {
    const j = jb();
    for (let s = 0; s < 100; s++) if (s % 10 !== 5) j.push(pkt(s, s * 3000), s * 33.333 + (s % 2) * 5);
    const r = j.report();
    expect(r.cumulativeLost).toBe(10);
    expect(r.fractionLost).toBeCloseTo(0.1, 2);
    expect(r.extendedHighestSeq).toBe(99);
    expect(j.jitterMs).toBeGreaterThan(2);
    expect(j.jitterMs).toBeLessThan(6);
    expect(j.report().fractionLost).toBe(0); // nothing new since
  });
});
