import { TIMESCALE, type MediaFrame, type TrackSet } from '../core/index.js';
import { buildFragment, buildInitSegment, type CmafSample, type CmafTrack, type FragmentTrack } from './cmaf/index.js';
import type { SegmentTimeline } from './timeline.js';

export interface SegmenterOptions {
  /** Nominal part duration in ms (PART-TARGET before it is fitted to whole frames). */
  readonly partTargetMs: number;
  /** Nominal segment duration in ms; segments are cut at the first keyframe at or after it. */
  readonly segmentTargetMs: number;
}

export interface PartOut {
  readonly bytes: Uint8Array;
  /** Seconds. */
  readonly duration: number;
  readonly independent: boolean;
  /** Wall clock of the part's first sample (ms since epoch), from the ingest clock. */
  readonly programDateTime: number;
  /** Decode time of the part's first video (or audio) sample on the rendition's continuous timeline. */
  readonly timelineDts: number;
}

/** Where the segmenter delivers its output; the live window implements it. */
export interface SegmenterSink {
  /** A new publish session starts: new init segment; `discontinuity` is false only for the first one. */
  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void;
  part(part: PartOut): void;
  /**
   * The segment holding the parts delivered since the last segmentEnd() is complete. `programDateTime` is
   * its start on the final PDT anchor (the first segment of a session may have been announced earlier).
   */
  segmentEnd(programDateTime: number): void;
  /**
   * A segment begins at timeline dts `timelineDts` (called before its first part). `msn` is set for a
   * follower: the source's media sequence number of the segment that starts at the same instant.
   */
  segmentStart?(info: SegmentStartInfo): void;
}

export interface SegmentStartInfo {
  readonly timelineDts: number;
  /** Presentation time of the segment's first frame on the timeline (its keyframe's pts). */
  readonly timelinePts: number;
  readonly msn: number | undefined;
  readonly sessionStart: boolean;
}

/**
 * How a segmenter relates to the other renditions of its stream. The source rendition leads: it decides
 * where segments start and records that on the timeline. A transcoded rung follows: it cuts exactly where
 * the source cut (its keyframes were forced at the source's), so segments with the same media sequence
 * number cover the same instants and carry the same PROGRAM-DATE-TIME in every rung.
 */
export type SegmenterRole =
  | { readonly kind: 'leader'; readonly timeline: SegmentTimeline }
  | {
      readonly kind: 'follower';
      readonly timeline: SegmentTimeline;
      readonly minMsn: () => number;
      /** The source's EXT-X-TARGETDURATION in seconds. */
      readonly targetDuration: () => number;
    };

const VIDEO_ID = 1;
const AUDIO_ID = 2;

/** Frame rates encoders use. */
const COMMON_FPS = [24_000 / 1001, 24, 25, 30_000 / 1001, 30, 48, 50, 60_000 / 1001, 60];

/**
 * The frame spacing to fit PART-TARGET to when no frame rate was announced. One spacing measured from RTMP's
 * whole milliseconds is ambiguous (33 ms at 29.97 and at 30 fps): unless it is a common frame duration
 * exactly, take the longest of it and the common ones within 3%, so parts of either rate fit.
 */
function spacingForFit(measured: number): number {
  if (COMMON_FPS.some((fps) => Math.abs(TIMESCALE / fps - measured) < 1)) return measured;
  let fd = measured;
  for (const fps of COMMON_FPS) if (Math.abs(TIMESCALE / fps - measured) <= measured * 0.03) fd = Math.max(fd, TIMESCALE / fps);
  return fd;
}

/**
 * "The duration of each Partial Segment MUST be at least 85% of the Part Target Duration, with the exception
 * of [...] the final Partial Segment of any Parent Segment" (RFC 8216bis 4.4.4.9; ours exempts only the last).
 */
const PART_FLOOR = 0.85;

/** Ticks rounded up to the millisecond: 100.1 ms is 101 ms (only float noise is forgiven, or parts would overshoot). */
function wholeMs(ticks: number): number {
  const ms = TIMESCALE / 1000;
  return Math.ceil(ticks / ms - 1e-6) * ms;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Whether decode times are those of a regular grid (frames may be missing) rounded to the precision they
 * were stamped with (RTMP: whole milliseconds; else a tick): then they fit in a band one quantum wide
 * around some line. The narrowest band has the slope of a line through two of the points. A capture clock
 * (a browser over WebRTC) is off its grid by more.
 */
function onGrid(times: readonly number[]): boolean {
  if (times.length < 3) return true;
  const deltas = times.slice(1).map((t, i) => t - times[i]);
  // Each frame's slot on the grid, counted spacing by spacing (a missing frame leaves one out).
  const step = median(deltas);
  const slots = [0];
  for (const d of deltas) slots.push(slots[slots.length - 1] + Math.max(1, Math.round(d / step)));
  const band = (deltas.every((d) => d % (TIMESCALE / 1000) === 0) ? TIMESCALE / 1000 : 1) + 1;
  for (let i = 0; i < times.length; i++) {
    for (let j = i + 1; j < times.length; j++) {
      if (slots[j] === slots[i]) continue;
      const slope = (times[j] - times[i]) / (slots[j] - slots[i]);
      const off = times.map((t, k) => t - slots[k] * slope);
      if (Math.max(...off) - Math.min(...off) <= band) return true;
    }
  }
  return false;
}

interface Pending {
  frame: MediaFrame;
}

/**
 * Cuts one rendition's frames into CMAF parts and segments. Parts hold a whole number of frames and
 * last about PART-TARGET; segments start on a video keyframe once the segment target is reached.
 * Timestamps run on one continuous timeline across publish sessions, so a reconnect continues the same
 * playlist.
 */
export class Segmenter {
  readonly #opts: SegmenterOptions;
  readonly #sink: SegmenterSink;
  #tracks: TrackSet = {};
  #sessions = 0;
  #fragmentSeq = 0;
  /** Offset from session dts to timeline dts; set at the session's first keyframe. */
  #offset: number | undefined;
  #timelineEnd = 0;
  /** Wall clock of timeline instant #dtsAnchor: PROGRAM-DATE-TIME = #wallAnchor + (dts - #dtsAnchor). */
  #wallAnchor = 0;
  #dtsAnchor = 0;
  /** The anchor is refined until the session's first segment is complete, then fixed. */
  #anchorOpen = false;
  #video: Pending[] = [];
  #audio: Pending[] = [];
  #partStart = 0;
  #segStart = 0;
  #partHasFrames = false;
  #frameDur = 0;
  #audioDur = 0;
  /** Nominal spacing of the frames that drive cuts (metadata frame rate, or the audio frame size); 0 if unknown. */
  #nominalDur = 0;
  /** End of the last audio run, in the audio track's timescale; the next run continues from it. */
  #audioEnd: number | undefined;
  #lastVideoDts: number | undefined;
  #lastAudioDts: number | undefined;
  /** Advertised PART-TARGET in ticks: provisional from the first part on, fixed by #fixPartTarget. */
  #partTarget: number | undefined;
  /**
   * While PART-TARGET is provisional: the cut-driving frames muxed so far, the last part's end, the longest
   * part, the shortest one that did not end its segment (of those cut by choice), and the last part.
   */
  #fit: { times: number[]; end: number; longest: number; shortest: number; last?: { ticks: number; segStart: number } } | undefined;
  /** Frames dropped while waiting for a session's first keyframe. */
  droppedBeforeKeyframe = 0;
  /** Parts that came out longer than the advertised PART-TARGET (a source with irregular timing). */
  oversizedParts = 0;
  maxSegmentTicks = 0;
  /** Segments cut without a keyframe because the source's keyframe interval outgrew TARGETDURATION. */
  forcedCuts = 0;
  /** The current segment started on a keyframe. */
  #segIndependent = true;
  /** EXT-X-TARGETDURATION in whole seconds, fixed when the first segment completes. */
  #targetDuration: number | undefined;

  readonly #role: SegmenterRole | undefined;
  /** The source session whose clock this session runs on (leader: its own; follower: the one it was transcoded from). */
  #sessionKey = '';
  /**
   * A follower's current segment is the source's segment starting at this boundary: its PDT is the
   * source's. (Rungs have no B-frames, so a rung keyframe's dts is its pts: it matches the source
   * keyframe by presentation time, and its decode time may lie a reorder delay after the source's.)
   */
  #segBoundary: { msn: number; pts: number; sessionId: string; dts: number } | undefined;
  /** Frames a follower cut at a source boundary that was not a keyframe in its own encoding. */
  unalignedCuts = 0;

  constructor(opts: SegmenterOptions, sink: SegmenterSink, role?: SegmenterRole) {
    this.#opts = opts;
    this.#sink = sink;
    this.#role = role;
  }

  /** Half a frame: how far a follower's frame may be from the source's boundary and still match it. */
  #tolerance(): number {
    return Math.max(this.#frameDur || this.#nominalDur || TIMESCALE / 60, 90) / 2;
  }

  /**
   * A follower frame's position on the package timeline, or undefined before the source session it
   * was transcoded from has started there.
   */
  followerTimelineDts(frame: MediaFrame): number | undefined {
    if (this.#role?.kind !== 'follower') return undefined;
    const clock = this.#role.timeline.session(this.#sessionKey);
    return clock ? frame.dts + clock.offset : undefined;
  }

  /**
   * EXT-X-TARGETDURATION: the segment target rounded up, or the first segment's rounded duration if the
   * source's keyframe interval is longer. Fixed once known, since it must not change during the playlist.
   */
  get targetDurationSeconds(): number {
    return this.#targetDuration ?? Math.ceil(this.#opts.segmentTargetMs / 1000);
  }

  /** PART-TARGET in seconds: the nominal target fitted to whole frames of the first session (#fitPartTarget). */
  get partTargetSeconds(): number {
    // What a playlist shows must never change after: the first read fixes it.
    this.#fixPartTarget();
    return (this.#partTarget ?? (this.#opts.partTargetMs * TIMESCALE) / 1000) / TIMESCALE;
  }

  /** `sessionKey`: the source publish session (see SegmenterRole); unused without a role. */
  startSession(tracks: TrackSet, sessionKey = ''): void {
    this.endSession();
    this.#sessionKey = sessionKey;
    this.#tracks = tracks;
    this.#offset = undefined;
    this.#lastVideoDts = undefined;
    this.#lastAudioDts = undefined;
    this.#audioDur = tracks.audio ? this.#nominalAudioTicks() : 0;
    this.#audioEnd = undefined;
    this.#nominalDur = tracks.video ? (tracks.video.frameRate > 0 ? TIMESCALE / tracks.video.frameRate : 0) : this.#audioDur;
    if (this.#nominalDur > 0 && this.#frameDur === 0) this.#frameDur = this.#nominalDur;
    const init = buildInitSegment(this.#cmafTracks());
    this.#sink.init(init, tracks, this.#sessions > 0);
    this.#sessions++;
  }

  push(frame: MediaFrame): void {
    const drivesCuts = this.#tracks.video ? frame.track === 'video' : frame.track === 'audio';
    if (frame.track === 'video' && !this.#tracks.video) return;
    if (frame.track === 'audio' && !this.#tracks.audio) return;
    const role = this.#role;
    if (this.#offset === undefined) {
      // A session starts at its first video keyframe (or first audio frame without video); what comes
      // before cannot be decoded on its own.
      if (!drivesCuts || (frame.track === 'video' && !frame.keyframe)) {
        this.droppedBeforeKeyframe++;
        return;
      }
      if (role?.kind === 'follower') {
        // A rung starts where the source started a segment it has not yet passed to the playlist.
        const clock = role.timeline.session(this.#sessionKey);
        const at = clock ? frame.pts + clock.offset : undefined;
        const b = at === undefined ? undefined : role.timeline.boundaryNear(at, this.#tolerance());
        if (!clock || at === undefined || !b || b.msn < role.minMsn()) {
          this.droppedBeforeKeyframe++;
          return;
        }
        this.#offset = clock.offset;
        this.#dtsAnchor = frame.dts + clock.offset;
        this.#partStart = this.#segStart = this.#dtsAnchor;
        this.#segIndependent = true;
        this.#segBoundary = { msn: b.msn, pts: b.timelinePts, sessionId: b.sessionId, dts: b.timelineDts };
        this.#sink.segmentStart?.({ timelineDts: this.#segStart, timelinePts: at, msn: b.msn, sessionStart: true });
      } else {
        this.#offset = this.#timelineEnd - frame.dts;
        this.#wallAnchor = frame.wallClock;
        this.#dtsAnchor = frame.dts + this.#offset;
        this.#anchorOpen = true;
        this.#partStart = this.#segStart = frame.dts + this.#offset;
        this.#segIndependent = true;
        this.#publishClock();
        this.#sink.segmentStart?.({ timelineDts: this.#segStart, timelinePts: frame.pts + this.#offset, msn: undefined, sessionStart: true });
      }
    }
    const dts = frame.dts + this.#offset;
    if (dts < this.#dtsAnchor) {
      // Interleaving skew: audio stamped just before the session's first keyframe has nothing to play with.
      this.droppedBeforeKeyframe++;
      return;
    }
    if (this.#anchorOpen) {
      // A frame's arrival is its capture time plus a delay that varies (encoder, network, a busy event
      // loop when the session starts). The smallest arrival-minus-media-time seen is the best estimate of
      // the capture clock, so one late first keyframe does not make every PDT of the session late.
      const candidate = frame.wallClock - ((dts - this.#dtsAnchor) * 1000) / TIMESCALE;
      if (candidate < this.#wallAnchor) {
        this.#wallAnchor = candidate;
        this.#publishClock();
      }
    }
    if (role?.kind === 'leader' && drivesCuts) role.timeline.advance(dts);
    if (frame.track === 'video') {
      if (this.#lastVideoDts !== undefined) this.#updateFrameDur(dts - this.#lastVideoDts);
      this.#lastVideoDts = dts;
    } else {
      if (this.#lastAudioDts !== undefined && !this.#tracks.video) this.#updateFrameDur(dts - this.#lastAudioDts);
      this.#lastAudioDts = dts;
    }
    if (drivesCuts && this.#partHasFrames && role?.kind === 'follower') {
      this.#followerCut(frame, dts, role);
    } else if (drivesCuts && this.#partHasFrames) {
      const inSegment = dts - this.#segStart;
      // After a forced cut the segment did not start on a keyframe: end it at the very next keyframe so
      // segments are independent again as soon as the source allows.
      const keyCut =
        (frame.keyframe || frame.track === 'audio') && (inSegment >= this.#segmentTicks() - this.#frameDur / 2 || !this.#segIndependent);
      // No keyframe in time (infinite GOP, intra refresh, a keyframe interval longer than the target):
      // cut anyway rather than let one segment grow without bound. The next segment then does not start
      // on a keyframe; its first part is not INDEPENDENT.
      const forcedCut = !keyCut && inSegment >= this.#maxSegmentTicks();
      if (keyCut || forcedCut || this.#partFull(dts)) {
        this.#emitPart(dts);
        if (keyCut || forcedCut) {
          if (forcedCut) this.forcedCuts++;
          this.#closeSegment(dts);
          this.#segStart = dts;
          this.#segIndependent = keyCut;
          this.#anchorOpen = false;
          this.#sink.segmentStart?.({ timelineDts: dts, timelinePts: frame.pts + this.#offset, msn: undefined, sessionStart: false });
        }
        this.#partStart = dts;
      }
    }
    const shifted: MediaFrame = { ...frame, dts, pts: frame.pts + this.#offset };
    (frame.track === 'video' ? this.#video : this.#audio).push({ frame: shifted });
    if (drivesCuts) this.#partHasFrames = true;
  }

  /** A follower cuts where the source started its next segment (or, bounded, where it must). */
  #followerCut(frame: MediaFrame, dts: number, role: Extract<SegmenterRole, { kind: 'follower' }>): void {
    const timeline = role.timeline;
    const tol = this.#tolerance();
    const pts = frame.pts + this.#offset!;
    const next = timeline.boundaryAfter(this.#segBoundary?.pts ?? this.#segStart, tol);
    const atBoundary = next !== undefined && pts >= next.timelinePts - tol;
    // The source's boundaries may stop coming (source rendition dropping frames): do not grow without bound.
    // Against the source's TARGETDURATION (the one the playlist advertises), not one of its own.
    const forced = !atBoundary && dts - this.#segStart >= this.#maxSegmentTicks(role.targetDuration());
    if (atBoundary || forced || this.#partFull(dts)) {
      this.#emitPart(dts);
      if (atBoundary || forced) {
        if (forced) this.forcedCuts++;
        const independent = frame.keyframe || frame.track === 'audio';
        if (atBoundary && !independent) this.unalignedCuts++;
        this.#closeSegment(dts);
        this.#segStart = dts;
        this.#segIndependent = independent;
        this.#segBoundary = atBoundary ? { msn: next.msn, pts: next.timelinePts, sessionId: next.sessionId, dts: next.timelineDts } : undefined;
        this.#sink.segmentStart?.({ timelineDts: dts, timelinePts: pts, msn: atBoundary ? next.msn : undefined, sessionStart: false });
      }
      this.#partStart = dts;
    }
  }

  /** The leader tells the timeline how its current session maps to the wall clock. */
  #publishClock(): void {
    if (this.#role?.kind !== 'leader' || this.#offset === undefined) return;
    this.#role.timeline.setSession(this.#sessionKey, { offset: this.#offset, wallAnchor: this.#wallAnchor, dtsAnchor: this.#dtsAnchor });
  }

  /** Flush what is buffered as the session's last part and close its segment. Idempotent. */
  endSession(): void {
    if (this.#partHasFrames) {
      // Whole ticks: the muxer takes integer sample durations, and the next session continues from this end.
      const step = Math.round(this.#frameDur) || TIMESCALE / 30;
      const lastDriver = this.#tracks.video ? this.#lastVideoDts : this.#lastAudioDts;
      let end = (lastDriver ?? this.#partStart) + step;
      // The last frame's duration is a guess (RTMP's whole milliseconds put that frame up to half a ms
      // late): it must not push the part past the advertised PART-TARGET. If that frame itself starts past
      // it, the part is closed before that frame first.
      if (lastDriver !== undefined) {
        this.#partTarget ??= this.#fitPartTarget(undefined);
        this.#closeLate(lastDriver + 1);
        end = Math.min(end, Math.max(lastDriver + 1, this.#partStart + this.#partTarget));
      }
      this.#emitPart(end, true);
      this.#fixPartTarget();
      this.#closeSegment(end);
    }
    this.#video = [];
    this.#audio = [];
    this.#partHasFrames = false;
    this.#offset = undefined;
    this.#segBoundary = undefined;
  }

  /** Wall clock (ms) of a timeline instant of the current session. */
  #pdt(timelineDts: number): number {
    if (this.#role?.kind === 'follower') {
      // The source's PDT of the segment's start, and from there this rung's own elapsed time.
      // Read when needed, not when the segment began: the source refines its anchor during its first segment.
      const b = this.#segBoundary;
      const start = b && this.#role.timeline.pdt(b.sessionId, b.dts);
      if (start !== undefined) return start + ((timelineDts - this.#segStart) * 1000) / TIMESCALE;
      const pdt = this.#role.timeline.pdt(this.#sessionKey, timelineDts);
      if (pdt !== undefined) return pdt;
    }
    return this.#wallAnchor + ((timelineDts - this.#dtsAnchor) * 1000) / TIMESCALE;
  }

  #segmentTicks(): number {
    return (this.#opts.segmentTargetMs * TIMESCALE) / 1000;
  }

  /** Longest a segment may grow: its EXTINF rounded to the nearest second must not exceed TARGETDURATION. */
  #maxSegmentTicks(targetDuration = this.#targetDuration): number {
    if (targetDuration === undefined) return 3 * this.#segmentTicks();
    // Cut while the segment is still at least half a frame short of T + 0.5 s: timestamps rounded to whole
    // milliseconds can put a frame just under a one-frame margin and the next one exactly on T + 0.5 s.
    return (targetDuration + 0.5) * TIMESCALE - 1.5 * Math.max(this.#frameDur, 1);
  }

  #closeSegment(end: number): void {
    const ticks = end - this.#segStart;
    this.maxSegmentTicks = Math.max(this.maxSegmentTicks, ticks);
    this.#targetDuration ??= Math.max(Math.ceil(this.#opts.segmentTargetMs / 1000), Math.round(ticks / TIMESCALE));
    this.#sink.segmentEnd(this.#pdt(this.#segStart));
  }

  #updateFrameDur(delta: number): void {
    if (delta <= 0 || delta > TIMESCALE) return;
    this.#frameDur = this.#frameDur === 0 ? delta : this.#frameDur * 0.9 + delta * 0.1;
  }

  /** Frames per part: the whole number of frames closest to the nominal part target. */
  #framesPerPart(): number {
    const nominal = (this.#opts.partTargetMs * TIMESCALE) / 1000;
    let n = Math.max(1, Math.round(nominal / this.#frameDur));
    // Later sessions may run at another frame rate: never exceed the PART-TARGET already advertised.
    if (this.#partTarget !== undefined) while (n > 1 && n * this.#frameDur > this.#partTarget + 45) n--;
    return n;
  }

  /**
   * Whether to end the part at the cut-driving frame at `dts`. "The duration of a Partial Segment MUST be
   * less than or equal to the Part Target Duration" (RFC 8216bis 4.4.4.9), and one shorter than 85% of it
   * may end only a segment. A frame's duration is known only when the next frame comes: if the last frame
   * lasted so long that the part would end past PART-TARGET here (a capture clock's jitter, a dropped
   * frame), the part is closed before that frame instead (#closeLate), one frame later than on time.
   * Otherwise the part ends after its fitted number of frames, or when the next frame would likely not fit;
   * never below 85% by choice: a frame that comes early enough may still land in that window.
   */
  #partFull(dts: number): boolean {
    const fd = this.#frameDur;
    if (this.#partTarget === undefined) {
      // The first part takes the whole number of frames closest to the nominal target; PART-TARGET is
      // fitted to those frames when it is cut.
      const elapsed = dts - this.#partStart;
      if (fd === 0 ? elapsed < (this.#opts.partTargetMs * TIMESCALE) / 1000 : elapsed < (this.#framesPerPart() - 0.5) * fd) return false;
      this.#partTarget = this.#fitPartTarget(dts);
    }
    this.#closeLate(dts);
    const elapsed = dts - this.#partStart;
    if (elapsed < PART_FLOOR * this.#partTarget) return false;
    if (fd === 0) return true;
    return elapsed >= (this.#framesPerPart() - 0.5) * fd || elapsed + fd / 2 > this.#partTarget;
  }

  /**
   * PART-TARGET from the first part on, provisional: fitted to the first part's cut-driving frames (ending
   * at `end`; undefined at a session's end) as if they came from a capture clock (#fit below). A few
   * frames cannot tell such a clock from a clean one; #fixPartTarget decides on more.
   */
  #fitPartTarget(end: number | undefined): number {
    const times = (this.#tracks.video ? this.#video : this.#audio).map((p) => p.frame.dts);
    if (end !== undefined) times.push(end);
    this.#fit = { times: [], end: 0, longest: 0, shortest: Infinity };
    return this.#fitTo(times, false) ?? wholeMs((this.#opts.partTargetMs * TIMESCALE) / 1000);
  }

  /**
   * PART-TARGET must not change during the playlist: fixed when a playlist may first show it (the getter),
   * at the latest once the first session's parts span a second (half a segment if that is shorter) or the
   * session ends, before its first segment completes; refitted then to every frame so far, if every part
   * cut so far is within the new value as it was within the provisional one.
   */
  #fixPartTarget(): void {
    const fit = this.#fit;
    if (!fit) return;
    this.#fit = undefined;
    const times = fit.times.length > 0 && fit.end > fit.times[fit.times.length - 1] ? [...fit.times, fit.end] : fit.times;
    const target = this.#fitTo(times, onGrid(times));
    const shortest = Math.min(fit.shortest, fit.last?.ticks ?? Infinity);
    if (target !== undefined && fit.longest <= target && shortest >= PART_FLOOR * target) this.#partTarget = target;
  }

  /**
   * PART-TARGET for cut-driving frames at `times`: the nominal target rounded to whole frames, and up to the
   * millisecond. Frames on a regular grid (RTMP, an encoder's clock) get that exact fit (29.97 fps: 6
   * frames = 200.2 ms, 0.201), so parts of that many frames are at most PART-TARGET and shorter ones at
   * least 85%. Others (a browser's capture clock over WebRTC) get headroom for their jitter: those frames
   * sit in the middle of the window [85%, 100%] of PART-TARGET. Undefined without a spacing to fit to.
   */
  #fitTo(times: readonly number[], regular: boolean): number | undefined {
    const deltas = times.slice(1).map((t, i) => t - times[i]);
    // The nominal frame spacing when known: a measured one is skewed by RTMP's whole milliseconds (29.97 fps:
    // 33 ms, which would advertise 0.200 for 0.2002 s parts). Else on a grid the median spacing, which a
    // dropped frame does not move; off it the mean, which jitter moves least.
    let fd = this.#nominalDur;
    if (!fd && deltas.length > 0) fd = regular ? spacingForFit(median(deltas)) : (times[times.length - 1] - times[0]) / deltas.length;
    fd ||= this.#frameDur;
    if (!(fd > 0)) return undefined;
    const fitted = this.#wholeFrames(fd) * fd;
    return wholeMs(regular ? fitted : (fitted * 2) / (1 + PART_FLOOR));
  }

  /** The whole number of frames `fd` apart closest to the nominal part target. */
  #wholeFrames(fd: number): number {
    return Math.max(1, Math.round((this.#opts.partTargetMs * TIMESCALE) / 1000 / fd));
  }

  /**
   * While the part, ending at `end`, would be longer than PART-TARGET, close it at the latest buffered
   * cut-driving frame that keeps it within; that frame starts the part that goes on. A single frame longer
   * than PART-TARGET cannot be split (#emitPart counts it).
   */
  #closeLate(end: number): void {
    const target = this.#partTarget;
    if (target === undefined) return;
    while (end - this.#partStart > target) {
      let cut: number | undefined;
      for (const p of this.#tracks.video ? this.#video : this.#audio) {
        if (p.frame.dts > this.#partStart && p.frame.dts - this.#partStart <= target) cut = p.frame.dts;
      }
      if (cut === undefined) return;
      this.#mux(cut);
      this.#partStart = cut;
    }
  }

  #nominalAudioTicks(): number {
    const a = this.#tracks.audio;
    if (!a) return 0;
    const samples = a.codec === 'opus' ? 960 : 1024;
    return (samples * TIMESCALE) / (a.codec === 'opus' ? 48_000 : a.sampleRate);
  }

  /**
   * Mux everything before `end` into the part, in more than one if it would be longer than PART-TARGET
   * (see #closeLate). At session end (`flush`) every buffered frame goes.
   */
  #emitPart(end: number, flush = false): void {
    this.#partTarget ??= this.#fitPartTarget(flush ? undefined : end);
    this.#closeLate(end);
    this.#mux(end, flush);
    this.#partHasFrames = false;
    const fit = this.#fit;
    if (fit && fit.times.length > 0 && (fit.end - fit.times[0] >= Math.min(TIMESCALE, this.#segmentTicks() / 2) || fit.times.length >= 128)) {
      this.#fixPartTarget();
    }
  }

  /** Mux the buffered frames before `end` (every one with `flush`) into one part from #partStart to `end`. */
  #mux(end: number, flush = false): void {
    const tracks: FragmentTrack[] = [];
    const taken = flush ? -1 : this.#video.findIndex((p) => p.frame.dts >= end);
    const video = taken < 0 ? this.#video : this.#video.slice(0, taken);
    let firstDts = this.#partStart;
    let independent = true;
    if (this.#tracks.video && video.length > 0) {
      const samples: CmafSample[] = video.map((p, i) => {
        const next = i + 1 < video.length ? video[i + 1].frame.dts : end;
        return { duration: next - p.frame.dts, data: p.frame.data, keyframe: p.frame.keyframe, compositionOffset: p.frame.pts - p.frame.dts };
      });
      firstDts = video[0].frame.dts;
      independent = video[0].frame.keyframe;
      tracks.push({ id: VIDEO_ID, baseMediaDecodeTime: firstDts, samples });
      this.#video = this.#video.slice(video.length);
    }
    const audio = this.#audio;
    const take = flush ? audio.length : audio.findIndex((p) => p.frame.dts >= end);
    const count = take < 0 ? audio.length : take;
    if (this.#tracks.audio && count > 0) {
      const rate = this.#tracks.audio.codec === 'opus' ? 48_000 : this.#tracks.audio.sampleRate;
      const toRate = (t: number) => Math.round((t * rate) / TIMESCALE);
      const nominal = toRate(this.#audioDur);
      const samples: CmafSample[] = [];
      const first = toRate(audio[0].frame.dts);
      const base = this.#audioEnd !== undefined && Math.abs(first - this.#audioEnd) < nominal / 2 ? this.#audioEnd : first;
      for (let i = 0; i < count; i++) {
        // The run continues the last one when its first frame is within half a frame of that run's end
        // (whose last frame got the nominal duration), so the audio timeline has no gap and no overlap.
        const cur = i === 0 ? base : toRate(audio[i].frame.dts);
        const nextFrame = audio[i + 1];
        const dur = nextFrame ? toRate(nextFrame.frame.dts) - cur : nominal;
        samples.push({ duration: dur > 0 ? dur : nominal, data: audio[i].frame.data, keyframe: true, compositionOffset: 0 });
      }
      if (!this.#tracks.video) firstDts = audio[0].frame.dts;
      tracks.push({ id: AUDIO_ID, baseMediaDecodeTime: base, samples });
      this.#audioEnd = base + samples.reduce((sum, x) => sum + x.duration, 0);
      this.#audio = audio.slice(count);
    }
    const fit = this.#fit;
    if (fit) {
      const ticks = end - this.#partStart;
      for (const p of this.#tracks.video ? video : audio.slice(0, count)) fit.times.push(p.frame.dts);
      fit.end = end;
      fit.longest = Math.max(fit.longest, ticks);
      // The part before did not end its segment if this one is in the same segment.
      if (fit.last && fit.last.segStart === this.#segStart) fit.shortest = Math.min(fit.shortest, fit.last.ticks);
      // A part cut short because the next frame would not fit (#closeLate) is short whatever PART-TARGET is.
      fit.last = ticks >= PART_FLOOR * this.#partTarget! ? { ticks, segStart: this.#segStart } : undefined;
    }
    if (tracks.length === 0) return;
    const durationTicks = end - this.#partStart;
    if (this.#partTarget !== undefined && durationTicks > this.#partTarget + 1) this.oversizedParts++;
    this.#timelineEnd = Math.max(this.#timelineEnd, end);
    this.#sink.part({
      bytes: buildFragment(++this.#fragmentSeq, tracks),
      duration: durationTicks / TIMESCALE,
      independent,
      programDateTime: this.#pdt(this.#partStart),
      timelineDts: firstDts,
    });
  }

  #cmafTracks(): CmafTrack[] {
    const out: CmafTrack[] = [];
    if (this.#tracks.video) out.push({ id: VIDEO_ID, info: this.#tracks.video, timescale: TIMESCALE });
    const a = this.#tracks.audio;
    if (a) out.push({ id: AUDIO_ID, info: a, timescale: a.codec === 'opus' ? 48_000 : a.sampleRate });
    return out;
  }
}
