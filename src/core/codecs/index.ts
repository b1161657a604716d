/**
 * Parsers for codec configuration records (avcC, hvcC, av1C, AudioSpecificConfig) and RFC 6381 codec
 * strings. Pure: bytes in, values out. Every read is bounds-checked and every count is limited; bad input
 * throws AppError('E_PROTOCOL') and never reads past the end.
 */
import type { TrackInfo, TrackSet } from '../media.js';
import { parseAudioSpecificConfig } from './audio.js';
import { parseAv1CodecConfig, parseAvcDecoderConfig, parseHvccHeader } from './video.js';

export { parseAvcDecoderConfig, parseAvcSps, parseHevcDecoderConfig, parseHevcSps, parseAv1CodecConfig } from './video.js';
export type { AvcDecoderConfig } from './video.js';
export { parseAudioSpecificConfig, parseOpusHead } from './audio.js';
export type { OpusConfig } from './audio.js';

// ------------------------------------------------------------------------------------------ RFC 6381

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** The RFC 6381 codec string for a track, as used in HLS CODECS and MSE. */
export function codecString(track: TrackInfo): string {
  switch (track.codec) {
    case 'h264': {
      const c = parseAvcDecoderConfig(track.codecPrivate);
      return `avc1.${hex2(c.profile)}${hex2(c.compat)}${hex2(c.level)}`;
    }
    case 'h265':
      return parseHvccHeader(track.codecPrivate).codecString;
    case 'av1':
      return parseAv1CodecConfig(track.codecPrivate).codecString;
    case 'aac':
      return `mp4a.40.${parseAudioSpecificConfig(track.codecPrivate).objectType}`;
    case 'opus':
      return 'opus';
  }
}

/** What a multivariant playlist says about a rendition with these tracks (CODECS, RESOLUTION, FRAME-RATE). */
export function describeTracks(tracks: TrackSet): { codecs: string; width?: number; height?: number; frameRate?: number } {
  const { video, audio } = tracks;
  const codecs = [video, audio].filter((t) => t !== undefined).map((t) => codecString(t));
  return {
    codecs: codecs.join(','),
    width: video?.width || undefined,
    height: video?.height || undefined,
    frameRate: video?.frameRate || undefined,
  };
}
