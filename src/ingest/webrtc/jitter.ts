/**
 * Reorder buffer and reception statistics for one RTP stream (one SSRC). Packets come out in sequence
 * order; a gap is held for at most `maxDelayMs` while NACKs ask for the missing packets, then declared
 * lost so the stream goes on (latency grows only while packets are missing, never for a clean stream).
 * Statistics follow RFC 3550 appendix A.3 (loss) and A.8 (interarrival jitter). Pure: time is passed in.
 */
import type { RtpPacket } from './rtp.js';

export interface JitterOptions {
  /** Longest a gap holds back the packets after it. */
  readonly maxDelayMs: number;
  /** Packets held at most; more forces the oldest gap to be given up. */
  readonly maxPackets: number;
  /** RTP clock rate, for jitter in RTP units. */
  readonly clockRate: number;
  /** NACK each missing packet at most this often and this many times. */
  readonly nackIntervalMs: number;
  readonly maxNacks: number;
}

export const DEFAULT_JITTER: Omit<JitterOptions, 'clockRate'> = {
  maxDelayMs: 150,
  maxPackets: 1024,
  nackIntervalMs: 40,
  maxNacks: 3,
};

/** A jump over this many sequence numbers is a sender restart, not loss. */
const MAX_SEQ_JUMP = 3000;

export type JitterEvent = { readonly kind: 'packet'; readonly packet: RtpPacket } | { readonly kind: 'lost'; readonly count: number };

interface Missing {
  firstSeenMs: number;
  lastNackMs: number;
  nacks: number;
}

export class JitterBuffer {
  readonly #o: JitterOptions;
  /** Extended sequence number expected next; undefined before the first packet. */
  #next: number | undefined;
  #base = 0;
  #highest = -1;
  readonly #held = new Map<number, { packet: RtpPacket; at: number }>();
  readonly #missing = new Map<number, Missing>();
  // RFC 3550 A.3 / A.8 state.
  #received = 0;
  #expectedPrior = 0;
  #receivedPrior = 0;
  #jitter = 0;
  #transit: number | undefined;
  /** Packets that arrived after they had been given up, or twice. */
  late = 0;
  duplicates = 0;
  /** Packets declared lost after waiting (not counting those recovered by NACK). */
  lost = 0;
  nacksSent = 0;

  constructor(opts: JitterOptions) {
    this.#o = opts;
  }

  /** The extended sequence number closest to the highest one seen. */
  #extend(seq: number): number {
    if (this.#highest < 0) return seq;
    const cycles = this.#highest - (this.#highest & 0xffff);
    let ext = cycles + seq;
    if (ext - this.#highest > 32768) ext -= 65536;
    else if (this.#highest - ext > 32768) ext += 65536;
    return ext;
  }

  /** Takes one packet; returns what can be released in order now. */
  push(packet: RtpPacket, nowMs: number): JitterEvent[] {
    const ext = this.#extend(packet.sequence);
    if (this.#next === undefined) {
      this.#next = ext;
      this.#base = ext;
      this.#highest = ext - 1;
    }
    if (ext - this.#next > MAX_SEQ_JUMP || this.#next - ext > MAX_SEQ_JUMP) {
      // The sender restarted its sequence (or skipped far ahead): start over from here.
      const out = this.#flush();
      this.#next = ext;
      this.#highest = ext - 1;
      this.#held.clear();
      this.#missing.clear();
      return [...out, ...this.#accept(packet, ext, nowMs)];
    }
    return this.#accept(packet, ext, nowMs);
  }

  #accept(packet: RtpPacket, ext: number, nowMs: number): JitterEvent[] {
    if (ext < this.#next!) {
      this.late++;
      return [];
    }
    if (this.#held.has(ext)) {
      this.duplicates++;
      return [];
    }
    this.#received++;
    this.#updateJitter(packet.timestamp, nowMs);
    this.#missing.delete(ext);
    if (ext > this.#highest) {
      for (let s = this.#highest + 1; s < ext && s >= this.#next!; s++)
        this.#missing.set(s, { firstSeenMs: nowMs, lastNackMs: -Infinity, nacks: 0 });
      this.#highest = ext;
    }
    this.#held.set(ext, { packet, at: nowMs });
    const out = this.#release();
    if (this.#held.size > this.#o.maxPackets) out.push(...this.#skipGap());
    return out;
  }

  #updateJitter(rtpTs: number, nowMs: number): void {
    // A.8: J += (|D| - J) / 16 with D the difference in relative transit times, in RTP units.
    const arrival = (nowMs * this.#o.clockRate) / 1000;
    const transit = arrival - rtpTs;
    if (this.#transit !== undefined) {
      let d = Math.abs(transit - this.#transit);
      if (d > 2 ** 31) d = Math.abs(d - 2 ** 32);
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#transit = transit;
  }

  /** Releases the packets in order from #next while there is no gap. */
  #release(): JitterEvent[] {
    const out: JitterEvent[] = [];
    for (;;) {
      const h = this.#held.get(this.#next!);
      if (!h) return out;
      this.#held.delete(this.#next!);
      this.#next!++;
      out.push({ kind: 'packet', packet: h.packet });
    }
  }

  /** Gives up the first gap: its packets are lost, what follows it is released. */
  #skipGap(): JitterEvent[] {
    let first = Infinity;
    for (const k of this.#held.keys()) first = Math.min(first, k);
    if (first === Infinity) return [];
    const count = first - this.#next!;
    for (let s = this.#next!; s < first; s++) this.#missing.delete(s);
    this.lost += count;
    this.#next = first;
    return [{ kind: 'lost', count }, ...this.#release()];
  }

  #flush(): JitterEvent[] {
    const out: JitterEvent[] = [];
    while (this.#held.size > 0) out.push(...this.#skipGap());
    return out;
  }

  /**
   * Called on a timer: gives up gaps older than maxDelayMs, and returns the sequence numbers to NACK now
   * (16-bit, in order).
   */
  poll(nowMs: number): { events: JitterEvent[]; nack: number[] } {
    const events: JitterEvent[] = [];
    for (;;) {
      const head = this.#missing.get(this.#next!);
      if (!head || nowMs - head.firstSeenMs < this.#o.maxDelayMs || this.#held.size === 0) break;
      events.push(...this.#skipGap());
    }
    const nack: number[] = [];
    for (const [seq, m] of this.#missing) {
      if (m.nacks >= this.#o.maxNacks || nowMs - m.lastNackMs < this.#o.nackIntervalMs) continue;
      m.nacks++;
      m.lastNackMs = nowMs;
      nack.push(seq & 0xffff);
    }
    if (nack.length > 0) this.nacksSent++;
    return { events, nack };
  }

  /** Numbers for a receiver report (RFC 3550 6.4.1, A.3), advancing the report interval. */
  report(): { fractionLost: number; cumulativeLost: number; extendedHighestSeq: number; jitter: number } {
    const expected = this.#highest - this.#base + 1;
    const expectedInterval = expected - this.#expectedPrior;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    return {
      fractionLost: expectedInterval <= 0 || lostInterval <= 0 ? 0 : lostInterval / expectedInterval,
      cumulativeLost: Math.max(0, expected - this.#received),
      extendedHighestSeq: Math.max(0, this.#highest),
      jitter: this.#jitter,
    };
  }

  get received(): number {
    return this.#received;
  }

  /** Interarrival jitter in ms. */
  get jitterMs(): number {
    return (this.#jitter * 1000) / this.#o.clockRate;
  }

  /** Packets expected (by sequence numbers) but never received, so far. */
  get cumulativeLost(): number {
    return this.#next === undefined ? 0 : Math.max(0, this.#highest - this.#base + 1 - this.#received);
  }

  get held(): number {
    return this.#held.size;
  }
}
