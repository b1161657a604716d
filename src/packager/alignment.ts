/**
 * Alignment: every rendition of a live stream has the source's segments. The source rendition leads: it
 * decides where segments start and records that, with its clock, on the SegmentTimeline. A transcoded rung
 * follows: it cuts exactly where the source cut (its keyframes were forced at the source's), so segments
 * with the same media sequence number cover the same instants and carry the same PROGRAM-DATE-TIME in every
 * rung; where a rung has no media for a source segment (restarting, dropped), it lists an EXT-X-GAP.
 */
import { TIMESCALE } from '../core/index.js';
import { SegmentTimeline, type Boundary, type SessionClock } from './timeline.js';

/** How long a rung waits for the source to reach the instant of its frame before deciding on a cut. */
const SOURCE_WAIT_MS = 1000;

/** What a segmenter is in its stream's alignment: the source that leads, or a rung that follows it. */
export type AlignmentRole =
  | { readonly kind: 'leader'; readonly alignment: Alignment }
  | {
      readonly kind: 'follower';
      readonly alignment: Alignment;
      /** The media sequence number the rung's playlist is at: it cannot start before it. */
      readonly minMsn: () => number;
      /** The source's EXT-X-TARGETDURATION in seconds. */
      readonly targetDuration: () => number;
    };

/** A segment begins: what the segmenter tells its sink (see SegmenterSink.segmentStart). */
export interface SegmentStartInfo {
  readonly timelineDts: number;
  /** Presentation time of the segment's first frame on the timeline (its keyframe's pts). */
  readonly timelinePts: number;
  /** A follower's: the source's media sequence number of the segment that starts at the same instant. */
  readonly msn: number | undefined;
  readonly sessionStart: boolean;
  /** The source publish session the segment's clock runs on (leader: its own). */
  readonly sessionKey: string;
}

/** The part of a rung's live window the alignment moves: its media sequence number, with gaps. */
export interface FollowingWindow {
  readonly live: boolean;
  readonly ended: boolean;
  readonly hasSegments: boolean;
  alignTo(msn: number, fill: (msn: number) => { duration: number; programDateTime: number; discontinuity: boolean } | undefined): boolean;
}

/** Half a frame of `spacing` ticks: how far a follower's frame may be from the source's boundary and still match it. */
export function matchTolerance(spacing: number): number {
  return Math.max(spacing || TIMESCALE / 60, 90) / 2;
}

/** One stream run's alignment, shared by the source's and every rung's segmenter and window. */
export class Alignment {
  readonly timeline = new SegmentTimeline();
  readonly #rungs: FollowingWindow[] = [];
  readonly #counters: { gapSegments: number; unalignedSegments: number };

  constructor(counters: { gapSegments: number; unalignedSegments: number }) {
    this.#counters = counters;
  }

  // ---- the source (leader) ----

  /** The source's segmenter: how its session `sessionKey` maps to the timeline and the wall clock. */
  publishClock(sessionKey: string, clock: SessionClock): void {
    this.timeline.setSession(sessionKey, clock);
  }

  /** The source's segmenter has taken every frame up to timeline dts `dts`. */
  advance(dts: number): void {
    this.timeline.advance(dts);
  }

  /** The source's window: its segment `msn` starts; the one before is complete. */
  sourceSegmentStart(msn: number, info: SegmentStartInfo): void {
    this.timeline.addBoundary({
      msn,
      timelineDts: info.timelineDts,
      timelinePts: info.timelinePts,
      sessionId: info.sessionKey,
      sessionStart: info.sessionStart,
    });
    // The segment before this one is complete, and its duration known from this boundary.
    this.#fillPausedRungs(msn - 1);
  }

  // ---- a rung (follower) ----

  /** A rung's window, from now on kept in step with the source's. */
  follow(window: FollowingWindow): void {
    this.#rungs.push(window);
  }

  /**
   * A rung's window: its segment starts at the source's segment `msn` (undefined: a forced cut, no source
   * segment). Segments it has no media for are listed as gaps; counted when it cannot take that number.
   */
  rungSegmentStart(window: FollowingWindow, msn: number | undefined): void {
    if (msn !== undefined && !window.alignTo(msn, (m) => this.#gapFor(m))) this.#counters.unalignedSegments++;
  }

  /** A rung frame's position on the timeline, or undefined before its source session has started there. */
  rungTimelineDts(sessionKey: string, dts: number): number | undefined {
    const clock = this.timeline.session(sessionKey);
    return clock ? dts + clock.offset : undefined;
  }

  /**
   * The source decides where segments start: before a rung decides on its frame at timeline dts `at`, let
   * the source reach that instant (bounded). Undefined when there is nothing to wait for.
   */
  waitForSource(at: number | undefined): Promise<void> | undefined {
    return at !== undefined && at > this.timeline.horizon ? this.timeline.waitFor(at, SOURCE_WAIT_MS) : undefined;
  }

  /**
   * A rung's session starts where the source started a segment it has not yet passed to the playlist:
   * its clock offset, the keyframe's timeline pts and that boundary; undefined to wait for a later keyframe.
   */
  rungStart(
    sessionKey: string,
    pts: number,
    tolerance: number,
    minMsn: () => number,
  ): { offset: number; at: number; boundary: Boundary } | undefined {
    const clock = this.timeline.session(sessionKey);
    const at = clock ? pts + clock.offset : undefined;
    const b = at === undefined ? undefined : this.timeline.boundaryNear(at, tolerance);
    if (!clock || at === undefined || !b || b.msn < minMsn()) return undefined;
    return { offset: clock.offset, at, boundary: b };
  }

  /** The source's next boundary after `from` (timeline pts) if a rung frame presented at `pts` reached it. */
  rungCutAt(from: number, pts: number, tolerance: number): Boundary | undefined {
    const next = this.timeline.boundaryAfter(from, tolerance);
    return next !== undefined && pts >= next.timelinePts - tolerance ? next : undefined;
  }

  /**
   * PROGRAM-DATE-TIME (ms) of a rung's timeline instant: the source's PDT of the segment's start (`boundary`,
   * starting at the rung's `segStart`), and from there the rung's own elapsed time; else the source session's
   * clock. Read when needed, not when the segment began: the source refines its anchor until its first part.
   */
  rungPdt(boundary: Boundary | undefined, segStart: number, sessionKey: string, timelineDts: number): number | undefined {
    const start = boundary && this.timeline.pdt(boundary.sessionId, boundary.timelineDts);
    if (start !== undefined) return start + ((timelineDts - segStart) * 1000) / TIMESCALE;
    return this.timeline.pdt(sessionKey, timelineDts);
  }

  /** The source ended (or the run closes): nobody waits for it any more. */
  close(): void {
    this.timeline.close();
  }

  /** Duration and PDT of the source's segment `msn`, for a rung's EXT-X-GAP in its place. */
  #gapFor(msn: number): { duration: number; programDateTime: number; discontinuity: boolean } | undefined {
    const b = this.timeline.boundary(msn);
    const next = this.timeline.boundary(msn + 1);
    if (!b || !next) return undefined;
    const pdt = this.timeline.pdt(b.sessionId, b.timelineDts);
    if (pdt === undefined) return undefined;
    this.#counters.gapSegments++;
    // Where the source's publisher reconnected, the gap carries the source's discontinuity.
    return { duration: (next.timelineDts - b.timelineDts) / TIMESCALE, programDateTime: pdt, discontinuity: b.sessionStart };
  }

  /**
   * The source completed segment `msn`: a rung that is not running (FFmpeg restarting, or the rung
   * dropped for lack of CPU) lists it as a gap, so its playlist keeps pace and never 404s.
   */
  #fillPausedRungs(msn: number): void {
    for (const r of this.#rungs) {
      if (r.live || r.ended || !r.hasSegments) continue;
      r.alignTo(msn + 1, (m) => this.#gapFor(m));
    }
  }
}
