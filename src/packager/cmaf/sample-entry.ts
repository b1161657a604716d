/**
 * Sample entries for the stsd box: avc1 / hvc1 / av01 (ISO/IEC 14496-15, AV1-ISOBMFF) and mp4a with esds
 * (ISO/IEC 14496-1, 14496-14) / Opus with dOps (Opus in ISOBMFF).
 */
import {
  AppError,
  parseAudioSpecificConfig,
  parseOpusHead,
  type AudioTrackInfo,
  type OpusConfig,
  type VideoTrackInfo,
} from '../../core/index.js';
import type { BoxWriter } from './box.js';

const VIDEO_ENTRY: Record<VideoTrackInfo['codec'], { entry: string; config: string }> = {
  h264: { entry: 'avc1', config: 'avcC' },
  h265: { entry: 'hvc1', config: 'hvcC' },
  av1: { entry: 'av01', config: 'av1C' },
};

export function writeVideoSampleEntry(w: BoxWriter, info: VideoTrackInfo): void {
  const { entry, config } = VIDEO_ENTRY[info.codec];
  if (info.codecPrivate.length === 0) throw new AppError('E_VALIDATION', `${info.codec}: missing ${config}`);
  w.box(entry, () => {
    // SampleEntry: reserved(6), data_reference_index; VisualSampleEntry fields (14496-12 12.1.3).
    w.zeros(6).u16(1);
    w.zeros(16); // pre_defined, reserved, pre_defined[3]
    w.u16(info.width).u16(info.height);
    w.u32(0x00480000).u32(0x00480000); // 72 dpi
    w.u32(0).u16(1); // reserved, frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018).i16(-1); // depth, pre_defined
    w.box(config, () => w.bytes(info.codecPrivate));
  });
}

/** An expandable descriptor size (14496-1 8.3.3): 7 bits per byte, high bit = more follows. */
function writeDescriptor(w: BoxWriter, tag: number, size: number, body: () => void): void {
  w.u8(tag);
  const groups: number[] = [];
  let n = size;
  do {
    groups.unshift(n & 0x7f);
    n >>>= 7;
  } while (n > 0);
  if (groups.length > 4) throw new AppError('E_LIMIT_EXCEEDED', 'descriptor too large');
  groups.forEach((g, i) => w.u8(i < groups.length - 1 ? g | 0x80 : g));
  body();
}

function descriptorSize(size: number): number {
  return 1 + (size < 0x80 ? 1 : size < 0x4000 ? 2 : size < 0x200000 ? 3 : 4) + size;
}

function writeEsds(w: BoxWriter, trackId: number, asc: Uint8Array): void {
  const dsi = descriptorSize(asc.length);
  const decoderConfig = descriptorSize(13 + dsi);
  const slConfig = descriptorSize(1);
  w.fullBox('esds', 0, 0, () => {
    writeDescriptor(w, 0x03, 3 + decoderConfig + slConfig, () => {
      w.u16(trackId & 0xffff).u8(0); // ES_ID; no dependsOn / URL / OCR stream
      writeDescriptor(w, 0x04, 13 + dsi, () => {
        w.u8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
        w.u8((0x05 << 2) | 1); // streamType AudioStream, upStream 0, reserved 1
        w.u24(0).u32(0).u32(0); // bufferSizeDB, maxBitrate, avgBitrate: unknown for live
        writeDescriptor(w, 0x05, asc.length, () => w.bytes(asc));
      });
      writeDescriptor(w, 0x06, 1, () => w.u8(0x02)); // SLConfigDescriptor predefined = 2 (MP4)
    });
  });
}

/** OpusHead from codecPrivate, or the mono / stereo defaults (family 0) when none was given. */
function opusConfig(info: AudioTrackInfo): OpusConfig {
  if (info.codecPrivate.length > 0) return parseOpusHead(info.codecPrivate);
  if (info.channels < 1 || info.channels > 2) {
    throw new AppError('E_UNSUPPORTED_CODEC', 'opus: more than 2 channels needs an OpusHead');
  }
  return {
    channels: info.channels,
    preSkip: 0,
    inputSampleRate: info.sampleRate,
    outputGain: 0,
    mappingFamily: 0,
    mapping: new Uint8Array(0),
  };
}

function writeAudioFields(w: BoxWriter, channels: number, sampleRate: number): void {
  // SampleEntry, then AudioSampleEntry (14496-12 12.2.3): reserved(8), channelcount, samplesize, pre_defined,
  // reserved, samplerate as 16.16 (0 when it does not fit).
  w.zeros(6).u16(1);
  w.zeros(8);
  w.u16(channels).u16(16).u16(0).u16(0);
  w.u32(sampleRate < 0x10000 ? sampleRate * 0x10000 : 0);
}

export function writeAudioSampleEntry(w: BoxWriter, trackId: number, info: AudioTrackInfo): void {
  if (info.codec === 'aac') {
    const asc = parseAudioSpecificConfig(info.codecPrivate);
    w.box('mp4a', () => {
      writeAudioFields(w, asc.channels || info.channels || 2, asc.sampleRate);
      writeEsds(w, trackId, info.codecPrivate);
    });
    return;
  }
  const opus = opusConfig(info);
  w.box('Opus', () => {
    writeAudioFields(w, opus.channels, 48_000);
    // OpusSpecificBox (Opus in ISOBMFF 4.3.2): the OpusHead fields, big-endian, without magic.
    w.box('dOps', () => {
      w.u8(0).u8(opus.channels).u16(opus.preSkip).u32(opus.inputSampleRate).i16(opus.outputGain);
      w.u8(opus.mappingFamily).bytes(opus.mapping);
    });
  });
}
