import { AppError, type VideoCodec } from '../core/index.js';

/**
 * FLV audio / video tag bodies as carried in RTMP messages 8 and 9: the legacy layout (FLV 10.1 spec,
 * E.4.2 / E.4.3) and Enhanced RTMP (veovera enhanced-rtmp v1 and v2) for HEVC and AV1.
 */
export type VideoPacket =
  | { readonly type: 'config'; readonly codec: VideoCodec; readonly config: Buffer }
  | { readonly type: 'frame'; readonly codec: VideoCodec; readonly keyframe: boolean; readonly cts: number; readonly data: Buffer }
  | { readonly type: 'end'; readonly codec: VideoCodec }
  | { readonly type: 'ignore'; readonly what: string };

export type AudioPacket =
  | { readonly type: 'config'; readonly codec: 'aac'; readonly config: Buffer }
  | { readonly type: 'frame'; readonly codec: 'aac'; readonly data: Buffer }
  | { readonly type: 'ignore'; readonly what: string };

export const VideoFrameType = { key: 1, inter: 2, disposable: 3, generatedKey: 4, command: 5 } as const;

/** Enhanced RTMP VideoPacketType / AudioPacketType values. */
export const ExPacketType = {
  sequenceStart: 0,
  codedFrames: 1,
  sequenceEnd: 2,
  codedFramesX: 3,
  metadata: 4,
  mpeg2tsSequenceStart: 5,
  multitrack: 6,
  modEx: 7,
} as const;
export const ExAudioPacketType = {
  sequenceStart: 0,
  codedFrames: 1,
  sequenceEnd: 2,
  multichannelConfig: 4,
  multitrack: 5,
  modEx: 7,
} as const;

const LEGACY_VIDEO: Record<number, string> = {
  1: 'JPEG',
  2: 'Sorenson H.263',
  3: 'Screen video',
  4: 'On2 VP6',
  5: 'On2 VP6 with alpha',
  6: 'Screen video v2',
};
const SOUND_FORMAT: Record<number, string> = {
  0: 'linear PCM',
  1: 'ADPCM',
  2: 'MP3',
  3: 'linear PCM LE',
  4: 'Nellymoser 16 kHz',
  5: 'Nellymoser 8 kHz',
  6: 'Nellymoser',
  7: 'G.711 A-law',
  8: 'G.711 mu-law',
  11: 'Speex',
  14: 'MP3 8 kHz',
  15: 'device-specific',
};
const FOURCC_VIDEO: Partial<Record<string, VideoCodec>> = { avc1: 'h264', hvc1: 'h265', av01: 'av1' };

function bad(msg: string): never {
  throw new AppError('E_PROTOCOL', msg);
}
function unsupported(msg: string): never {
  throw new AppError('E_UNSUPPORTED_CODEC', msg);
}

function si24(b: Buffer, pos: number): number {
  const v = b.readUIntBE(pos, 3);
  return v & 0x800000 ? v - 0x1000000 : v;
}

/** A FourCC as text, or its hex when it is not printable (it goes into log lines). */
export function fourCcText(b: Buffer): string {
  return /^[\x20-\x7e]{4}$/.test(b.toString('latin1')) ? b.toString('latin1') : `0x${b.toString('hex')}`;
}

/** Skips ModEx (v2) wrappers; returns the real packet type and the position of the FourCC. */
function skipModEx(body: Buffer, packetType: number, modEx: number): { packetType: number; pos: number } {
  let p = 1;
  let guard = 0;
  while (packetType === modEx) {
    if (++guard > 8) bad('too many ModEx wrappers');
    if (p + 1 > body.byteLength) bad('truncated ModEx');
    let size = body[p] + 1;
    p += 1;
    if (size === 256) {
      if (p + 2 > body.byteLength) bad('truncated ModEx');
      size = body.readUInt16BE(p) + 1;
      p += 2;
    }
    p += size;
    if (p + 1 > body.byteLength) bad('truncated ModEx');
    // High nibble: ModExType (TimestampOffsetNano is the only one defined; sub-ms precision is dropped).
    packetType = body[p] & 0x0f;
    p += 1;
  }
  return { packetType, pos: p };
}

export function parseVideoTag(body: Buffer): VideoPacket {
  if (body.byteLength === 0) return { type: 'ignore', what: 'empty video message' };
  const b0 = body[0];
  if (b0 & 0x80) return parseExVideo(body);
  const frameType = b0 >> 4;
  const codecId = b0 & 0x0f;
  if (frameType === VideoFrameType.command) return { type: 'ignore', what: 'video info/command frame' };
  // 7 = AVC; 12 = HEVC in the pre-enhanced-RTMP layout some Chinese CDNs and FFmpeg 6+ read.
  let codec: VideoCodec;
  if (codecId === 7) codec = 'h264';
  else if (codecId === 12) codec = 'h265';
  else unsupported(`unsupported video codec ${LEGACY_VIDEO[codecId] ?? `id ${codecId}`}`);
  if (body.byteLength < 5) bad(`video tag of ${body.byteLength} bytes`);
  const packetType = body[1];
  const data = body.subarray(5);
  switch (packetType) {
    case 0: // "AVC sequence header": AVCDecoderConfigurationRecord
      if (data.byteLength === 0) bad('empty video sequence header');
      return { type: 'config', codec, config: data };
    case 1: // "AVC NALU", with "CompositionTime: SI24"
      return { type: 'frame', codec, keyframe: frameType === VideoFrameType.key, cts: si24(body, 2), data };
    case 2: // "AVC end of sequence (lower level NALU sequence ender is not required or supported)"
      return { type: 'end', codec };
    default:
      return bad(`unknown AVCPacketType ${packetType}`);
  }
}

function parseExVideo(body: Buffer): VideoPacket {
  const b0 = body[0];
  const frameType = (b0 >> 4) & 0x07;
  const { packetType, pos } = skipModEx(body, b0 & 0x0f, ExPacketType.modEx);
  if (packetType === ExPacketType.multitrack) unsupported('unsupported multitrack video');
  if (pos + 4 > body.byteLength) bad(`enhanced video tag of ${body.byteLength} bytes`);
  const fourCc = body.subarray(pos, pos + 4);
  // "If videoFrameType is Command and videoPacketType is not Metadata, the payload is a VideoCommand."
  if (frameType === VideoFrameType.command && packetType !== ExPacketType.metadata) {
    return { type: 'ignore', what: 'video command frame' };
  }
  const codec = FOURCC_VIDEO[fourCc.toString('latin1')];
  if (!codec) unsupported(`unsupported video codec ${fourCcText(fourCc)}`);
  const keyframe = frameType === VideoFrameType.key;
  const p = pos + 4;
  switch (packetType) {
    case ExPacketType.sequenceStart:
      if (p >= body.byteLength) bad('empty video sequence start');
      return { type: 'config', codec, config: body.subarray(p) };
    case ExPacketType.codedFrames:
      // "CompositionTime Offset is implied to equal zero" for av01; avc1 and hvc1 carry an SI24.
      if (codec === 'av1') return { type: 'frame', codec, keyframe, cts: 0, data: body.subarray(p) };
      if (p + 3 > body.byteLength) bad('truncated CodedFrames');
      return { type: 'frame', codec, keyframe, cts: si24(body, p), data: body.subarray(p + 3) };
    case ExPacketType.codedFramesX: // "the CompositionTime Offset field is not present"
      return { type: 'frame', codec, keyframe, cts: 0, data: body.subarray(p) };
    case ExPacketType.sequenceEnd:
      return { type: 'end', codec };
    case ExPacketType.metadata: // AMF-encoded colorInfo (HDR); not needed downstream
      return { type: 'ignore', what: 'video metadata' };
    case ExPacketType.mpeg2tsSequenceStart: // AV1 descriptor for MPEG-2 TS; we take av1C from SequenceStart
      return { type: 'ignore', what: 'MPEG2TSSequenceStart' };
    default:
      return bad(`unknown video PacketType ${packetType}`);
  }
}

export function parseAudioTag(body: Buffer): AudioPacket {
  if (body.byteLength === 0) return { type: 'ignore', what: 'empty audio message' };
  const format = body[0] >> 4;
  if (format === 9) return parseExAudio(body);
  if (format !== 10) unsupported(`unsupported audio codec ${SOUND_FORMAT[format] ?? `id ${format}`}`);
  if (body.byteLength < 2) bad('truncated AAC tag');
  // "AACPacketType: 0 = AAC sequence header, 1 = AAC raw"
  const data = body.subarray(2);
  if (body[1] === 0) {
    if (data.byteLength < 2) bad('AudioSpecificConfig shorter than 2 bytes');
    return { type: 'config', codec: 'aac', config: data };
  }
  if (body[1] === 1) return { type: 'frame', codec: 'aac', data };
  return bad(`unknown AACPacketType ${body[1]}`);
}

function parseExAudio(body: Buffer): AudioPacket {
  const { packetType, pos } = skipModEx(body, body[0] & 0x0f, ExAudioPacketType.modEx);
  if (packetType === ExAudioPacketType.multitrack) unsupported('unsupported multitrack audio');
  if (pos + 4 > body.byteLength) bad(`enhanced audio tag of ${body.byteLength} bytes`);
  const fourCc = body.subarray(pos, pos + 4);
  if (fourCc.toString('latin1') !== 'mp4a') unsupported(`unsupported audio codec ${fourCcText(fourCc)}`);
  const data = body.subarray(pos + 4);
  switch (packetType) {
    case ExAudioPacketType.sequenceStart:
      if (data.byteLength < 2) bad('AudioSpecificConfig shorter than 2 bytes');
      return { type: 'config', codec: 'aac', config: data };
    case ExAudioPacketType.codedFrames:
      return { type: 'frame', codec: 'aac', data };
    case ExAudioPacketType.sequenceEnd:
    case ExAudioPacketType.multichannelConfig:
      return { type: 'ignore', what: `audio packet type ${packetType}` };
    default:
      return bad(`unknown audio PacketType ${packetType}`);
  }
}

export interface AggregateItem {
  readonly type: number;
  readonly timestamp: number;
  readonly body: Buffer;
}

/**
 * Aggregate messages (type 22) carry FLV tags back to back: 11-byte tag header, body, 4-byte previous
 * tag size. "The timestamp of the first sub-message ... is the same as the aggregate message's"; the
 * others keep their offsets from it.
 */
export function parseAggregate(payload: Buffer, timestamp: number, maxItems = 1024): AggregateItem[] {
  const out: AggregateItem[] = [];
  let p = 0;
  let first: number | undefined;
  while (p < payload.byteLength) {
    if (out.length >= maxItems) bad(`aggregate message with more than ${maxItems} sub-messages`);
    if (p + 11 > payload.byteLength) bad('truncated aggregate sub-message header');
    const type = payload[p];
    const size = payload.readUIntBE(p + 1, 3);
    const ts = (payload.readUIntBE(p + 4, 3) | (payload[p + 7] << 24)) >>> 0;
    const start = p + 11;
    if (start + size > payload.byteLength) bad('truncated aggregate sub-message');
    first ??= ts;
    out.push({ type, timestamp: (timestamp + (ts - first)) >>> 0, body: payload.subarray(start, start + size) });
    p = start + size + 4;
  }
  return out;
}
