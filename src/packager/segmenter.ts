/**
 * The segmenter: one rendition's frames cut into CMAF parts and segments on one continuous timeline, and
 * what it did told to its sink. The part in progress is part-cutter.ts (its length, PART-TARGET,
 * part-target.ts; its bytes, part-muxer.ts); a segment's length (TARGETDURATION), segment-target.ts; the
 * wall clock of the timeline, pdt-anchor.ts; where a transcoded rung cuts to match the source, alignment.ts.
 */
import { TIMESCALE, type MediaFrame, type TrackSet } from '../core/index.js';
import { matchTolerance, type AlignmentRole, type SegmentStartInfo } from './alignment.js';
import { PartCutter, type PartOut } from './part-cutter.js';
import { PdtAnchor } from './pdt-anchor.js';
import { SegmentTarget } from './segment-target.js';
import type { Boundary } from './timeline.js';

export type { SegmentStartInfo } from './alignment.js';
export type { PartOut } from './part-cutter.js';

export interface SegmenterOptions {
  /** Nominal part duration in ms (PART-TARGET before it is fitted to whole frames). */
  readonly partTargetMs: number;
  /** Nominal segment duration in ms; segments are cut at the first keyframe at or after it. */
  readonly segmentTargetMs: number;
}

/** Where the segmenter delivers its output and reports what happened; the live window implements it. */
export interface SegmenterSink {
  /** A new publish session starts: new init segment; `discontinuity` is false only for the first one. */
  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void;
  part(part: PartOut): void;
  /**
   * The segment holding the parts delivered since the last segmentEnd() is complete. `programDateTime` is
   * its start on the session's PDT anchor, the same as its first part's (the anchor is fixed before that part).
   */
  segmentEnd(programDateTime: number): void;
  /** A segment begins (called before its first part). */
  segmentStart?(info: SegmentStartInfo): void;
  /** A part came out longer than the advertised PART-TARGET (a source with irregular timing). */
  oversizedPart?(): void;
  /** A segment was cut without a keyframe: the source's keyframe interval outgrew TARGETDURATION (seconds). */
  forcedCut?(targetDuration: number): void;
  /** A follower cut at a source boundary that was not a keyframe in its own encoding. */
  unalignedCut?(): void;
}

/**
 * Cuts one rendition's frames into CMAF parts and segments. Parts hold a whole number of frames and
 * last about PART-TARGET; segments start on a video keyframe once the segment target is reached.
 * Timestamps run on one continuous timeline across publish sessions, so a reconnect continues the same
 * playlist.
 */
export class Segmenter {
  readonly #sink: SegmenterSink;
  readonly #role: AlignmentRole | undefined;
  readonly #part: PartCutter;
  readonly #segment: SegmentTarget;
  readonly #anchor = new PdtAnchor();
  #tracks: TrackSet = {};
  #sessions = 0;
  /** Offset from session dts to timeline dts; set at the session's first keyframe. */
  #offset: number | undefined;
  #segStart = 0;
  #frameDur = 0;
  /** Nominal spacing of the frames that drive cuts (metadata frame rate, or the audio frame size); 0 if unknown. */
  #nominalDur = 0;
  #lastVideoDts: number | undefined;
  #lastAudioDts: number | undefined;
  /** Frames dropped while waiting for a session's first keyframe. */
  droppedBeforeKeyframe = 0;
  /** Segments cut without a keyframe because the source's keyframe interval outgrew TARGETDURATION. */
  forcedCuts = 0;
  /** The current segment started on a keyframe. */
  #segIndependent = true;
  /** The source session whose clock this session runs on (leader: its own; follower: the one it was transcoded from). */
  #sessionKey = '';
  /**
   * A follower's current segment is the source's segment starting at this boundary: its PDT is the
   * source's. (Rungs have no B-frames, so a rung keyframe's dts is its pts: it matches the source
   * keyframe by presentation time, and its decode time may lie a reorder delay after the source's.)
   */
  #segBoundary: Boundary | undefined;
  /** Frames a follower cut at a source boundary that was not a keyframe in its own encoding. */
  unalignedCuts = 0;

  constructor(opts: SegmenterOptions, sink: SegmenterSink, role?: AlignmentRole) {
    this.#sink = sink;
    this.#role = role;
    const spacing = () => ({ nominal: this.#nominalDur, measured: this.#frameDur });
    this.#part = new PartCutter(
      opts,
      spacing,
      sink,
      () => this.#segStart,
      (t) => this.#pdt(t),
    );
    this.#segment = new SegmentTarget(opts.segmentTargetMs);
  }

  /** Parts that came out longer than the advertised PART-TARGET (a source with irregular timing). */
  get oversizedParts(): number {
    return this.#part.oversized;
  }

  /** The longest segment so far, in ticks. */
  get maxSegmentTicks(): number {
    return this.#segment.longest;
  }

  /** A follower frame's position on the package timeline, or undefined before its source session started there. */
  followerTimelineDts(frame: MediaFrame): number | undefined {
    if (this.#role?.kind !== 'follower') return undefined;
    return this.#role.alignment.rungTimelineDts(this.#sessionKey, frame.dts);
  }

  /** EXT-X-TARGETDURATION in seconds (segment-target.ts). */
  get targetDurationSeconds(): number {
    return this.#segment.seconds;
  }

  /** PART-TARGET in seconds: the nominal target fitted to whole frames of the first session (part-target.ts). */
  get partTargetSeconds(): number {
    return this.#part.target.seconds;
  }

  /** `sessionKey`: the source publish session (see AlignmentRole); unused without a role. */
  startSession(tracks: TrackSet, sessionKey = ''): void {
    this.endSession();
    this.#sessionKey = sessionKey;
    this.#tracks = tracks;
    this.#offset = undefined;
    this.#lastVideoDts = undefined;
    this.#lastAudioDts = undefined;
    const init = this.#part.muxer.startSession(tracks);
    this.#nominalDur = tracks.video
      ? tracks.video.frameRate > 0
        ? TIMESCALE / tracks.video.frameRate
        : 0
      : this.#part.muxer.audioFrameTicks;
    if (this.#nominalDur > 0 && this.#frameDur === 0) this.#frameDur = this.#nominalDur;
    this.#sink.init(init, tracks, this.#sessions > 0);
    this.#sessions++;
  }

  push(frame: MediaFrame): void {
    const drivesCuts = this.#tracks.video ? frame.track === 'video' : frame.track === 'audio';
    if (frame.track === 'video' && !this.#tracks.video) return;
    if (frame.track === 'audio' && !this.#tracks.audio) return;
    // A session starts at its first video keyframe (or first audio frame without video); what comes
    // before cannot be decoded on its own.
    const offset = this.#offset ?? (drivesCuts && (frame.track !== 'video' || frame.keyframe) ? this.#begin(frame) : undefined);
    // Interleaving skew: audio stamped just before the session's first keyframe has nothing to play with.
    if (offset === undefined || frame.dts + offset < this.#anchor.dtsAnchor) {
      this.droppedBeforeKeyframe++;
      return;
    }
    const dts = frame.dts + offset;
    if (this.#anchor.refine(dts, frame.wallClock)) this.#publishClock();
    if (this.#role?.kind === 'leader' && drivesCuts) this.#role.alignment.advance(dts);
    if (frame.track === 'video') {
      if (this.#lastVideoDts !== undefined) this.#updateFrameDur(dts - this.#lastVideoDts);
      this.#lastVideoDts = dts;
    } else {
      if (this.#lastAudioDts !== undefined && !this.#tracks.video) this.#updateFrameDur(dts - this.#lastAudioDts);
      this.#lastAudioDts = dts;
    }
    if (drivesCuts && this.#part.hasFrames) this.#cut(frame, dts, frame.pts + offset);
    this.#part.muxer.add({ ...frame, dts, pts: frame.pts + offset });
    if (drivesCuts) this.#part.hasFrames = true;
  }

  /** The session's first frame that can start it: its timeline offset, or undefined to wait (a follower). */
  #begin(frame: MediaFrame): number | undefined {
    const role = this.#role;
    if (role?.kind === 'follower') {
      // A rung starts where the source started a segment it has not yet passed to the playlist.
      const start = role.alignment.rungStart(this.#sessionKey, frame.pts, this.#tolerance(), role.minMsn);
      if (!start) return undefined;
      this.#offset = start.offset;
      this.#anchor.follow(frame.dts + start.offset);
      this.#part.start = this.#segStart = frame.dts + start.offset;
      this.#segIndependent = true;
      this.#segBoundary = start.boundary;
      this.#segmentStart(start.at, start.boundary.msn, true);
      return start.offset;
    }
    this.#offset = this.#part.timelineEnd - frame.dts;
    this.#anchor.start(frame.dts + this.#offset, frame.wallClock);
    this.#part.start = this.#segStart = frame.dts + this.#offset;
    this.#segIndependent = true;
    this.#publishClock();
    this.#segmentStart(frame.pts + this.#offset, undefined, true);
    return this.#offset;
  }

  /**
   * At a cut-driving frame (timeline `dts`, `pts`): end the part, and the segment, if it is time. The source
   * cuts at a keyframe once the segment target is reached; a follower where the source cut (alignment.ts).
   * Either cuts anyway, bounded, when the segment would outgrow TARGETDURATION.
   */
  #cut(frame: MediaFrame, dts: number, pts: number): void {
    const role = this.#role;
    const inSegment = dts - this.#segStart;
    const independent = frame.keyframe || frame.track === 'audio';
    let segment: boolean;
    let forced: boolean;
    let next: Boundary | undefined;
    if (role?.kind === 'follower') {
      next = role.alignment.rungCutAt(this.#segBoundary?.timelinePts ?? this.#segStart, pts, this.#tolerance());
      // The source's boundaries may stop coming (source rendition dropping frames): do not grow without bound.
      // Against the source's TARGETDURATION (the one the playlist advertises), not one of its own.
      forced = next === undefined && inSegment >= this.#segment.maxTicks(this.#frameDur, role.targetDuration());
      segment = next !== undefined || forced;
    } else {
      // After a forced cut the segment did not start on a keyframe: end it at the very next keyframe so
      // segments are independent again as soon as the source allows.
      const keyCut = independent && (inSegment >= this.#segment.ticks - this.#frameDur / 2 || !this.#segIndependent);
      // No keyframe in time (infinite GOP, intra refresh, a keyframe interval longer than the target):
      // cut anyway rather than let one segment grow without bound. The next segment then does not start
      // on a keyframe; its first part is not INDEPENDENT.
      forced = !keyCut && inSegment >= this.#segment.maxTicks(this.#frameDur);
      segment = keyCut || forced;
    }
    if (!segment && !this.#part.full(dts, this.#frameDur)) return;
    // A rung's segment ends its audio where the source's segment ended (the source keyframe's dts, which
    // this keyframe matches within the tolerance, a little before or after it): the same audio frames in the
    // same segment in every rendition. Audio of the source's segment still to come goes to the next one.
    const audioEnd = next ? Math.min(Math.max(next.timelineDts, this.#part.start), dts + this.#tolerance()) : dts;
    // Fixed before the session's first part is published: a PDT a player has seen never moves.
    if (role?.kind !== 'follower') this.#anchor.fix();
    this.#part.emit(dts, false, audioEnd);
    if (segment) {
      if (forced) this.forcedCuts++;
      if (next && !independent) {
        this.unalignedCuts++;
        this.#sink.unalignedCut?.();
      }
      this.#closeSegment(dts);
      // Told once the segment is closed: its TARGETDURATION is fixed by then.
      if (forced) this.#sink.forcedCut?.(this.targetDurationSeconds);
      this.#segStart = dts;
      this.#segIndependent = role?.kind === 'follower' ? independent : !forced;
      if (role?.kind === 'follower') this.#segBoundary = next;
      this.#segmentStart(pts, next?.msn, false);
    }
    this.#part.start = dts;
  }

  #segmentStart(timelinePts: number, msn: number | undefined, sessionStart: boolean): void {
    this.#sink.segmentStart?.({ timelineDts: this.#segStart, timelinePts, msn, sessionStart, sessionKey: this.#sessionKey });
  }

  /** Half a frame: how far a follower's frame may be from the source's boundary and still match it. */
  #tolerance(): number {
    return matchTolerance(this.#frameDur || this.#nominalDur);
  }

  /** The leader tells the alignment how its current session maps to the wall clock. */
  #publishClock(): void {
    if (this.#role?.kind !== 'leader' || this.#offset === undefined) return;
    this.#role.alignment.publishClock(this.#sessionKey, {
      offset: this.#offset,
      wallAnchor: this.#anchor.wallAnchor,
      dtsAnchor: this.#anchor.dtsAnchor,
    });
  }

  /** Flush what is buffered as the session's last part and close its segment. Idempotent. */
  endSession(): void {
    if (this.#part.hasFrames) {
      // Whole ticks: the muxer takes integer sample durations, and the next session continues from this end.
      const step = Math.round(this.#frameDur) || TIMESCALE / 30;
      this.#closeSegment(this.#part.flush(this.#tracks.video ? this.#lastVideoDts : this.#lastAudioDts, step));
    }
    this.#part.muxer.clear();
    this.#part.hasFrames = false;
    this.#offset = undefined;
    this.#segBoundary = undefined;
  }

  /** Wall clock (ms) of a timeline instant of the current session. */
  #pdt(timelineDts: number): number {
    if (this.#role?.kind === 'follower') {
      const pdt = this.#role.alignment.rungPdt(this.#segBoundary, this.#segStart, this.#sessionKey, timelineDts);
      if (pdt !== undefined) return pdt;
    }
    return this.#anchor.pdt(timelineDts);
  }

  #closeSegment(end: number): void {
    this.#segment.completed(end - this.#segStart);
    this.#sink.segmentEnd(this.#pdt(this.#segStart));
  }

  #updateFrameDur(delta: number): void {
    if (delta <= 0 || delta > TIMESCALE) return;
    this.#frameDur = this.#frameDur === 0 ? delta : this.#frameDur * 0.9 + delta * 0.1;
  }
}
