import { describe, expect, it } from 'vitest';
import { RtpUnwrapper, SessionTimeline, StreamClock } from '../../src/ingest/webrtc/clock.js';

describe('RTP time to the session timeline and the wall clock', () => {
  it('extends 32-bit timestamps across the wrap, both ways', () => {
    const u = new RtpUnwrapper();
    expect(u.extend(0xffff_ff00)).toBe(0xffff_ff00);
    expect(u.extend(0x100)).toBe(0x1_0000_0100);
    expect(u.peek(0xffff_fff0)).toBe(0xffff_fff0); // a report a little older than the last packet
    expect(u.extend(0xffff_fff0)).toBe(0xffff_fff0);
  });

  it('lines audio up with video by their sender reports (exact lip sync)', () => {
    const v = new StreamClock(90_000);
    const a = new StreamClock(48_000);
    v.onPacket(v.unwrap.extend(1_000_000), 5000);
    a.onPacket(a.unwrap.extend(777), 5003);
    // Both sampled at NTP 1_700_000_000_000 ms: video RTP 1_000_000, audio RTP 777.
    v.onSenderReport(1_000_000, 1_700_000_000_000, 1, 5100);
    a.onSenderReport(777, 1_700_000_000_000, 2, 5100);
    const t = new SessionTimeline();
    t.start([v, a], v, 1_009_000); // first keyframe 100 ms after the report
    expect(t.domain).toBe('sr');
    expect(t.ticks(v, 1_009_000)).toBe(0);
    expect(t.ticks(v, 1_012_000)).toBe(3000);
    // Audio sampled at the same instant as video RTP 1_009_000 is 777 + 4800.
    expect(t.ticks(a, 777 + 4800)).toBe(0);
    expect(t.ticks(a, 777 + 4800 + 1024)).toBe(1920);
  });

  it('falls back to arrival time when a stream has no sender report yet, and never moves after', () => {
    const v = new StreamClock(90_000);
    const a = new StreamClock(48_000);
    v.onPacket(0, 10_000);
    a.onPacket(0, 10_040);
    v.onSenderReport(0, 1_700_000_000_000, 1, 10_050);
    const t = new SessionTimeline();
    t.start([v, a], v, 9000); // 100 ms of video after the first packet
    expect(t.domain).toBe('arrival');
    expect(t.ticks(v, 9000)).toBe(0);
    expect(t.ticks(a, 0)).toBe(-5400); // 40 ms after the first video packet = 60 ms before the keyframe
    a.onSenderReport(0, 1_600_000_000_000, 2, 11_000); // a report that would say otherwise changes nothing
    expect(t.ticks(a, 4800)).toBe(-5400 + 9000);
  });

  it('dates frames in our clock: media time plus the smallest delay seen', () => {
    const v = new StreamClock(90_000);
    v.onPacket(0, 0);
    v.onSenderReport(0, 1_000_000, 1, 0); // the sender's clock is far off ours
    const t = new SessionTimeline();
    t.start([v], v, 0);
    expect(t.wallClock(0, 50_000)).toBe(50_000);
    // Arrived 30 ms late: dated without the jitter (the offset creeps up 0.5 ms a second to follow clock drift).
    expect(t.wallClock(90_000, 51_030)).toBe(51_001);
    expect(t.wallClock(180_000, 51_990)).toBe(51_990); // arrived earlier than ever: the offset moves down
  });
});
