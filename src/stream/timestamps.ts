import { TIMESCALE, type MediaFrame, type TrackKind } from '../core/index.js';

/** A jump forward larger than this between two frames of one track is treated as a discontinuity. */
const MAX_JUMP_TICKS = 5 * TIMESCALE;
/** Assumed frame spacing after a repaired jump when none has been measured yet. */
const FALLBACK_STEP = { video: TIMESCALE / 30, audio: Math.round((1024 * TIMESCALE) / 48_000) } as const;

export type RepairKind = 'backwards' | 'jump';

interface TrackState {
  lastDts: number;
  step: number;
  offset: number;
}

/**
 * Keeps each track's decode timestamps strictly increasing without large jumps, so that no broken
 * timestamp from a source reaches a playlist. Backwards (or equal) DTS is clamped to just after the
 * previous one; a forward jump over MAX_JUMP is rebased to one frame after the previous one. PTS moves
 * with DTS so the composition offset is kept.
 */
export class TimestampRepair {
  #tracks = new Map<TrackKind, TrackState>();
  #onRepair: (kind: RepairKind, track: TrackKind, from: number, to: number) => void;

  constructor(onRepair: (kind: RepairKind, track: TrackKind, from: number, to: number) => void) {
    this.#onRepair = onRepair;
  }

  repair(frame: MediaFrame): MediaFrame {
    const st = this.#tracks.get(frame.track);
    if (!st) {
      this.#tracks.set(frame.track, { lastDts: frame.dts, step: 0, offset: 0 });
      return frame;
    }
    let dts = frame.dts + st.offset;
    const delta = dts - st.lastDts;
    if (delta <= 0 || delta > MAX_JUMP_TICKS) {
      const step = st.step > 0 ? st.step : FALLBACK_STEP[frame.track];
      const fixed = st.lastDts + (delta <= 0 && delta > -step ? 1 : step);
      this.#onRepair(delta <= 0 ? 'backwards' : 'jump', frame.track, dts, fixed);
      // A small backwards step (B-frame muxing bugs, rounding) is clamped once; a large step re-bases
      // every later frame of the track.
      if (delta <= -step || delta > MAX_JUMP_TICKS) st.offset += fixed - dts;
      dts = fixed;
    } else {
      // Smooth estimate of the frame spacing, used to place frames after a repaired jump.
      st.step = st.step === 0 ? delta : Math.round(st.step * 0.9 + delta * 0.1);
    }
    st.lastDts = dts;
    if (dts === frame.dts) return frame;
    const shift = dts - frame.dts;
    return { ...frame, dts, pts: Math.max(dts, frame.pts + shift) };
  }
}
