/**
 * A CMAF fragment: one moof (mfhd, then per track traf = tfhd + tfdt + trun) followed by ONE mdat that
 * holds every track's samples in traf order. Sizes are computed first and everything is written into a
 * single buffer of exactly that size.
 */
import { AppError } from '../../core/index.js';
import { BoxWriter } from './box.js';
import type { FragmentTrack } from './types.js';

/** tfhd: "default-base-is-moof": data offsets are relative to the first byte of the enclosing moof. */
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
/** trun: data-offset, sample-duration, sample-size, sample-flags, sample-composition-time-offset present. */
const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
const TRUN_SAMPLE_BYTES = 16;

/**
 * sample_flags (14496-12 8.8.3.1): is_leading 0, sample_depends_on (2 = depends on no other sample,
 * 1 = depends on others), sample_is_non_sync_sample bit 0x10000.
 */
const SYNC_SAMPLE_FLAGS = 0x02000000;
const NON_SYNC_SAMPLE_FLAGS = 0x01000000 | 0x00010000;

const MFHD_SIZE = 16;
const TFHD_SIZE = 16;
const TFDT_SIZE = 20;
const TRUN_HEADER_SIZE = 20;
const MDAT_HEADER_SIZE = 8;
const MAX_SAMPLES_PER_TRACK = 1_000_000;

function trafSize(track: FragmentTrack): number {
  return 8 + TFHD_SIZE + TFDT_SIZE + TRUN_HEADER_SIZE + TRUN_SAMPLE_BYTES * track.samples.length;
}

function isUint32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function validate(sequenceNumber: number, tracks: FragmentTrack[]): void {
  if (!isUint32(sequenceNumber)) throw new AppError('E_VALIDATION', `bad sequence number ${sequenceNumber}`);
  if (tracks.length === 0) throw new AppError('E_VALIDATION', 'fragment needs at least one track');
  for (const t of tracks) {
    if (!isUint32(t.id) || t.id === 0) throw new AppError('E_VALIDATION', `bad track id ${t.id}`);
    if (!Number.isSafeInteger(t.baseMediaDecodeTime) || t.baseMediaDecodeTime < 0) {
      throw new AppError('E_VALIDATION', `track ${t.id}: bad baseMediaDecodeTime ${t.baseMediaDecodeTime}`);
    }
    if (t.samples.length > MAX_SAMPLES_PER_TRACK) throw new AppError('E_LIMIT_EXCEEDED', `track ${t.id}: too many samples`);
    for (const s of t.samples) {
      if (!isUint32(s.duration)) throw new AppError('E_VALIDATION', `track ${t.id}: bad sample duration ${s.duration}`);
      if (!Number.isInteger(s.compositionOffset) || s.compositionOffset < -0x80000000 || s.compositionOffset > 0x7fffffff) {
        throw new AppError('E_VALIDATION', `track ${t.id}: bad composition offset ${s.compositionOffset}`);
      }
    }
  }
}

export function buildFragment(sequenceNumber: number, tracks: FragmentTrack[]): Uint8Array {
  validate(sequenceNumber, tracks);
  let moofSize = 8 + MFHD_SIZE;
  let payloadSize = 0;
  for (const t of tracks) {
    moofSize += trafSize(t);
    for (const s of t.samples) payloadSize += s.data.length;
  }
  const total = moofSize + MDAT_HEADER_SIZE + payloadSize;
  // trun data_offset is a signed 32-bit field.
  if (total > 0x7fffffff) throw new AppError('E_LIMIT_EXCEEDED', 'fragment larger than 2 GiB');

  const w = new BoxWriter(total);
  w.box('moof', () => {
    w.fullBox('mfhd', 0, 0, () => w.u32(sequenceNumber));
    // Each run's data starts after the moof, the mdat header and the runs of the trafs before it.
    let dataOffset = moofSize + MDAT_HEADER_SIZE;
    for (const t of tracks) {
      w.box('traf', () => {
        w.fullBox('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF, () => w.u32(t.id));
        w.fullBox('tfdt', 1, 0, () => w.u64(t.baseMediaDecodeTime));
        // Version 1: sample_composition_time_offset is signed.
        w.fullBox('trun', 1, TRUN_FLAGS, () => {
          w.u32(t.samples.length).i32(dataOffset);
          for (const s of t.samples) {
            w.u32(s.duration).u32(s.data.length);
            w.u32(s.keyframe ? SYNC_SAMPLE_FLAGS : NON_SYNC_SAMPLE_FLAGS).i32(s.compositionOffset);
            dataOffset += s.data.length;
          }
        });
      });
    }
  });
  w.box('mdat', () => {
    for (const t of tracks) for (const s of t.samples) w.bytes(s.data);
  });
  if (w.position !== total) throw new AppError('E_INTERNAL', `fragment size mismatch ${w.position} != ${total}`);
  return w.finish();
}
