/**
 * The segment target and EXT-X-TARGETDURATION: segments are cut at a keyframe once the target is reached;
 * TARGETDURATION is fixed when the first segment completes, and bounds how long a segment may grow.
 */
import { TIMESCALE } from '../core/index.js';

export class SegmentTarget {
  readonly #segmentTargetMs: number;
  /** EXT-X-TARGETDURATION in whole seconds, fixed when the first segment completes. */
  #targetDuration: number | undefined;
  /** The longest segment so far, in ticks. */
  longest = 0;

  constructor(segmentTargetMs: number) {
    this.#segmentTargetMs = segmentTargetMs;
  }

  /**
   * EXT-X-TARGETDURATION: the segment target rounded up, or the first segment's rounded duration if the
   * source's keyframe interval is longer. Fixed once known, since it must not change during the playlist.
   */
  get seconds(): number {
    return this.#targetDuration ?? Math.ceil(this.#segmentTargetMs / 1000);
  }

  /** The segment target in ticks. */
  get ticks(): number {
    return (this.#segmentTargetMs * TIMESCALE) / 1000;
  }

  /**
   * Longest a segment may grow with frames `frameDur` apart: its EXTINF rounded to the nearest second must
   * not exceed TARGETDURATION (`targetDuration`, by default this one's once fixed).
   */
  maxTicks(frameDur: number, targetDuration = this.#targetDuration): number {
    if (targetDuration === undefined) return 3 * this.ticks;
    // Cut while the segment is still at least half a frame short of T + 0.5 s: timestamps rounded to whole
    // milliseconds can put a frame just under a one-frame margin and the next one exactly on T + 0.5 s.
    return (targetDuration + 0.5) * TIMESCALE - 1.5 * Math.max(frameDur, 1);
  }

  /** A segment of `ticks` completed (the first one fixes TARGETDURATION). */
  completed(ticks: number): void {
    this.longest = Math.max(this.longest, ticks);
    this.#targetDuration ??= Math.max(Math.ceil(this.#segmentTargetMs / 1000), Math.round(ticks / TIMESCALE));
  }
}
