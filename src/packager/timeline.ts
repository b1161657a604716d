/**
 * The segment timeline: the source rendition's segment boundaries and session clocks, the data that
 * alignment.ts shares between the source and its rungs.
 */
import { TIMESCALE } from '../core/index.js';

/** How one source publish session maps onto the package's continuous timeline and the wall clock. */
export interface SessionClock {
  /** Timeline dts = session dts + offset. */
  offset: number;
  /** PROGRAM-DATE-TIME of timeline instant t = wallAnchor + (t - dtsAnchor) / 90 ms. */
  wallAnchor: number;
  dtsAnchor: number;
}

/** Where the source rendition started a segment. */
export interface Boundary {
  readonly msn: number;
  readonly timelineDts: number;
  /** Presentation time of the segment's first frame (the source keyframe's pts) on the timeline. */
  readonly timelinePts: number;
  readonly sessionId: string;
  /** The first segment of a source session (a discontinuity in the source playlist). */
  readonly sessionStart: boolean;
}

/** Boundaries kept: far more than any rung lags behind the source (64 × 2 s segments). */
const MAX_BOUNDARIES = 64;
/** Source sessions remembered (a publisher that reconnects often must not grow the map). */
const MAX_SESSIONS = 8;

/**
 * The source rendition's segment boundaries and clocks, shared with the transcoded rungs of the same
 * stream so that every rung cuts its segments where the source did and gives them the same media
 * sequence numbers and PROGRAM-DATE-TIMEs. The source (leader) writes; rungs (followers) read.
 * Rung frames carry the source's timestamps (FFmpeg runs with -copyts), so a rung frame's timeline
 * position is its dts plus the offset of the source session it was transcoded from.
 */
export class SegmentTimeline {
  readonly #sessions = new Map<string, SessionClock>();
  #boundaries: Boundary[] = [];
  /** Timeline dts of the last frame the source segmenter took. */
  #horizon = -Infinity;
  #waiters = new Set<{ dts: number; resolve: () => void }>();

  // ---- leader ----

  setSession(sessionId: string, clock: SessionClock): void {
    this.#sessions.delete(sessionId);
    this.#sessions.set(sessionId, clock);
    while (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
  }

  addBoundary(b: Boundary): void {
    this.#boundaries.push(b);
    if (this.#boundaries.length > MAX_BOUNDARIES) this.#boundaries = this.#boundaries.slice(-MAX_BOUNDARIES);
  }

  /** The source segmenter has taken every frame up to timeline dts `dts`. */
  advance(dts: number): void {
    if (dts <= this.#horizon) return;
    this.#horizon = dts;
    for (const w of this.#waiters) if (w.dts <= dts) w.resolve();
  }

  // ---- followers ----

  session(sessionId: string): SessionClock | undefined {
    return this.#sessions.get(sessionId);
  }

  /** The source's PROGRAM-DATE-TIME (ms) of a timeline instant of session `sessionId`. */
  pdt(sessionId: string, timelineDts: number): number | undefined {
    const c = this.#sessions.get(sessionId);
    return c ? c.wallAnchor + ((timelineDts - c.dtsAnchor) * 1000) / TIMESCALE : undefined;
  }

  /** The boundary whose first frame is presented within `tolerance` ticks of `timelinePts`. */
  boundaryNear(timelinePts: number, tolerance: number): Boundary | undefined {
    for (let i = this.#boundaries.length - 1; i >= 0; i--) {
      const b = this.#boundaries[i];
      if (Math.abs(b.timelinePts - timelinePts) <= tolerance) return b;
      if (b.timelinePts < timelinePts - tolerance) return undefined;
    }
    return undefined;
  }

  /** The first boundary presented after `timelinePts` (plus tolerance). */
  boundaryAfter(timelinePts: number, tolerance: number): Boundary | undefined {
    for (const b of this.#boundaries) if (b.timelinePts > timelinePts + tolerance) return b;
    return undefined;
  }

  boundary(msn: number): Boundary | undefined {
    for (let i = this.#boundaries.length - 1; i >= 0; i--) if (this.#boundaries[i].msn === msn) return this.#boundaries[i];
    return undefined;
  }

  get horizon(): number {
    return this.#horizon;
  }

  /**
   * Resolves once the source has taken its frames up to `dts`, or after `timeoutMs`. A rung waits here
   * before deciding whether its keyframe starts a segment: the source decides, and it may not have seen
   * the same instant yet.
   */
  waitFor(dts: number, timeoutMs: number): Promise<void> {
    if (dts <= this.#horizon || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const w = {
        dts,
        resolve: () => {
          clearTimeout(t);
          this.#waiters.delete(w);
          resolve();
        },
      };
      const t = setTimeout(w.resolve, timeoutMs);
      this.#waiters.add(w);
    });
  }

  #closed = false;

  /** The source ended: nobody waits for it any more. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#waiters]) w.resolve();
  }
}
