/**
 * The one type every stage speaks. Timestamps are integers in TIMESCALE ticks (90 kHz, the RTP video
 * clock: RTMP milliseconds map exactly, 29.97 fps frame durations are whole ticks).
 */
export const TIMESCALE = 90_000;

export type TrackKind = 'video' | 'audio';
export type VideoCodec = 'h264' | 'h265' | 'av1';
export type AudioCodec = 'aac' | 'opus';
export type Codec = VideoCodec | AudioCodec;

export interface VideoTrackInfo {
  readonly kind: 'video';
  readonly codec: VideoCodec;
  /** avcC (AVCDecoderConfigurationRecord), hvcC or av1C record, exactly as carried in FLV / MP4. */
  readonly codecPrivate: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** Frames per second if known (metadata or measured), else 0. */
  readonly frameRate: number;
}

export interface AudioTrackInfo {
  readonly kind: 'audio';
  readonly codec: AudioCodec;
  /** AudioSpecificConfig for AAC; OpusHead-style config for Opus. */
  readonly codecPrivate: Uint8Array;
  readonly sampleRate: number;
  readonly channels: number;
}

export type TrackInfo = VideoTrackInfo | AudioTrackInfo;

/** The tracks of one publish session; a new session (reconnect) brings a new set. */
export interface TrackSet {
  readonly video?: VideoTrackInfo;
  readonly audio?: AudioTrackInfo;
}

export interface MediaFrame {
  readonly track: TrackKind;
  /** Decode time in TIMESCALE ticks, monotonic within a session after repair. */
  readonly dts: number;
  /** Presentation time in TIMESCALE ticks (pts >= dts for video, pts == dts for audio). */
  readonly pts: number;
  /** Video: an IDR / random access point. Audio: always true. */
  readonly keyframe: boolean;
  /** Video: 4-byte length-prefixed NAL units (AV1: OBUs). Audio: one raw codec frame. */
  readonly data: Uint8Array;
  /** Wall clock (ms since epoch) at which ingest received this frame; feeds EXT-X-PROGRAM-DATE-TIME. */
  readonly wallClock: number;
}

export function msToTicks(ms: number): number {
  return Math.round(ms * (TIMESCALE / 1000));
}

export function ticksToSeconds(ticks: number): number {
  return ticks / TIMESCALE;
}
