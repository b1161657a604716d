/**
 * Opus packets (RFC 6716) into an Ogg Opus stream (RFC 7845) for FFmpeg's stdin, so FFmpeg can turn them
 * into AAC. The Ogg stream is the RTP stream's timeline made contiguous: a gap (loss that the jitter buffer
 * gave up on, DTX) is filled with silent Opus frames, so FFmpeg's n-th output sample is the n-th sample of
 * the RTP timeline after the anchor. Pure.
 */

/** 48 kHz: Opus RTP always uses it (RFC 7587 4.1), whatever the encoder's internal rate. */
export const OPUS_RATE = 48_000;

/**
 * Samples in an Opus packet from its TOC byte (RFC 6716 3.1): the frame size of the configuration times the
 * frame count. Undefined for a malformed packet.
 */
export function opusPacketSamples(p: Uint8Array): number | undefined {
  if (p.length < 1) return undefined;
  const config = p[0] >> 3;
  let frameSamples: number;
  if (config < 12) frameSamples = [480, 960, 1920, 2880][config & 3];
  else if (config < 16) frameSamples = [480, 960][config & 1];
  else frameSamples = [120, 240, 480, 960][config & 3];
  const code = p[0] & 3;
  const frames = code === 0 ? 1 : code === 3 ? (p.length >= 2 ? p[1] & 0x3f : 0) : 2;
  if (frames === 0) return undefined;
  const samples = frames * frameSamples;
  // 3.2.5: "The total duration contained within a packet MUST NOT exceed 120 ms."
  return samples > 5760 ? undefined : samples;
}

/** A 20 ms CELT frame of silence (TOC 0xF8: fullband, 20 ms, mono, one frame), the usual Opus filler. */
export const OPUS_SILENCE_20MS = Uint8Array.of(0xf8, 0xff, 0xfe);

// ------------------------------------------------------------------------------------------------ Ogg

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

/** Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, no reflection (RFC 3533 6). */
export function oggCrc(b: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < b.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b[i]) & 0xff]) >>> 0;
  return crc;
}

/** Writes one logical Ogg stream, one packet per page (the lowest latency: FFmpeg gets each at once). */
export class OggWriter {
  readonly #serial: number;
  #seq = 0;

  constructor(serial: number) {
    this.#serial = serial >>> 0;
  }

  page(packet: Uint8Array, granule: number, flags = 0): Buffer {
    if (packet.length > 255 * 255) throw new RangeError('Ogg packet too large for one page');
    const lacing: number[] = [];
    let left = packet.length;
    while (left >= 255) {
      lacing.push(255);
      left -= 255;
    }
    lacing.push(left);
    const head = 27 + lacing.length;
    const b = Buffer.alloc(head + packet.length);
    b.write('OggS', 0, 'latin1');
    b[4] = 0;
    b[5] = flags;
    b.writeBigInt64LE(BigInt(granule), 6);
    b.writeUInt32LE(this.#serial, 14);
    b.writeUInt32LE(this.#seq++, 18);
    b[26] = lacing.length;
    b.set(lacing, 27);
    b.set(packet, head);
    b.writeUInt32LE(oggCrc(b), 22);
    return b;
  }
}

/** The two header packets of an Ogg Opus stream (RFC 7845 5.1, 5.2); pre-skip 0, channel mapping 0. */
export function opusHeaders(channels: number): [Buffer, Buffer] {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1;
  head[9] = channels;
  head.writeUInt16LE(0, 10);
  head.writeUInt32LE(OPUS_RATE, 12);
  head.writeInt16LE(0, 16);
  head[18] = 0;
  const vendor = Buffer.from('livepack', 'latin1');
  const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
  tags.write('OpusTags', 0, 'latin1');
  tags.writeUInt32LE(vendor.length, 8);
  vendor.copy(tags, 12);
  tags.writeUInt32LE(0, 12 + vendor.length);
  return [head, tags];
}

/** Longest gap filled with silence; a longer one (a sender that paused or restarted) starts a new timeline. */
export const MAX_GAP_SAMPLES = 10 * OPUS_RATE;

export type OpusStep =
  | { readonly kind: 'pages'; readonly bytes: Buffer[]; readonly samples: number; readonly filled: number }
  | { readonly kind: 'restart' }
  | { readonly kind: 'bad' };

/**
 * Turns RTP Opus packets (timestamp, payload) into Ogg pages with a contiguous granule position. The first
 * packet is the anchor: output sample n of the Ogg stream is RTP time anchor + n (+ the silence filled in).
 */
export class OpusTimeline {
  readonly #ogg: OggWriter;
  readonly #channels: number;
  #anchor: number | undefined;
  /** Samples written so far = granule position. */
  #samples = 0;
  /** RTP time (extended, 48 kHz) expected next. */
  #expected = 0;
  #lastRtp = 0;

  constructor(serial: number, channels = 2) {
    this.#ogg = new OggWriter(serial);
    this.#channels = channels;
  }

  /** RTP timestamp (extended) of Ogg sample 0; undefined before the first packet. */
  get anchor(): number | undefined {
    return this.#anchor;
  }

  /** `rtp` is the packet's extended RTP timestamp (no 32-bit wrap). */
  push(rtp: number, payload: Uint8Array): OpusStep {
    const samples = opusPacketSamples(payload);
    if (samples === undefined) return { kind: 'bad' };
    const pages: Buffer[] = [];
    let filled = 0;
    if (this.#anchor === undefined) {
      this.#anchor = rtp;
      this.#expected = rtp;
      const [head, tags] = opusHeaders(this.#channels);
      pages.push(this.#ogg.page(head, 0, 0x02), this.#ogg.page(tags, 0));
    } else {
      const gap = rtp - this.#expected;
      if (rtp <= this.#lastRtp - OPUS_RATE || gap > MAX_GAP_SAMPLES) return { kind: 'restart' };
      // Late or overlapping (a repeated timestamp): dropped, the timeline is already past it.
      if (gap < 0) return { kind: 'pages', bytes: [], samples: 0, filled: 0 };
      // Fill whole 20 ms frames; a remainder of 10 ms or more takes one more (error at most 10 ms a gap).
      const frames = Math.floor(gap / 960) + (gap % 960 >= 480 ? 1 : 0);
      for (let i = 0; i < frames; i++) {
        this.#samples += 960;
        pages.push(this.#ogg.page(OPUS_SILENCE_20MS, this.#samples));
      }
      filled = frames * 960;
    }
    this.#samples += samples;
    pages.push(this.#ogg.page(payload, this.#samples));
    this.#expected = rtp + samples;
    this.#lastRtp = rtp;
    return { kind: 'pages', bytes: pages, samples, filled };
  }
}
