/** What the CMAF muxer takes: tracks and the samples of a fragment. */
import type { TrackInfo } from '../../core/index.js';

/** One track of an init segment. timescale: 90000 for video, the sample rate for audio. */
export interface CmafTrack {
  id: number;
  info: TrackInfo;
  timescale: number;
}

/** One sample (access unit / audio frame); duration and compositionOffset are in the track's timescale. */
export interface CmafSample {
  duration: number;
  data: Uint8Array;
  keyframe: boolean;
  /** pts - dts (may be negative: trun version 1 carries it signed). */
  compositionOffset: number;
}

/** One track's run within a fragment; baseMediaDecodeTime is the dts of its first sample. */
export interface FragmentTrack {
  id: number;
  baseMediaDecodeTime: number;
  samples: CmafSample[];
}
