import {
  AppError,
  msToTicks,
  parseAudioSpecificConfig,
  parseAv1CodecConfig,
  parseAvcDecoderConfig,
  parseHevcDecoderConfig,
  TIMESCALE,
  type AudioTrackInfo,
  type MediaFrame,
  type TrackKind,
  type TrackSet,
  type VideoCodec,
  type VideoTrackInfo,
} from '../core/index.js';
import { isAmfObject, type AmfObject, type AmfValue } from './amf0.js';
import { TimestampUnwrapper } from './timestamps.js';
import { parseAudioTag, parseVideoTag } from './tags.js';

/** Where assembled tracks and frames go (a hub Publisher satisfies it). */
export interface MediaSink {
  setTracks(tracks: TrackSet): void;
  write(frame: MediaFrame): void;
}

export interface MediaAssemblerOptions {
  /** Frames held while waiting for every announced sequence header. */
  readonly maxBufferedFrames: number;
  /** ...and the longest span of decode time they may cover, in ticks. */
  readonly maxBufferedTicks: number;
  readonly now: () => number;
}

export const DEFAULT_ASSEMBLER_OPTIONS: MediaAssemblerOptions = {
  maxBufferedFrames: 300,
  maxBufferedTicks: 2 * TIMESCALE,
  now: Date.now,
};

/** What onMetaData told us; used as hints only. */
export interface MetadataHints {
  readonly hasVideo: boolean;
  readonly hasAudio: boolean;
  readonly width: number;
  readonly height: number;
  readonly frameRate: number;
  readonly sampleRate: number;
  readonly channels: number;
}

function num(v: AmfValue): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
}
function present(v: AmfValue): boolean {
  return v !== undefined && v !== null && v !== '';
}

export function metadataHints(obj: AmfObject): MetadataHints {
  return {
    hasVideo: present(obj.videocodecid),
    hasAudio: present(obj.audiocodecid),
    width: Math.round(num(obj.width)),
    height: Math.round(num(obj.height)),
    frameRate: num(obj.framerate) || num(obj.videoframerate) || num(obj.fps),
    sampleRate: num(obj.audiosamplerate),
    channels: num(obj.audiochannels) || (obj.stereo === true ? 2 : obj.stereo === false ? 1 : 0),
  };
}

interface VideoConfig {
  codec: VideoCodec;
  bytes: Buffer;
  width: number;
  height: number;
  /** Bytes of each NAL unit's length prefix in FLV frames (H.264 / H.265); 0 for AV1. */
  nalLengthSize: number;
}

interface AudioConfig {
  bytes: Buffer;
  sampleRate: number;
  channels: number;
}

/** Rewrites length-prefixed NAL units from `size`-byte to 4-byte prefixes. */
export function reprefixNals(data: Buffer, size: number): Buffer {
  if (size === 4) return data;
  const nals: Buffer[] = [];
  let p = 0;
  while (p < data.byteLength) {
    if (p + size > data.byteLength) throw new AppError('E_PROTOCOL', 'truncated NAL unit length');
    const len = data.readUIntBE(p, size);
    p += size;
    if (p + len > data.byteLength) throw new AppError('E_PROTOCOL', 'NAL unit longer than its frame');
    nals.push(Buffer.from([len >>> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]), data.subarray(p, p + len));
    p += len;
  }
  return Buffer.concat(nals);
}

function parseVideoConfig(codec: VideoCodec, bytes: Buffer): VideoConfig {
  if (codec === 'h264') {
    const c = parseAvcDecoderConfig(bytes);
    return { codec, bytes, width: c.width, height: c.height, nalLengthSize: c.nalLengthSize };
  }
  if (codec === 'h265') {
    const c = parseHevcDecoderConfig(bytes);
    // HEVCDecoderConfigurationRecord byte 21: "bit(6) reserved; unsigned int(2) lengthSizeMinusOne".
    return { codec, bytes, width: c.width, height: c.height, nalLengthSize: (bytes[21] & 0x03) + 1 };
  }
  const c = parseAv1CodecConfig(bytes);
  return { codec, bytes, width: c.width, height: c.height, nalLengthSize: 0 };
}

/**
 * Turns FLV tag bodies into a TrackSet and MediaFrames. Tracks are announced once every track that
 * onMetaData declared has its sequence header, or (without such metadata) at the first coded frame;
 * frames that arrive before are held (bounded) and flushed after the announcement. A sequence header
 * with new bytes later re-announces. Throws AppError E_UNSUPPORTED_CODEC / E_PROTOCOL.
 */
export class MediaAssembler {
  readonly #sink: MediaSink;
  readonly #opts: MediaAssemblerOptions;
  #hints: MetadataHints | undefined;
  #video: VideoConfig | undefined;
  #audio: AudioConfig | undefined;
  #announced: TrackSet | undefined;
  #held: MediaFrame[] = [];
  #clock = { video: new TimestampUnwrapper(), audio: new TimestampUnwrapper() };
  /** Coded frames dropped because their track had no sequence header yet. */
  droppedFrames = 0;

  constructor(sink: MediaSink, opts: MediaAssemblerOptions = DEFAULT_ASSEMBLER_OPTIONS) {
    this.#sink = sink;
    this.#opts = opts;
  }

  get tracks(): TrackSet | undefined {
    return this.#announced;
  }

  metadata(value: AmfValue): void {
    if (isAmfObject(value)) this.#hints = metadataHints(value);
  }

  video(timestamp: number, body: Buffer): void {
    const pkt = parseVideoTag(body);
    if (pkt.type === 'config') {
      if (this.#video && this.#video.codec === pkt.codec && this.#video.bytes.equals(pkt.config)) return;
      this.#video = parseVideoConfig(pkt.codec, Buffer.from(pkt.config));
      this.#onConfig();
    } else if (pkt.type === 'frame') {
      const cfg = this.#video;
      if (!cfg || cfg.codec !== pkt.codec) {
        this.droppedFrames++;
        return;
      }
      const dts = msToTicks(this.#clock.video.next(timestamp));
      const data = cfg.nalLengthSize > 0 ? reprefixNals(pkt.data, cfg.nalLengthSize) : pkt.data;
      // pts >= dts for video; a negative composition offset is a muxer bug, clamp it.
      const pts = Math.max(dts, dts + msToTicks(pkt.cts));
      this.#frame({ track: 'video', dts, pts, keyframe: pkt.keyframe, data, wallClock: this.#opts.now() });
    }
  }

  audio(timestamp: number, body: Buffer): void {
    const pkt = parseAudioTag(body);
    if (pkt.type === 'config') {
      if (this.#audio?.bytes.equals(pkt.config)) return;
      const c = parseAudioSpecificConfig(pkt.config);
      this.#audio = { bytes: Buffer.from(pkt.config), sampleRate: c.sampleRate, channels: c.channels };
      this.#onConfig();
    } else if (pkt.type === 'frame') {
      if (!this.#audio) {
        this.droppedFrames++;
        return;
      }
      const dts = msToTicks(this.#clock.audio.next(timestamp));
      this.#frame({ track: 'audio', dts, pts: dts, keyframe: true, data: pkt.data, wallClock: this.#opts.now() });
    }
  }

  #onConfig(): void {
    if (this.#announced) return this.#announce();
    const h = this.#hints;
    if (!h || (!h.hasVideo && !h.hasAudio)) return; // announce at the first coded frame
    if ((!h.hasVideo || this.#video) && (!h.hasAudio || this.#audio)) this.#announce();
  }

  #frame(frame: MediaFrame): void {
    if (this.#announced) return this.#sink.write(frame);
    const h = this.#hints;
    const waiting = h !== undefined && ((h.hasVideo && !this.#video) || (h.hasAudio && !this.#audio));
    if (!waiting) {
      this.#announce();
      this.#sink.write(frame);
      return;
    }
    this.#held.push(frame);
    const first = this.#held.find((f) => f.track === frame.track);
    const span = first ? frame.dts - first.dts : 0;
    // A declared track whose sequence header never comes must not hold the others forever.
    if (this.#held.length >= this.#opts.maxBufferedFrames || span >= this.#opts.maxBufferedTicks) this.#announce();
  }

  #announce(): void {
    const tracks = this.#trackSet();
    this.#announced = tracks;
    this.#sink.setTracks(tracks);
    const held = this.#held;
    this.#held = [];
    for (const f of held) this.#sink.write(f);
  }

  #trackSet(): TrackSet {
    const h = this.#hints;
    let video: VideoTrackInfo | undefined;
    let audio: AudioTrackInfo | undefined;
    if (this.#video) {
      const v = this.#video;
      video = {
        kind: 'video',
        codec: v.codec,
        codecPrivate: v.bytes,
        width: v.width || h?.width || 0,
        height: v.height || h?.height || 0,
        frameRate: h?.frameRate ?? 0,
      };
    }
    if (this.#audio) {
      const a = this.#audio;
      audio = {
        kind: 'audio',
        codec: 'aac',
        codecPrivate: a.bytes,
        sampleRate: a.sampleRate || h?.sampleRate || 0,
        channels: a.channels || h?.channels || 0,
      };
    }
    return { ...(video ? { video } : {}), ...(audio ? { audio } : {}) };
  }

  /** Frames held while waiting for sequence headers (exposed for tests and limits). */
  heldFrames(kind?: TrackKind): number {
    return kind ? this.#held.filter((f) => f.track === kind).length : this.#held.length;
  }
}
