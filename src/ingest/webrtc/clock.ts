/**
 * RTP time to the session's media timeline and to the wall clock. Each RTP stream has its own random
 * timestamp origin and clock rate; RTCP sender reports (RFC 3550 6.4.1) pair an RTP timestamp with the
 * sender's NTP wall clock, which is what lines audio up with video and dates frames for
 * EXT-X-PROGRAM-DATE-TIME. Pure: arrival times are passed in.
 */
import { TIMESCALE } from '../../core/index.js';

/** Extends 32-bit RTP timestamps to a monotonic-ish number (wraps every 13 h at 90 kHz, 25 h at 48 kHz). */
export class RtpUnwrapper {
  #last: number | undefined;
  #cycles = 0;

  extend(ts: number): number {
    if (this.#last !== undefined) {
      const d = ts - this.#last;
      if (d < -0x80000000) this.#cycles++;
      else if (d > 0x80000000) this.#cycles--;
    }
    this.#last = ts;
    return this.#cycles * 0x1_0000_0000 + ts;
  }

  /** Extends a timestamp from a report without moving the state (an SR may be a little older or newer). */
  peek(ts: number): number {
    if (this.#last === undefined) return ts;
    let v = this.#cycles * 0x1_0000_0000 + ts;
    const last = this.#cycles * 0x1_0000_0000 + this.#last;
    if (v - last > 0x80000000) v -= 0x1_0000_0000;
    else if (last - v > 0x80000000) v += 0x1_0000_0000;
    return v;
  }
}

/** A linear map from extended RTP time to ms: wall = ms + (rtp - rtp0) / rate * 1000. */
export interface WallMap {
  readonly rtp: number;
  readonly ms: number;
}

/**
 * One stream's timing: the first packet's arrival and the latest sender report. `wall(rtp)` prefers the
 * sender report (exact, no network jitter); before one arrives it uses the first arrival.
 */
export class StreamClock {
  readonly rate: number;
  readonly unwrap = new RtpUnwrapper();
  #arrival: WallMap | undefined;
  #report: WallMap | undefined;
  /** Middle 32 bits of the last SR's NTP time and when it arrived, for receiver reports (LSR, DLSR). */
  lastSr: { ntpMiddle: number; at: number } | undefined;

  constructor(rate: number) {
    this.rate = rate;
  }

  onPacket(extRtp: number, nowMs: number): void {
    this.#arrival ??= { rtp: extRtp, ms: nowMs };
  }

  onSenderReport(rtpTimestamp: number, ntpMs: number, ntpMiddle: number, nowMs: number): void {
    this.#report = { rtp: this.unwrap.peek(rtpTimestamp), ms: ntpMs };
    this.lastSr = { ntpMiddle, at: nowMs };
  }

  get hasReport(): boolean {
    return this.#report !== undefined;
  }

  /** The map in one domain: 'sr' (the sender's clock) or 'arrival' (ours, at the first packet). */
  map(domain: 'sr' | 'arrival'): WallMap | undefined {
    return domain === 'sr' ? this.#report : this.#arrival;
  }

  wall(extRtp: number, m: WallMap): number {
    return m.ms + ((extRtp - m.rtp) * 1000) / this.rate;
  }
}

/**
 * The session's timeline: TIMESCALE ticks from the first video keyframe, the same for audio and video. It is
 * fixed once (at the first keyframe for video, the first audio frame for audio) and never moves after, so
 * timestamps never jump: both tracks in the sender's clock when both had a sender report by then (exact
 * lip sync), otherwise both in arrival time (within the network jitter).
 */
export class SessionTimeline {
  #domain: 'sr' | 'arrival' | undefined;
  #originMs = 0;
  readonly #tracks = new Map<StreamClock, { rtp: number; ticks: number }>();
  /** Ingest clock minus the frames' wall clock (smallest seen, drifting up 0.5 ms a second). */
  #offset: number | undefined;
  #offsetAt = 0;

  get domain(): 'sr' | 'arrival' | undefined {
    return this.#domain;
  }

  /** Decides the domain at the first keyframe: sender reports for every stream that has packets, or arrival. */
  start(clocks: readonly StreamClock[], videoClock: StreamClock, firstRtp: number): void {
    if (this.#domain) return;
    const active = clocks.filter((c) => c.map('arrival'));
    this.#domain = active.every((c) => c.hasReport) ? 'sr' : 'arrival';
    const m = videoClock.map(this.#domain)!;
    this.#originMs = videoClock.wall(firstRtp, m);
  }

  get started(): boolean {
    return this.#domain !== undefined;
  }

  /** Ticks for an extended RTP time of `clock`; undefined while that stream has no map in the domain yet. */
  ticks(clock: StreamClock, extRtp: number): number | undefined {
    if (!this.#domain) return undefined;
    let base = this.#tracks.get(clock);
    if (!base) {
      const m = clock.map(this.#domain);
      if (!m) return undefined;
      base = { rtp: extRtp, ticks: Math.round((clock.wall(extRtp, m) - this.#originMs) * (TIMESCALE / 1000)) };
      this.#tracks.set(clock, base);
    }
    return base.ticks + Math.round(((extRtp - base.rtp) * TIMESCALE) / clock.rate);
  }

  /**
   * Wall clock (ours) of media time `ticks`, as if it had arrived without jitter: the timeline's wall time
   * plus the smallest arrival delay seen. Works whatever the sender's clock says (a sender whose clock is
   * off by minutes still gets a correct PROGRAM-DATE-TIME).
   */
  wallClock(ticks: number, arrivalMs: number): number {
    const media = this.#originMs + (ticks * 1000) / TIMESCALE;
    const sample = arrivalMs - media;
    if (this.#offset === undefined) this.#offset = sample;
    else {
      this.#offset += Math.max(0, arrivalMs - this.#offsetAt) * 0.0005;
      this.#offset = Math.min(this.#offset, sample);
    }
    this.#offsetAt = arrivalMs;
    return Math.round(media + this.#offset);
  }
}
