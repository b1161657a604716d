/**
 * PART-TARGET fitted to whole frames: what the playlists advertise as EXT-X-PART-INF PART-TARGET, fitted to
 * the frames of the first session (provisional from the first part on, then fixed, since it must not
 * change), and the rule for when a part is full.
 */
import { TIMESCALE } from '../core/index.js';

/** Frame rates encoders use. */
const COMMON_FPS = [24_000 / 1001, 24, 25, 30_000 / 1001, 30, 48, 50, 60_000 / 1001, 60];

/**
 * "The duration of each Partial Segment MUST be at least 85% of the Part Target Duration, with the exception
 * of [...] the final Partial Segment of any Parent Segment" (RFC 8216bis 4.4.4.9; ours exempts only the last).
 */
export const PART_FLOOR = 0.85;

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

/** Spacing of the frames that drive cuts, in ticks: announced (0 if not) and measured (0 before two frames). */
export interface FrameSpacing {
  readonly nominal: number;
  readonly measured: number;
}

/**
 * While PART-TARGET is provisional: the cut-driving frames muxed so far, the last part's end, the longest
 * part, the shortest one that did not end its segment (of those cut by choice), and the last part.
 */
interface Fit {
  times: number[];
  end: number;
  longest: number;
  shortest: number;
  last?: { ticks: number; segStart: number };
}

/** One rendition's PART-TARGET, from its first part on. */
export class PartTarget {
  readonly #partTargetMs: number;
  readonly #segmentTargetMs: number;
  readonly #spacing: () => FrameSpacing;
  /** Advertised PART-TARGET in ticks: provisional from the first part on, fixed by fix(). */
  #ticks: number | undefined;
  #fit: Fit | undefined;

  constructor(opts: { readonly partTargetMs: number; readonly segmentTargetMs: number }, spacing: () => FrameSpacing) {
    this.#partTargetMs = opts.partTargetMs;
    this.#segmentTargetMs = opts.segmentTargetMs;
    this.#spacing = spacing;
  }

  /** Ticks; undefined before the first part. */
  get ticks(): number | undefined {
    return this.#ticks;
  }

  /** Seconds, as a playlist shows it: what a playlist shows must never change after, so the first read fixes it. */
  get seconds(): number {
    this.fix();
    return (this.#ticks ?? this.#nominalTicks()) / TIMESCALE;
  }

  #nominalTicks(): number {
    return (this.#partTargetMs * TIMESCALE) / 1000;
  }

  /**
   * PART-TARGET from the first part on, provisional: fitted to the first part's cut-driving frames at
   * `times` (and its end, undefined at a session's end) as if they came from a capture clock (#fitTo). A
   * few frames cannot tell such a clock from a clean one; fix() decides on more. No-op once set.
   */
  ensure(times: number[], end: number | undefined): void {
    if (this.#ticks !== undefined) return;
    if (end !== undefined) times.push(end);
    this.#fit = { times: [], end: 0, longest: 0, shortest: Infinity };
    this.#ticks = this.#fitTo(times, false) ?? wholeMs(this.#nominalTicks());
  }

  /**
   * PART-TARGET must not change during the playlist: fixed when a playlist may first show it (the getter),
   * at the latest once the first session's parts span a second (half a segment if that is shorter) or the
   * session ends, before its first segment completes; refitted then to every frame so far, if every part
   * cut so far is within the new value as it was within the provisional one.
   */
  fix(): void {
    const fit = this.#fit;
    if (!fit) return;
    this.#fit = undefined;
    const times = fit.times.length > 0 && fit.end > fit.times[fit.times.length - 1] ? [...fit.times, fit.end] : fit.times;
    const target = this.#fitTo(times, onGrid(times));
    const shortest = Math.min(fit.shortest, fit.last?.ticks ?? Infinity);
    if (target !== undefined && fit.longest <= target && shortest >= PART_FLOOR * target) this.#ticks = target;
  }

  /** Fixes PART-TARGET once the parts cut so far span enough frames (see fix()). */
  fixOnceSpanned(): void {
    const fit = this.#fit;
    const segmentTicks = (this.#segmentTargetMs * TIMESCALE) / 1000;
    if (fit && fit.times.length > 0 && (fit.end - fit.times[0] >= Math.min(TIMESCALE, segmentTicks / 2) || fit.times.length >= 128)) {
      this.fix();
    }
  }

  /** A part of `ticks` ending at `end` was cut from cut-driving frames at `times`, in the segment from `segStart`. */
  record(ticks: number, times: readonly number[], end: number, segStart: number): void {
    const fit = this.#fit;
    if (!fit) return;
    for (const t of times) fit.times.push(t);
    fit.end = end;
    fit.longest = Math.max(fit.longest, ticks);
    // The part before did not end its segment if this one is in the same segment.
    if (fit.last && fit.last.segStart === segStart) fit.shortest = Math.min(fit.shortest, fit.last.ticks);
    // A part cut short because the next frame would not fit (closed late) is short whatever PART-TARGET is.
    fit.last = ticks >= PART_FLOOR * this.#ticks! ? { ticks, segStart } : undefined;
  }

  /** Frames per part: the whole number of frames `fd` apart closest to the nominal part target. */
  framesPerPart(fd: number): number {
    let n = Math.max(1, Math.round(this.#nominalTicks() / fd));
    // Later sessions may run at another frame rate: never exceed the PART-TARGET already advertised.
    if (this.#ticks !== undefined) while (n > 1 && n * fd > this.#ticks + 45) n--;
    return n;
  }

  /** Before PART-TARGET is set: the first part, `elapsed` long with frames `fd` apart, wants more frames. */
  firstPartShort(elapsed: number, fd: number): boolean {
    return fd === 0 ? elapsed < this.#nominalTicks() : elapsed < (this.framesPerPart(fd) - 0.5) * fd;
  }

  /**
   * Whether a part `elapsed` long ends at the next cut-driving frame, `fd` apart: after its fitted number of
   * frames, or when the next frame would likely not fit; never below 85% by choice: a frame that comes
   * early enough may still land in that window.
   */
  full(elapsed: number, fd: number): boolean {
    const target = this.#ticks!;
    if (elapsed < PART_FLOOR * target) return false;
    if (fd === 0) return true;
    return elapsed >= (this.framesPerPart(fd) - 0.5) * fd || elapsed + fd / 2 > target;
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
    const spacing = this.#spacing();
    // The nominal frame spacing when known: a measured one is skewed by RTMP's whole milliseconds (29.97 fps:
    // 33 ms, which would advertise 0.200 for 0.2002 s parts). Else on a grid the median spacing, which a
    // dropped frame does not move; off it the mean, which jitter moves least.
    let fd = spacing.nominal;
    if (!fd && deltas.length > 0) fd = regular ? spacingForFit(median(deltas)) : (times[times.length - 1] - times[0]) / deltas.length;
    fd ||= spacing.measured;
    if (!(fd > 0)) return undefined;
    const fitted = Math.max(1, Math.round(this.#nominalTicks() / fd)) * fd;
    return wholeMs(regular ? fitted : (fitted * 2) / (1 + PART_FLOOR));
  }
}
