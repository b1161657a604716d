/** Audio configuration records: AudioSpecificConfig (AAC) and OpusHead. */
import { BitReader, fail } from './bits.js';

// ------------------------------------------------------------------------------------------------ AAC

const AAC_SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/** channelConfiguration -> channel count (ISO/IEC 14496-3 table 1.19; 23003-3 adds 11..14). 0: in a PCE. */
const AAC_CHANNELS: Partial<Record<number, number>> = { 0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8 };

function audioObjectType(r: BitReader): number {
  const t = r.bits(5);
  return t === 31 ? 32 + r.bits(6) : t;
}

function samplingFrequency(r: BitReader): number {
  const index = r.bits(4);
  if (index === 15) return r.bits(24);
  const rate = AAC_SAMPLE_RATES.at(index); // undefined for the reserved indexes 13 and 14
  if (rate === undefined) fail('asc: reserved samplingFrequencyIndex');
  return rate;
}

/**
 * AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1). objectType is the signalled one (5 / 29 for explicit
 * SBR / PS, which mp4a.40.5 / .29 name); sampleRate is the core (AAC-LC) rate, whose 1024-sample frames
 * time the stream. channels is 0 when the layout is given in a program_config_element.
 */
export function parseAudioSpecificConfig(asc: Uint8Array): { objectType: number; sampleRate: number; channels: number } {
  const r = new BitReader(asc);
  const objectType = audioObjectType(r);
  if (objectType === 0) fail('asc: null audioObjectType');
  const sampleRate = samplingFrequency(r);
  if (sampleRate === 0) fail('asc: zero sampling frequency');
  const channels = AAC_CHANNELS[r.bits(4)];
  if (channels === undefined) fail('asc: reserved channelConfiguration');
  return { objectType, sampleRate, channels };
}

// ------------------------------------------------------------------------------------------------ Opus

export interface OpusConfig {
  channels: number;
  preSkip: number;
  inputSampleRate: number;
  outputGain: number;
  mappingFamily: number;
  /** stream count, coupled count, mapping table; empty for family 0. */
  mapping: Uint8Array;
}

/** The "OpusHead" identification header (RFC 7845 5.1), little-endian fields. */
export function parseOpusHead(head: Uint8Array): OpusConfig {
  if (head.length < 19 || new TextDecoder().decode(head.subarray(0, 8)) !== 'OpusHead') fail('opus: not an OpusHead');
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head[8] >> 4 !== 0) fail('opus: unsupported OpusHead version');
  const channels = head[9];
  if (channels === 0) fail('opus: zero channels');
  const mappingFamily = head[18];
  const mappingLength = mappingFamily === 0 ? 0 : 2 + channels;
  if (head.length < 19 + mappingLength) fail('opus: truncated channel mapping table');
  return {
    channels,
    preSkip: dv.getUint16(10, true),
    inputSampleRate: dv.getUint32(12, true),
    outputGain: dv.getInt16(16, true),
    mappingFamily,
    mapping: head.slice(19, 19 + mappingLength),
  };
}
