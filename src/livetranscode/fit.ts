import { planLadder, rungsFor, TIMESCALE, type LadderPlan, type LadderRung, type MediaFrame } from '../core/index.js';

/** When a live ladder is fitted to its source (see LadderFit). */
export interface FitTiming {
  /** The first plan: once this much of the source is measured in whole GOPs... */
  readonly estimateMs: number;
  /** ...or once this much was held without a second keyframe (a long GOP): FFmpeg waits no longer. */
  readonly holdMaxMs: number;
  /** The settled plan: once this much is measured in whole GOPs, or twice this in all. */
  readonly settleMs: number;
  /** A rung's bitrate that moves by more than this share, or a rung that comes or goes, is a change. */
  readonly changeRatio: number;
}

export const FIT_TIMING: FitTiming = { estimateMs: 2000, holdMaxMs: 4000, settleMs: 6000, changeRatio: 0.2 };

/** Bytes the hold keeps at most (4 s of a 64 Mb/s source); past it the hold starts again at a keyframe. */
const HOLD_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The video bitrate of a source from its frames, over whole GOPs: from the first keyframe to the latest
 * one, so every GOP counted has its one keyframe (a part of a GOP overstates the rate by its keyframe).
 * Pure: fed frames, no clock.
 */
export class GopBitrateMeter {
  #firstKey: number | undefined;
  #lastDts = 0;
  #bytes = 0;
  #bytesBeforeLast = 0;
  #wholeBytes = 0;
  #wholeTicks = 0;

  add(frame: Pick<MediaFrame, 'dts' | 'keyframe' | 'data'>): void {
    if (this.#firstKey === undefined) {
      if (!frame.keyframe) return;
      this.#firstKey = frame.dts;
    } else if (frame.keyframe && frame.dts > this.#firstKey) {
      this.#wholeBytes = this.#bytes;
      this.#wholeTicks = frame.dts - this.#firstKey;
    }
    this.#bytesBeforeLast = this.#bytes;
    this.#bytes += frame.data.byteLength;
    this.#lastDts = frame.dts;
  }

  /** Media measured in whole GOPs, ms. */
  get wholeMs(): number {
    return (this.#wholeTicks * 1000) / TIMESCALE;
  }

  /** Media seen since the first keyframe, ms. */
  get spanMs(): number {
    return this.#firstKey === undefined ? 0 : ((this.#lastDts - this.#firstKey) * 1000) / TIMESCALE;
  }

  /** kb/s over the whole GOPs seen, else over everything before the last frame; undefined before that. */
  get kbps(): number | undefined {
    if (this.#wholeTicks > 0) return (this.#wholeBytes * 8 * TIMESCALE) / this.#wholeTicks / 1000;
    const span = this.#firstKey === undefined ? 0 : this.#lastDts - this.#firstKey;
    return span > 0 ? (this.#bytesBeforeLast * 8 * TIMESCALE) / span / 1000 : undefined;
  }
}

/** Whether going from plan `a` to plan `b` is worth an FFmpeg restart: a rung comes or goes, or moves by > `ratio`. */
export function planChanged(a: LadderPlan, b: LadderPlan, ratio = FIT_TIMING.changeRatio): boolean {
  if (a.rungs.length !== b.rungs.length) return true;
  return a.rungs.some((r, i) => {
    const o = b.rungs[i];
    return o.name !== r.name || Math.abs(o.videoBitrateKbps - r.videoBitrateKbps) > ratio * r.videoBitrateKbps;
  });
}

/**
 * measuring: the default ladder waits for the first seconds of the source before FFmpeg starts;
 * estimated: fitted to the first seconds; settled: fitted to the settled bitrate (final for the session).
 */
export type FitPhase = 'measuring' | 'estimated' | 'settled';

/** What a source video frame changed: the first plan is ready, or the settled plan differs and is to be applied. */
export type FitStep = 'plan' | 'replan' | undefined;

/**
 * The ladder of one source session fitted to the source's measured video bitrate, in two steps: a first
 * plan from the first estimateMs (FFmpeg is not started before it, so no rung is ever encoded above what
 * the source is worth), and one re-plan once settleMs are measured, applied only if it changes the plan
 * (planChanged), so FFmpeg restarts at most once for it. A custom ladder is never changed: it is planned
 * at once, and the measurements only update its warnings.
 */
export class LadderFit {
  readonly custom: boolean;
  readonly #ladder: readonly LadderRung[];
  readonly #video: { readonly width: number; readonly height: number };
  readonly #timing: FitTiming;
  readonly #meter = new GopBitrateMeter();
  #phase: FitPhase;
  #plan: LadderPlan | undefined;
  #kbps: number | undefined;

  constructor(ladder: readonly LadderRung[], video: { width: number; height: number }, opts: { custom: boolean; timing?: FitTiming }) {
    this.#ladder = ladder;
    this.#video = video;
    this.custom = opts.custom;
    this.#timing = opts.timing ?? FIT_TIMING;
    // Nothing to fit (a custom ladder, or no rung below the source): planned now, FFmpeg need not wait.
    const nothingToFit = opts.custom || rungsFor(ladder, video).length === 0;
    this.#plan = nothingToFit ? this.#planFor(undefined) : undefined;
    this.#phase = nothingToFit ? 'estimated' : 'measuring';
  }

  get phase(): FitPhase {
    return this.#phase;
  }

  /** The current plan; undefined while measuring. */
  get plan(): LadderPlan | undefined {
    return this.#plan;
  }

  /** The source's video bitrate the plan was made for, kb/s (rounded); undefined until measured. */
  get sourceKbps(): number | undefined {
    return this.#kbps;
  }

  /** The rungs this source may get (the ladder below it), before any fitting. */
  get candidates(): LadderRung[] {
    return rungsFor(this.#ladder, this.#video);
  }

  /** Feed one source video frame (in decode order). */
  video(frame: Pick<MediaFrame, 'dts' | 'keyframe' | 'data'>): FitStep {
    if (this.#phase === 'settled') return undefined;
    const m = this.#meter;
    m.add(frame);
    const t = this.#timing;
    if (this.#phase === 'measuring') {
      if (m.wholeMs < t.estimateMs && m.spanMs < t.holdMaxMs) return undefined;
      this.#phase = 'estimated';
      this.#measured();
      this.#plan = this.#planFor(this.#kbps);
      return 'plan';
    }
    if (m.wholeMs < t.settleMs && m.spanMs < 2 * t.settleMs) return undefined;
    this.#phase = 'settled';
    this.#measured();
    const next = this.#planFor(this.#kbps);
    const before = this.#plan!;
    if (!planChanged(before, next, t.changeRatio)) {
      // Close enough: the running rungs stay as they are (no restart for a few per cent); the warnings and
      // the reported source bitrate are the settled ones.
      this.#plan = { ...before, warnings: next.warnings };
      return undefined;
    }
    this.#plan = next;
    return 'replan';
  }

  #measured(): void {
    const k = this.#meter.kbps;
    this.#kbps = k === undefined ? undefined : Math.round(k);
  }

  #planFor(kbps: number | undefined): LadderPlan {
    return planLadder(this.#ladder, { ...this.#video, videoKbps: kbps }, { custom: this.custom });
  }
}

/**
 * Source frames kept while no FFmpeg may take them: before the first plan, and while FFmpeg restarts for
 * the re-plan. It starts at a video keyframe (where FFmpeg can start decoding) and is bounded in media
 * time and bytes; past a bound it starts again at the next keyframe (the rung then starts that much later).
 * The default bound is a second more than the first plan waits at most, so that hold never overflows.
 */
export class FrameHold {
  /** The hold ends when a run other than this one (undefined: any run) is taking frames. */
  readonly after: object | undefined;
  #frames: MediaFrame[] = [];
  #bytes = 0;
  readonly #maxMs: number;

  constructor(after: object | undefined, maxMs = FIT_TIMING.holdMaxMs + 1000) {
    this.after = after;
    this.#maxMs = maxMs;
  }

  push(frame: MediaFrame): void {
    const first = this.#frames.at(0);
    if (!first) {
      if (frame.track === 'video' && frame.keyframe) this.#add(frame);
      return;
    }
    if (((frame.dts - first.dts) * 1000) / TIMESCALE > this.#maxMs || this.#bytes + frame.data.byteLength > HOLD_MAX_BYTES) {
      this.#frames = [];
      this.#bytes = 0;
      return this.push(frame);
    }
    this.#add(frame);
  }

  #add(frame: MediaFrame): void {
    this.#frames.push(frame);
    this.#bytes += frame.data.byteLength;
  }

  /** The frames held, in arrival order; the hold is empty afterwards. */
  take(): MediaFrame[] {
    const out = this.#frames;
    this.#frames = [];
    this.#bytes = 0;
    return out;
  }

  get length(): number {
    return this.#frames.length;
  }
}
