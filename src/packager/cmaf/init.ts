/** The CMAF header (init segment): ftyp + moov with one trak per track and an mvex for fragments. */
import { AppError } from '../../core/index.js';
import { BoxWriter } from './box.js';
import { writeAudioSampleEntry, writeVideoSampleEntry } from './sample-entry.js';
import type { CmafTrack } from './types.js';

const MOVIE_TIMESCALE = 1000;
const UNITY_MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];
const LANGUAGE_UND = (('u'.charCodeAt(0) - 0x60) << 10) | (('n'.charCodeAt(0) - 0x60) << 5) | ('d'.charCodeAt(0) - 0x60);

function writeMatrix(w: BoxWriter): void {
  for (const v of UNITY_MATRIX) w.u32(v);
}

function validate(tracks: CmafTrack[]): void {
  if (tracks.length === 0) throw new AppError('E_VALIDATION', 'init segment needs at least one track');
  const ids = new Set<number>();
  for (const t of tracks) {
    if (!Number.isInteger(t.id) || t.id < 1 || t.id > 0xffffffff || ids.has(t.id)) {
      throw new AppError('E_VALIDATION', `bad or duplicate track id ${t.id}`);
    }
    ids.add(t.id);
    if (!Number.isInteger(t.timescale) || t.timescale < 1 || t.timescale > 0xffffffff) {
      throw new AppError('E_VALIDATION', `track ${t.id}: bad timescale ${t.timescale}`);
    }
  }
}

function writeTrak(w: BoxWriter, track: CmafTrack): void {
  const { info } = track;
  const video = info.kind === 'video';
  w.box('trak', () => {
    // tkhd flags: track_enabled | track_in_movie.
    w.fullBox('tkhd', 0, 0x000003, () => {
      w.u32(0).u32(0).u32(track.id).u32(0).u32(0); // creation, modification, track_ID, reserved, duration
      w.zeros(8).u16(0).u16(0); // reserved, layer, alternate_group
      w.u16(video ? 0 : 0x0100).u16(0); // volume, reserved
      writeMatrix(w);
      w.u32(video ? info.width * 0x10000 : 0).u32(video ? info.height * 0x10000 : 0);
    });
    w.box('mdia', () => {
      w.fullBox('mdhd', 0, 0, () => {
        w.u32(0).u32(0).u32(track.timescale).u32(0).u16(LANGUAGE_UND).u16(0);
      });
      w.fullBox('hdlr', 0, 0, () => {
        w.u32(0)
          .ascii(video ? 'vide' : 'soun')
          .zeros(12);
        w.ascii(video ? 'VideoHandler' : 'SoundHandler').u8(0);
      });
      w.box('minf', () => {
        if (video) w.fullBox('vmhd', 0, 1, () => w.zeros(8));
        else w.fullBox('smhd', 0, 0, () => w.zeros(4));
        w.box('dinf', () => {
          w.fullBox('dref', 0, 0, () => {
            w.u32(1).fullBox('url ', 0, 1, () => {}); // flag 1: media is in this file
          });
        });
        w.box('stbl', () => {
          w.fullBox('stsd', 0, 0, () => {
            w.u32(1);
            if (info.kind === 'video') writeVideoSampleEntry(w, info);
            else writeAudioSampleEntry(w, track.id, info);
          });
          // Samples live in the fragments: the sample tables stay empty (CMAF 7.5.2).
          w.fullBox('stts', 0, 0, () => w.u32(0));
          w.fullBox('stsc', 0, 0, () => w.u32(0));
          w.fullBox('stsz', 0, 0, () => w.u32(0).u32(0));
          w.fullBox('stco', 0, 0, () => w.u32(0));
        });
      });
    });
  });
}

export function buildInitSegment(tracks: CmafTrack[]): Uint8Array {
  validate(tracks);
  const w = new BoxWriter(2048);
  w.box('ftyp', () => {
    w.ascii('iso6').u32(0);
    for (const brand of ['iso6', 'cmfc', 'isom', 'mp41']) w.ascii(brand);
  });
  w.box('moov', () => {
    w.fullBox('mvhd', 0, 0, () => {
      w.u32(0).u32(0).u32(MOVIE_TIMESCALE).u32(0); // creation, modification, timescale, duration
      w.u32(0x00010000).u16(0x0100).zeros(10); // rate 1.0, volume 1.0, reserved
      writeMatrix(w);
      w.zeros(24); // pre_defined
      w.u32(Math.min(Math.max(...tracks.map((t) => t.id)) + 1, 0xffffffff)); // next_track_ID
    });
    for (const track of tracks) writeTrak(w, track);
    w.box('mvex', () => {
      for (const track of tracks) {
        // trex: track_ID, default_sample_description_index 1; every other default is set per sample.
        w.fullBox('trex', 0, 0, () => w.u32(track.id).u32(1).u32(0).u32(0).u32(0));
      }
    });
  });
  return w.finish();
}
