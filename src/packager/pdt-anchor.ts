/**
 * The PROGRAM-DATE-TIME anchor of a publish session: the wall clock of one timeline instant, from which
 * every PDT of the session follows. Refined to the earliest arrival until the session's first part is
 * published, then fixed: a PDT in a playlist never changes.
 */
import { TIMESCALE } from '../core/index.js';

export class PdtAnchor {
  /** Wall clock of timeline instant #dts: PROGRAM-DATE-TIME = #wall + (dts - #dts). */
  #wall = 0;
  #dts = 0;
  /** The anchor is refined until the session's first part is published, then fixed. */
  #open = false;

  get wallAnchor(): number {
    return this.#wall;
  }

  get dtsAnchor(): number {
    return this.#dts;
  }

  /** A session starts at timeline dts `dts`, whose frame arrived at `wallClock`: refined from here on. */
  start(dts: number, wallClock: number): void {
    this.#wall = wallClock;
    this.#dts = dts;
    this.#open = true;
  }

  /** A follower's session starts at `dts`; its PDTs are the source's (the anchor is a fallback). */
  follow(dts: number): void {
    this.#dts = dts;
  }

  /**
   * A frame at timeline `dts` arrived at `wallClock`: whether it moved the anchor earlier. A frame's arrival
   * is its capture time plus a delay that varies (encoder, network, a busy event loop when the session
   * starts). The smallest arrival-minus-media-time seen is the best estimate of the capture clock, so one
   * late first keyframe does not make every PDT of the session late.
   */
  refine(dts: number, wallClock: number): boolean {
    if (!this.#open) return false;
    const candidate = wallClock - ((dts - this.#dts) * 1000) / TIMESCALE;
    if (!(candidate < this.#wall)) return false;
    this.#wall = candidate;
    return true;
  }

  /** The session's first part is about to be published: the anchor is fixed. */
  fix(): void {
    this.#open = false;
  }

  /** Wall clock (ms) of a timeline instant. */
  pdt(timelineDts: number): number {
    return this.#wall + ((timelineDts - this.#dts) * 1000) / TIMESCALE;
  }
}
