import { AppError, TIMESCALE, type MediaFrame, type TrackSet, type VideoCodec } from '../core/index.js';

const FOURCC: Record<VideoCodec, string> = { h264: 'avc1', h265: 'hvc1', av1: 'av01' };
/** AAC, 44 kHz (always 3 for AAC), 16-bit, stereo: the flags byte FLV requires for AAC whatever the real rate. */
const AAC_FLAGS = 0xaf;

/**
 * Writes tracks and frames as an FLV byte stream (to feed FFmpeg): H.264 in the legacy layout that every
 * FFmpeg reads, H.265 and AV1 in the Enhanced RTMP layout (FFmpeg 6.1 and later read it), AAC audio.
 * Timestamps are written in ms relative to the first frame's dts (`base`), so the reader of the output
 * gets the source's timestamps back by adding it.
 */
export class FlvWriter {
  #base: number | undefined;

  /** The timeline origin in ticks: FLV time 0 is this source dts. */
  get base(): number | undefined {
    return this.#base;
  }

  header(tracks: TrackSet): Buffer {
    const flags = (tracks.audio ? 0x04 : 0) | (tracks.video ? 0x01 : 0);
    const h = Buffer.from([0x46, 0x4c, 0x56, 0x01, flags, 0, 0, 0, 9, 0, 0, 0, 0]);
    const out: Buffer[] = [h];
    if (tracks.video) out.push(this.#tag(9, 0, videoConfigBody(tracks.video.codec, tracks.video.codecPrivate)));
    if (tracks.audio) {
      if (tracks.audio.codec !== 'aac') throw new AppError('E_UNSUPPORTED_CODEC', `FLV carries AAC audio, not ${tracks.audio.codec}`);
      out.push(this.#tag(8, 0, Buffer.concat([Buffer.from([AAC_FLAGS, 0x00]), tracks.audio.codecPrivate])));
    }
    return Buffer.concat(out);
  }

  /** One frame as a whole tag (PreviousTagSize included) in one buffer; the first frame written sets the base. */
  frame(f: MediaFrame, codec: VideoCodec | 'aac'): Buffer {
    this.#base ??= f.dts;
    const ms = Math.max(0, Math.round((f.dts - this.#base) / (TIMESCALE / 1000)));
    const cts = f.track === 'video' ? Math.round((f.pts - f.dts) / (TIMESCALE / 1000)) : 0;
    // Enhanced RTMP (H.265, AV1): IsExHeader | FrameType | PacketType, FourCC; CodedFrames carries a
    // CompositionTime for HEVC, CodedFramesX (no composition time) is used when it is zero.
    const enhancedCts = codec === 'h265' && cts !== 0;
    const headLen = f.track === 'audio' ? 2 : codec === 'h264' ? 5 : enhancedCts ? 8 : 5;
    const size = headLen + f.data.byteLength;
    const tag = Buffer.allocUnsafe(11 + size + 4);
    writeTagHeader(tag, f.track === 'audio' ? 8 : 9, size, ms);
    const frameType = f.keyframe ? 1 : 2;
    if (f.track === 'audio') {
      tag[11] = AAC_FLAGS;
      tag[12] = 0x01;
    } else if (codec === 'h264') {
      tag[11] = (frameType << 4) | 7;
      tag[12] = 0x01;
      tag.writeIntBE(cts, 13, 3);
    } else {
      tag[11] = 0x80 | (frameType << 4) | (enhancedCts ? 1 : 3);
      tag.write(FOURCC[codec as VideoCodec], 12, 'latin1');
      if (enhancedCts) tag.writeIntBE(cts, 16, 3);
    }
    tag.set(f.data, 11 + headLen);
    tag.writeUInt32BE(11 + size, 11 + size);
    return tag;
  }

  #tag(type: number, ms: number, body: Buffer | Uint8Array): Buffer {
    const t = Buffer.alloc(11 + body.byteLength + 4);
    writeTagHeader(t, type, body.byteLength, ms);
    t.set(body, 11);
    t.writeUInt32BE(11 + body.byteLength, 11 + body.byteLength);
    return t;
  }
}

/** TagType, DataSize, Timestamp (24 bits + TimestampExtended), StreamID 0. */
function writeTagHeader(t: Buffer, type: number, size: number, ms: number): void {
  t[0] = type;
  t.writeUIntBE(0, 8, 3); // StreamID
  t.writeUIntBE(size, 1, 3);
  t.writeUIntBE(ms & 0xffffff, 4, 3);
  t[7] = (ms >>> 24) & 0xff;
}

function videoConfigBody(codec: VideoCodec, record: Uint8Array): Buffer {
  if (codec === 'h264') {
    // Frames are written with 4-byte NAL length prefixes (the hub's form): say so in the record.
    const avcc = Buffer.from(record);
    if (avcc.byteLength > 4) avcc[4] = (avcc[4] & 0xfc) | 0x03;
    return Buffer.concat([Buffer.from([0x17, 0x00, 0, 0, 0]), avcc]);
  }
  const rec = Buffer.from(record);
  if (codec === 'h265' && rec.byteLength > 21) rec[21] = (rec[21] & 0xfc) | 0x03;
  return Buffer.concat([Buffer.from([0x80 | (1 << 4) | 0]), Buffer.from(FOURCC[codec], 'latin1'), rec]);
}
