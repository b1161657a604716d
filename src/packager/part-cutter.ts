/**
 * The part in progress: when it is full against PART-TARGET, how it is closed (late, before the frame that
 * would overrun it), and how it is muxed and handed on as a part.
 */
import { TIMESCALE } from '../core/index.js';
import { PartMuxer } from './part-muxer.js';
import { PartTarget, type FrameSpacing } from './part-target.js';

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

/** Where the parts go (the segmenter's sink). */
export interface PartSink {
  part(part: PartOut): void;
  /** A part came out longer than the advertised PART-TARGET. */
  oversizedPart?(): void;
}

export class PartCutter {
  readonly muxer = new PartMuxer();
  readonly target: PartTarget;
  /** Timeline dts where the part in progress starts. */
  start = 0;
  /** The part in progress has a cut-driving frame. */
  hasFrames = false;
  /** End of the last part muxed, on the timeline: the next session continues from it. */
  timelineEnd = 0;
  /** Parts that came out longer than the advertised PART-TARGET (a source with irregular timing). */
  oversized = 0;
  readonly #sink: PartSink;
  readonly #segStart: () => number;
  readonly #pdt: (timelineDts: number) => number;

  /** `segStart`: where the current segment starts; `pdt`: the wall clock of a timeline instant. */
  constructor(
    opts: { readonly partTargetMs: number; readonly segmentTargetMs: number },
    spacing: () => FrameSpacing,
    sink: PartSink,
    segStart: () => number,
    pdt: (timelineDts: number) => number,
  ) {
    this.target = new PartTarget(opts, spacing);
    this.#sink = sink;
    this.#segStart = segStart;
    this.#pdt = pdt;
  }

  /**
   * Whether to end the part at the cut-driving frame at `dts`, frames `fd` apart. "The duration of a Partial
   * Segment MUST be less than or equal to the Part Target Duration" (RFC 8216bis 4.4.4.9), and one shorter
   * than 85% of it may end only a segment. A frame's duration is known only when the next frame comes: if
   * the last frame lasted so long that the part would end past PART-TARGET here (a capture clock's jitter, a
   * dropped frame), the part is closed before that frame instead (closeLate), one frame later than on time.
   * Otherwise PartTarget.full decides.
   */
  full(dts: number, fd: number): boolean {
    if (this.target.ticks === undefined) {
      // The first part takes the whole number of frames closest to the nominal target; PART-TARGET is
      // fitted to those frames when it is cut.
      if (this.target.firstPartShort(dts - this.start, fd)) return false;
      this.target.ensure(this.muxer.driverTimes(), dts);
    }
    this.closeLate(dts);
    return this.target.full(dts - this.start, fd);
  }

  /**
   * While the part, ending at `end`, would be longer than PART-TARGET, close it at the latest buffered
   * cut-driving frame that keeps it within; that frame starts the part that goes on. A single frame longer
   * than PART-TARGET cannot be split (#mux counts it).
   */
  closeLate(end: number, audioEnd = end): void {
    const target = this.target.ticks;
    if (target === undefined) return;
    while (end - this.start > target) {
      let cut: number | undefined;
      for (const f of this.muxer.drivers) if (f.dts > this.start && f.dts - this.start <= target) cut = f.dts;
      if (cut === undefined) return;
      this.#mux(cut, false, Math.min(cut, audioEnd));
      this.start = cut;
    }
  }

  /**
   * Mux everything before `end` into the part, in more than one if it would be longer than PART-TARGET
   * (see closeLate). At session end (`flush`) every buffered frame goes. Audio is split at `audioEnd`
   * (near `end`): a rung's segment ends its audio where the source's segment did (see PartMuxer.take).
   */
  emit(end: number, flush = false, audioEnd = end): void {
    this.target.ensure(this.muxer.driverTimes(), flush ? undefined : end);
    this.closeLate(end, audioEnd);
    this.#mux(end, flush, audioEnd);
    this.hasFrames = false;
    this.target.fixOnceSpanned();
  }

  /**
   * At a session's end: the last part, whose last cut-driving frame is at `lastDriver`, frames `step` ticks
   * apart. Returns where it ends.
   */
  flush(lastDriver: number | undefined, step: number): number {
    let end = (lastDriver ?? this.start) + step;
    // The last frame's duration is a guess (RTMP's whole milliseconds put that frame up to half a ms
    // late): it must not push the part past the advertised PART-TARGET. If that frame itself starts past
    // it, the part is closed before that frame first.
    if (lastDriver !== undefined) {
      this.target.ensure(this.muxer.driverTimes(), undefined);
      this.closeLate(lastDriver + 1);
      end = Math.min(end, Math.max(lastDriver + 1, this.start + this.target.ticks!));
    }
    this.emit(end, true);
    this.target.fix();
    return end;
  }

  /** Mux the buffered frames before `end` (audio before `audioEnd`; every one with `flush`) into one part from `start` to `end`. */
  #mux(end: number, flush = false, audioEnd = end): void {
    const out = this.muxer.take(end, flush, audioEnd);
    const ticks = end - this.start;
    this.target.record(ticks, out.driverTimes, end, this.#segStart());
    if (!out.bytes) return;
    const target = this.target.ticks;
    if (target !== undefined && ticks > target + 1) {
      this.oversized++;
      this.#sink.oversizedPart?.();
    }
    this.timelineEnd = Math.max(this.timelineEnd, end);
    const pdt = this.#pdt(this.start);
    this.#sink.part({
      bytes: out.bytes,
      duration: ticks / TIMESCALE,
      independent: out.independent,
      programDateTime: pdt,
      timelineDts: out.firstDts ?? this.start,
    });
  }
}
