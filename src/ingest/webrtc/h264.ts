/**
 * H.264 over RTP (RFC 6184, packetization-mode 1) to access units, and access units to the hub's form
 * (length-prefixed NAL units with an avcC built from the SPS and PPS). Pure: packets and loss markers in,
 * access units out. Every size from outside is limited; a broken unit is dropped and counted.
 */
import { AppError, parseAvcDecoderConfig, parseAvcSps } from '../../core/index.js';
import type { JitterEvent } from './jitter.js';

export interface H264Limits {
  /** Largest NAL unit (an IDR slice of a 4K frame at a high bitrate is 1-3 MiB). */
  readonly maxNalBytes: number;
  /** Largest access unit, all its NAL units together. */
  readonly maxAccessUnitBytes: number;
  /** NAL units in one access unit (slices, SEI, parameter sets). */
  readonly maxNalsPerAccessUnit: number;
}

export const DEFAULT_H264_LIMITS: H264Limits = { maxNalBytes: 4 << 20, maxAccessUnitBytes: 8 << 20, maxNalsPerAccessUnit: 512 };

export interface AccessUnit {
  readonly rtpTimestamp: number;
  readonly nals: readonly Uint8Array[];
  /** A packet of this unit (or of the ones since the last complete unit) was lost, or a unit was malformed. */
  readonly damaged: boolean;
}

/** NAL unit types (H.264 table 7-1) and RTP payload structures (RFC 6184 table 1). */
export const Nal = { slice: 1, idr: 5, sei: 6, sps: 7, pps: 8, aud: 9, filler: 12, stapA: 24, fuA: 28 } as const;

/**
 * Builds access units from in-order RTP packets of one H.264 stream. A unit ends at the marker bit (RFC
 * 6184 5.1: "set for the very last packet of the access unit") or, when that packet was lost, where the
 * timestamp changes.
 */
export class H264Depacketizer {
  readonly #limits: H264Limits;
  #ts: number | undefined;
  #nals: Uint8Array[] = [];
  #bytes = 0;
  #damaged = false;
  #fu: Uint8Array[] | undefined;
  #fuBytes = 0;
  /** Malformed payloads seen (STAP-B, MTAP, FU-B, truncated aggregates, sizes over the limits). */
  malformed = 0;

  constructor(limits: H264Limits = DEFAULT_H264_LIMITS) {
    this.#limits = limits;
  }

  push(ev: JitterEvent): AccessUnit[] {
    const out: AccessUnit[] = [];
    if (ev.kind === 'lost') {
      // We cannot tell which unit the lost packets belonged to: the one in progress, or the next one.
      this.#fu = undefined;
      this.#damaged = true;
      return out;
    }
    const p = ev.packet;
    if (this.#ts !== undefined && p.timestamp !== this.#ts && (this.#nals.length > 0 || this.#fu)) {
      // The marker packet of the previous unit never came.
      this.#damaged = true;
      this.#emit(out);
    }
    this.#ts = p.timestamp;
    this.#payload(p.payload);
    if (p.marker) this.#emit(out);
    return out;
  }

  #emit(out: AccessUnit[]): void {
    if (this.#fu) this.#damaged = true; // a fragmented NAL unit without its end
    if (this.#nals.length > 0 || this.#damaged) out.push({ rtpTimestamp: this.#ts ?? 0, nals: this.#nals, damaged: this.#damaged });
    this.#nals = [];
    this.#bytes = 0;
    this.#damaged = false;
    this.#fu = undefined;
    this.#fuBytes = 0;
  }

  #bad(): void {
    this.malformed++;
    this.#damaged = true;
  }

  #add(nal: Uint8Array): void {
    if (nal.length === 0) return;
    if (
      nal.length > this.#limits.maxNalBytes ||
      this.#bytes + nal.length > this.#limits.maxAccessUnitBytes ||
      this.#nals.length >= this.#limits.maxNalsPerAccessUnit
    ) {
      return this.#bad();
    }
    this.#nals.push(nal);
    this.#bytes += nal.length;
  }

  #payload(b: Uint8Array): void {
    if (b.length < 1) return this.#bad();
    const type = b[0] & 0x1f;
    if (type >= 1 && type <= 23) {
      // 5.6: Single NAL Unit Packet.
      this.#fu = undefined;
      return this.#add(b);
    }
    if (type === Nal.stapA) {
      // 5.7.1: STAP-A: NAL header, then (16-bit size, NAL unit) pairs.
      let off = 1;
      while (off + 2 <= b.length) {
        const size = (b[off] << 8) | b[off + 1];
        off += 2;
        if (size === 0 || off + size > b.length) return this.#bad();
        this.#add(b.subarray(off, off + size));
        off += size;
      }
      if (off !== b.length) this.#bad();
      return;
    }
    if (type === Nal.fuA) {
      // 5.8: FU indicator, FU header (S E R Type), fragment. The NAL header is rebuilt from the indicator's
      // F and NRI bits and the header's type.
      if (b.length < 3) return this.#bad();
      const start = (b[1] & 0x80) !== 0;
      const end = (b[1] & 0x40) !== 0;
      if (start) {
        if (this.#fu) this.#damaged = true; // the previous fragmented unit never ended
        this.#fu = [Uint8Array.of((b[0] & 0xe0) | (b[1] & 0x1f))];
        this.#fuBytes = 1;
      } else if (!this.#fu) {
        // A middle or end fragment whose start was lost (already counted as loss).
        this.#damaged = true;
        return;
      }
      const frag = b.subarray(2);
      this.#fuBytes += frag.length;
      if (this.#fuBytes > this.#limits.maxNalBytes) {
        this.#fu = undefined;
        return this.#bad();
      }
      this.#fu.push(frag);
      if (end) {
        const nal = Buffer.concat(this.#fu);
        this.#fu = undefined;
        this.#add(nal);
      }
      return;
    }
    // STAP-B, MTAP16, MTAP24, FU-B: not allowed in packetization-mode 1 (5.4 table 3); 0, 30, 31: reserved.
    this.#bad();
  }
}

/** Parameters of the avcC that follow from the SPS (H.264 7.3.2.1.1), for the High profiles' extension. */
function spsChroma(sps: Uint8Array): { chroma: number; lumaDepth: number; chromaDepth: number } | undefined {
  const profile = sps[1];
  if (![100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) return undefined;
  // Exp-Golomb over the RBSP after profile, constraints and level (emulation prevention bytes this early
  // would need 0x000003 within the first bytes; an SPS id and chroma format never produce one).
  let bit = 32;
  const read1 = () => {
    const byte = sps.at(bit >> 3);
    if (byte === undefined) throw new AppError('E_PROTOCOL', 'avc: truncated SPS');
    return (byte >> (7 - (bit++ & 7))) & 1;
  };
  const ue = () => {
    let zeros = 0;
    while (read1() === 0) if (++zeros > 31) throw new AppError('E_PROTOCOL', 'avc: bad exp-Golomb code');
    let v = 0;
    for (let i = 0; i < zeros; i++) v = v * 2 + read1();
    return 2 ** zeros - 1 + v;
  };
  ue(); // seq_parameter_set_id
  const chroma = ue();
  if (chroma === 3) read1(); // separate_colour_plane_flag
  return { chroma, lumaDepth: ue(), chromaDepth: ue() };
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) for one SPS and one PPS, 4-byte NAL lengths. */
export function buildAvcC(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  if (sps.length < 4 || sps.length > 0xffff || pps.length < 1 || pps.length > 0xffff)
    throw new AppError('E_PROTOCOL', 'avc: parameter set size out of range');
  const ext = spsChroma(sps);
  const out = Buffer.alloc(11 + sps.length + pps.length + (ext ? 4 : 0));
  out[0] = 1;
  out[1] = sps[1];
  out[2] = sps[2];
  out[3] = sps[3];
  out[4] = 0xfc | 3;
  out[5] = 0xe0 | 1;
  out.writeUInt16BE(sps.length, 6);
  out.set(sps, 8);
  let o = 8 + sps.length;
  out[o++] = 1;
  out.writeUInt16BE(pps.length, o);
  out.set(pps, o + 2);
  o += 2 + pps.length;
  if (ext) {
    out[o++] = 0xfc | (ext.chroma & 3);
    out[o++] = 0xf8 | (ext.lumaDepth & 7);
    out[o++] = 0xf8 | (ext.chromaDepth & 7);
    out[o] = 0;
  }
  parseAvcDecoderConfig(out); // a record our own parser refuses never reaches the packager
  return out;
}

export interface VideoConfig {
  readonly avcC: Uint8Array;
  readonly width: number;
  readonly height: number;
}

export type AssembledFrame =
  | {
      readonly kind: 'frame';
      readonly rtpTimestamp: number;
      readonly keyframe: boolean;
      readonly data: Uint8Array;
      readonly config: VideoConfig;
      readonly configChanged: boolean;
    }
  | {
      readonly kind: 'dropped';
      readonly reason: 'damaged' | 'waiting-for-keyframe' | 'no-parameter-sets' | 'no-picture';
      readonly needKeyframe: boolean;
    };

/**
 * Access units to frames: keeps the SPS and PPS (from the SDP's sprop-parameter-sets or in-band), builds the
 * avcC, and starts at an IDR that has parameter sets (the OBS + NVENC "SPS not received yet" case: an IDR
 * without them is dropped and a keyframe asked for). After a damaged unit every frame up to the next IDR
 * is dropped: they would reference a picture the decoder does not have.
 */
export class H264Assembler {
  #sps: Uint8Array | undefined;
  #pps: Uint8Array | undefined;
  #config: VideoConfig | undefined;
  #needKeyframe = true;

  constructor(sprop: readonly Uint8Array[] = []) {
    for (const nal of sprop) this.#param(nal);
  }

  get config(): VideoConfig | undefined {
    return this.#config;
  }

  #param(nal: Uint8Array): void {
    const type = nal[0] & 0x1f;
    if (type === Nal.sps) {
      try {
        parseAvcSps(nal);
        this.#sps = Uint8Array.from(nal);
      } catch {
        // An SPS we cannot read is ignored; the next one (every IDR of a WebRTC sender has one) is used.
      }
    } else if (type === Nal.pps && nal.length <= 0xffff) this.#pps = Uint8Array.from(nal);
  }

  push(au: AccessUnit): AssembledFrame {
    if (au.damaged) {
      this.#needKeyframe = true;
      return { kind: 'dropped', reason: 'damaged', needKeyframe: true };
    }
    let idr = false;
    const kept: Uint8Array[] = [];
    for (const nal of au.nals) {
      const type = nal[0] & 0x1f;
      if (type === Nal.sps || type === Nal.pps) this.#param(nal);
      else if (type === Nal.aud || type === Nal.filler) continue;
      else {
        if (type === Nal.idr) idr = true;
        kept.push(nal);
      }
    }
    if (this.#needKeyframe && !idr) return { kind: 'dropped', reason: 'waiting-for-keyframe', needKeyframe: true };
    let configChanged = false;
    if (idr) {
      if (!this.#sps || !this.#pps) return { kind: 'dropped', reason: 'no-parameter-sets', needKeyframe: true };
      const prev = this.#config;
      if (!prev || !sameParams(prev.avcC, this.#sps, this.#pps)) {
        const { width, height } = parseAvcSps(this.#sps);
        this.#config = { avcC: buildAvcC(this.#sps, this.#pps), width, height };
        configChanged = true;
      }
      this.#needKeyframe = false;
    }
    // Parameter sets (or SEI) sent as a unit of their own: nothing to show, nothing lost.
    if (kept.length === 0) return { kind: 'dropped', reason: 'no-picture', needKeyframe: false };
    let size = 0;
    for (const n of kept) size += 4 + n.length;
    const data = Buffer.allocUnsafe(size);
    let o = 0;
    for (const n of kept) {
      data.writeUInt32BE(n.length, o);
      data.set(n, o + 4);
      o += 4 + n.length;
    }
    return { kind: 'frame', rtpTimestamp: au.rtpTimestamp, keyframe: idr, data, config: this.#config!, configChanged };
  }
}

function sameParams(avcC: Uint8Array, sps: Uint8Array, pps: Uint8Array): boolean {
  const spsLen = (avcC[6] << 8) | avcC[7];
  if (spsLen !== sps.length || !Buffer.from(avcC.subarray(8, 8 + spsLen)).equals(sps)) return false;
  const o = 8 + spsLen + 1;
  const ppsLen = (avcC[o] << 8) | avcC[o + 1];
  return ppsLen === pps.length && Buffer.from(avcC.subarray(o + 2, o + 2 + ppsLen)).equals(pps);
}
