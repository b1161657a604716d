import { monotonicClock, type Clock } from './clock.js';

/**
 * Failed attempts per source (an address, a stream key) in a fixed window. A source with `max` failures in
 * its window is refused until the window ends, whatever it sends; a success does not reset the count (an
 * attacker holding one valid key must not clear its record with it). The same idea serves HTTP's API token,
 * RTMP's stream keys and WHIP's keys.
 *
 * Bounded: at most `maxSources` sources are tracked. When full, windows that have ended are dropped first,
 * then the oldest; a flood of distinct addresses can only forget old records, not grow memory.
 */
export interface FailureLimiterOptions {
  /** Failures allowed in one window before the source is refused. */
  readonly max: number;
  readonly windowMs: number;
  /** Sources tracked at once (default 10,000). */
  readonly maxSources?: number;
  /** Measures the windows; default monotonicClock (a wall-clock jump neither ends nor stretches one). */
  readonly clock?: Clock;
}

export interface FailureVerdict {
  /** The source is refused now (this failure reached the limit, or it was refused already). */
  readonly refused: boolean;
  /** This failure is the one that reached the limit: log it once, not every attempt after it. */
  readonly justRefused: boolean;
  /** Seconds until the source may try again (for Retry-After); 0 when not refused. */
  readonly retryAfterSeconds: number;
}

interface Window {
  readonly startedAt: number;
  failures: number;
}

export class FailureLimiter {
  readonly #opts: Required<FailureLimiterOptions>;
  readonly #windows = new Map<string, Window>();
  /** Failures recorded, and attempts refused without being tried, since start (for /metrics). */
  readonly counters = { failures: 0, refused: 0 };

  constructor(opts: FailureLimiterOptions) {
    if (!(opts.max >= 1) || !(opts.windowMs >= 1)) throw new RangeError('FailureLimiter needs max >= 1 and windowMs >= 1');
    this.#opts = { maxSources: 10_000, clock: monotonicClock, ...opts };
  }

  /** Whether `source` is refused now; an attempt refused here is counted and must not be tried. */
  check(source: string): FailureVerdict {
    const w = this.#current(source);
    if (w && w.failures >= this.#opts.max) {
      this.counters.refused++;
      return { refused: true, justRefused: false, retryAfterSeconds: this.#retryAfter(w) };
    }
    return { refused: false, justRefused: false, retryAfterSeconds: 0 };
  }

  /** Records a failed attempt from `source`. */
  fail(source: string): FailureVerdict {
    this.counters.failures++;
    let w = this.#current(source);
    if (!w) {
      this.#makeRoom();
      w = { startedAt: this.#opts.clock.now(), failures: 0 };
      this.#windows.set(source, w);
    }
    w.failures++;
    const refused = w.failures >= this.#opts.max;
    return { refused, justRefused: w.failures === this.#opts.max, retryAfterSeconds: refused ? this.#retryAfter(w) : 0 };
  }

  /** Sources tracked now (for tests and /metrics). */
  get size(): number {
    return this.#windows.size;
  }

  #current(source: string): Window | undefined {
    const w = this.#windows.get(source);
    if (!w) return undefined;
    if (this.#opts.clock.now() - w.startedAt >= this.#opts.windowMs) {
      this.#windows.delete(source);
      return undefined;
    }
    return w;
  }

  #retryAfter(w: Window): number {
    return Math.max(1, Math.ceil((w.startedAt + this.#opts.windowMs - this.#opts.clock.now()) / 1000));
  }

  #makeRoom(): void {
    if (this.#windows.size < this.#opts.maxSources) return;
    const now = this.#opts.clock.now();
    for (const [k, w] of this.#windows) if (now - w.startedAt >= this.#opts.windowMs) this.#windows.delete(k);
    // Map keeps insertion order: the first entries are the oldest windows.
    for (const k of this.#windows.keys()) {
      if (this.#windows.size < this.#opts.maxSources) break;
      this.#windows.delete(k);
    }
  }
}
