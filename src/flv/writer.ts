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

  /** One frame as a tag; the first frame written sets the base. */
  frame(f: MediaFrame, codec: VideoCodec | 'aac'): Buffer {
    return Buffer.concat(this.framePieces(f, codec));
  }

  /**
   * The same tag as three pieces (tag and codec headers, the frame's own bytes, PreviousTagSize), so a
   * caller can hand them to one vectored write without copying the frame.
   */
  framePieces(f: MediaFrame, codec: VideoCodec | 'aac'): [Buffer, Uint8Array, Buffer] {
    this.#base ??= f.dts;
    const ms = Math.max(0, Math.round((f.dts - this.#base) / (TIMESCALE / 1000)));
    let head: Buffer;
    if (f.track === 'audio') head = Buffer.from([AAC_FLAGS, 0x01]);
    else {
      const cts = Math.round((f.pts - f.dts) / (TIMESCALE / 1000));
      const frameType = f.keyframe ? 1 : 2;
      if (codec === 'h264') head = Buffer.from([(frameType << 4) | 7, 0x01, (cts >> 16) & 0xff, (cts >> 8) & 0xff, cts & 0xff]);
      else {
        const v = codec as VideoCodec;
        // Enhanced RTMP: IsExHeader | FrameType | PacketType, FourCC; CodedFrames carries a CompositionTime
        // for HEVC, CodedFramesX (no composition time) is used when it is zero.
        const withCts = v === 'h265' && cts !== 0;
        head = Buffer.concat([
          Buffer.from([0x80 | (frameType << 4) | (withCts ? 1 : 3)]),
          Buffer.from(FOURCC[v], 'latin1'),
          withCts ? Buffer.from([(cts >> 16) & 0xff, (cts >> 8) & 0xff, cts & 0xff]) : Buffer.alloc(0),
        ]);
      }
    }
    const size = head.byteLength + f.data.byteLength;
    const tagHead = Buffer.alloc(11 + head.byteLength);
    writeTagHeader(tagHead, f.track === 'audio' ? 8 : 9, size, ms);
    tagHead.set(head, 11);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE(11 + size, 0);
    return [tagHead, f.data, trailer];
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
