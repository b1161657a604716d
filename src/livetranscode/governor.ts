export interface GovernorOptions {
  /** FFmpeg is behind when its speed (over the last seconds) is below this... */
  readonly minSpeed: number;
  /** ...or when what it wrote lags what it was given by more than this. */
  readonly maxLagMs: number;
  /** Behind for this long in a row: drop a rung. */
  readonly slowForMs: number;
  /** A freshly started FFmpeg is not judged for this long (start-up, first keyframe). */
  readonly warmupMs: number;
  /** A dropped rung is tried again no sooner than this after the last drop... */
  readonly restoreAfterMs: number;
  /** ...and only while the machine's CPUs are at least this idle (0..1). */
  readonly restoreIdle: number;
}

export const DEFAULT_GOVERNOR: GovernorOptions = {
  minSpeed: 0.9,
  maxLagMs: 2000,
  slowForMs: 5000,
  warmupMs: 5000,
  restoreAfterMs: 60_000,
  restoreIdle: 0.35,
};

export interface LoadSample {
  readonly speed: number | undefined;
  readonly lagMs: number | undefined;
}

/**
 * Decides when a stream's transcoder must shed a rung (it cannot keep up in real time, so latency would
 * grow without bound) and when a shed rung may come back. Pure: fed with samples and times.
 */
export class LoadGovernor {
  readonly #opts: GovernorOptions;
  #runStart = 0;
  #slowSince: number | undefined;
  #lastDrop: number | undefined;
  #okSince: number | undefined;

  constructor(opts: GovernorOptions = DEFAULT_GOVERNOR) {
    this.#opts = opts;
  }

  /** A new FFmpeg run starts now: judge it afresh after the warm-up. */
  runStarted(now: number): void {
    this.#runStart = now;
    this.#slowSince = undefined;
    this.#okSince = undefined;
  }

  /** True when the transcoder has been behind for slowForMs: the caller drops a rung (and restarts). */
  sample(now: number, s: LoadSample): boolean {
    if (now - this.#runStart < this.#opts.warmupMs) return false;
    const slow = (s.speed !== undefined && s.speed < this.#opts.minSpeed) || (s.lagMs !== undefined && s.lagMs > this.#opts.maxLagMs);
    if (!slow) {
      this.#slowSince = undefined;
      this.#okSince ??= now;
      return false;
    }
    this.#okSince = undefined;
    this.#slowSince ??= now;
    if (now - this.#slowSince < this.#opts.slowForMs) return false;
    this.#slowSince = undefined;
    this.#lastDrop = now;
    return true;
  }

  /**
   * Whether a dropped rung may be tried again: long enough since the last drop, the running FFmpeg (if
   * any: every rung may have been dropped) keeping up, and the machine's CPUs idle enough.
   */
  canRestore(now: number, idle: number | undefined, running: boolean): boolean {
    if (this.#lastDrop === undefined || now - this.#lastDrop < this.#opts.restoreAfterMs) return false;
    if (running && (this.#okSince === undefined || now - this.#okSince < this.#opts.slowForMs)) return false;
    return idle !== undefined && idle >= this.#opts.restoreIdle;
  }

  /** A restore was attempted: the next one waits restoreAfterMs again (if it fails, it is dropped again). */
  restored(now: number): void {
    this.#lastDrop = now;
  }
}
