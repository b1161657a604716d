/**
 * RTP and RTCP packets (RFC 3550, RFC 4585 feedback, RFC 5104 FIR, draft-alvestrand-rmcat-remb): parsing of
 * what a publisher sends and building of what we send back. Pure; every read is bounds-checked and a
 * malformed packet yields undefined (it is counted and dropped by the caller, never thrown through).
 */

/** Largest RTP packet we take: above any path MTU; a bigger one is not from a WebRTC sender. */
export const MAX_RTP_BYTES = 1500;

export interface RtpPacket {
  readonly payloadType: number;
  readonly marker: boolean;
  readonly sequence: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly payload: Uint8Array;
}

/** RTP and RTCP share a port (rtcp-mux, RFC 5761 4): payload types 64-95 after the marker bit are RTCP. */
export function isRtcp(packet: Uint8Array): boolean {
  return packet.length >= 2 && packet[1] >= 192 && packet[1] <= 223;
}

export function parseRtp(b: Uint8Array): RtpPacket | undefined {
  if (b.length < 12 || b.length > MAX_RTP_BYTES || b[0] >> 6 !== 2) return undefined;
  const csrc = b[0] & 0x0f;
  let off = 12 + 4 * csrc;
  if (b[0] & 0x10) {
    // RFC 3550 5.3.1: a 4-byte extension header whose length counts the 32-bit words that follow.
    if (b.length < off + 4) return undefined;
    off += 4 + 4 * ((b[off + 2] << 8) | b[off + 3]);
  }
  let end = b.length;
  if (b[0] & 0x20) {
    // 5.1: "The last octet of the padding contains a count of how many padding octets should be ignored,
    // including itself."
    const pad = b[b.length - 1];
    if (pad === 0) return undefined;
    end -= pad;
  }
  if (off > end) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    payloadType: b[1] & 0x7f,
    marker: (b[1] & 0x80) !== 0,
    sequence: dv.getUint16(2),
    timestamp: dv.getUint32(4),
    ssrc: dv.getUint32(8),
    payload: b.subarray(off, end),
  };
}

export interface SenderReport {
  readonly ssrc: number;
  /** NTP time of the report as ms since the Unix epoch. */
  readonly ntpMs: number;
  /** The middle 32 bits of the NTP timestamp, echoed in receiver reports as LSR. */
  readonly ntpMiddle: number;
  readonly rtpTimestamp: number;
}

export interface RtcpInfo {
  readonly senderReports: SenderReport[];
  /** SSRCs that said goodbye (BYE). */
  readonly byes: number[];
}

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** Walks a compound RTCP packet; malformed parts end the walk (what was read before is kept). */
export function parseRtcp(b: Uint8Array): RtcpInfo {
  const out: RtcpInfo = { senderReports: [], byes: [] };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  for (let n = 0; n < 32 && off + 4 <= b.length; n++) {
    if (b[off] >> 6 !== 2) break;
    const len = 4 * (dv.getUint16(off + 2) + 1);
    if (off + len > b.length) break;
    const pt = b[off + 1];
    if (pt === 200 && len >= 28) {
      const sec = dv.getUint32(off + 8);
      const frac = dv.getUint32(off + 12);
      out.senderReports.push({
        ssrc: dv.getUint32(off + 4),
        ntpMs: (sec - NTP_UNIX_OFFSET_S) * 1000 + (frac / 2 ** 32) * 1000,
        ntpMiddle: (((sec & 0xffff) << 16) | (frac >>> 16)) >>> 0,
        rtpTimestamp: dv.getUint32(off + 16),
      });
    } else if (pt === 203) {
      const count = b[off] & 0x1f;
      for (let i = 0; i < count && 8 + 4 * i <= len; i++) out.byes.push(dv.getUint32(off + 4 + 4 * i));
    }
    off += len;
  }
  return out;
}

/** Our SSRC in the feedback we send (a receive-only endpoint has no media of its own; any value works). */
export const FEEDBACK_SSRC = 1;

function header(b: Buffer, countOrFmt: number, pt: number): void {
  b[0] = 0x80 | countOrFmt;
  b[1] = pt;
  b.writeUInt16BE(b.length / 4 - 1, 2);
}

/** Picture Loss Indication (RFC 4585 6.3.1): PSFB, FMT 1. */
export function buildPli(mediaSsrc: number): Buffer {
  const b = Buffer.alloc(12);
  header(b, 1, 206);
  b.writeUInt32BE(FEEDBACK_SSRC, 4);
  b.writeUInt32BE(mediaSsrc >>> 0, 8);
  return b;
}

/** Full Intra Request (RFC 5104 4.3.1): PSFB, FMT 4, one FCI entry with a sequence number. */
export function buildFir(mediaSsrc: number, seq: number): Buffer {
  const b = Buffer.alloc(20);
  header(b, 4, 206);
  b.writeUInt32BE(FEEDBACK_SSRC, 4);
  b.writeUInt32BE(0, 8); // "The 'SSRC of media source' is not used and SHALL be set to 0"
  b.writeUInt32BE(mediaSsrc >>> 0, 12);
  b[16] = seq & 0xff;
  return b;
}

/**
 * Generic NACK (RFC 4585 6.2.1): RTPFB, FMT 1; each FCI is a packet id and a bitmask of the 16 that
 * follow it. `lost` must be sorted (it may wrap around 65535).
 */
export function buildNack(mediaSsrc: number, lost: readonly number[]): Buffer | undefined {
  const fci: Array<[number, number]> = [];
  for (const seq of lost) {
    const last = fci.at(-1);
    const d = last ? (seq - last[0] + 65536) & 0xffff : 0;
    if (last && d >= 1 && d <= 16) last[1] |= 1 << (d - 1);
    else fci.push([seq & 0xffff, 0]);
  }
  if (fci.length === 0) return undefined;
  const b = Buffer.alloc(12 + 4 * fci.length);
  header(b, 1, 205);
  b.writeUInt32BE(FEEDBACK_SSRC, 4);
  b.writeUInt32BE(mediaSsrc >>> 0, 8);
  fci.forEach(([pid, blp], i) => {
    b.writeUInt16BE(pid, 12 + 4 * i);
    b.writeUInt16BE(blp, 14 + 4 * i);
  });
  return b;
}

export interface ReportBlock {
  readonly ssrc: number;
  /** Fraction lost since the last report, 0..1. */
  readonly fractionLost: number;
  readonly cumulativeLost: number;
  readonly extendedHighestSeq: number;
  /** Interarrival jitter in RTP timestamp units. */
  readonly jitter: number;
  /** LSR: middle 32 bits of the last SR's NTP time (0 if none). */
  readonly lastSr: number;
  /** DLSR: delay since that SR in 1/65536 s. */
  readonly delaySinceLastSr: number;
}

/** Receiver Report (RFC 3550 6.4.2) with one block per source. */
export function buildReceiverReport(blocks: readonly ReportBlock[]): Buffer {
  const b = Buffer.alloc(8 + 24 * blocks.length);
  header(b, blocks.length, 201);
  b.writeUInt32BE(FEEDBACK_SSRC, 4);
  blocks.forEach((r, i) => {
    const o = 8 + 24 * i;
    b.writeUInt32BE(r.ssrc >>> 0, o);
    b[o + 4] = Math.min(255, Math.max(0, Math.floor(r.fractionLost * 256)));
    // 24-bit signed cumulative number of packets lost, clamped.
    b.writeIntBE(Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost)), o + 5, 3);
    b.writeUInt32BE(r.extendedHighestSeq >>> 0, o + 8);
    b.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(r.jitter))), o + 12);
    b.writeUInt32BE(r.lastSr >>> 0, o + 16);
    b.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(r.delaySinceLastSr))), o + 20);
  });
  return b;
}

/**
 * Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb): the bandwidth a sender may use. Without
 * it (and without transport-cc, which we do not negotiate) a browser never leaves its start bitrate.
 */
export function buildRemb(bitsPerSecond: number, ssrcs: readonly number[]): Buffer {
  let exp = 0;
  let mantissa = Math.max(0, Math.floor(bitsPerSecond));
  while (mantissa >= 1 << 18) {
    mantissa = Math.floor(mantissa / 2);
    exp++;
  }
  const b = Buffer.alloc(20 + 4 * ssrcs.length);
  header(b, 15, 206);
  b.writeUInt32BE(FEEDBACK_SSRC, 4);
  b.writeUInt32BE(0, 8);
  b.write('REMB', 12, 'latin1');
  b[16] = ssrcs.length;
  b[17] = (exp << 2) | (mantissa >> 16);
  b.writeUInt16BE(mantissa & 0xffff, 18);
  ssrcs.forEach((s, i) => b.writeUInt32BE(s >>> 0, 20 + 4 * i));
  return b;
}
