/**
 * Two clocks, for two kinds of time:
 *
 * - the wall clock (`Clock.now()`, ms since the epoch) for times that name a date: PROGRAM-DATE-TIME,
 *   playback token expiry, catalog timestamps. Injectable, so tests can move it (a jump of the host's clock).
 * - the monotonic clock (`monotonicNow()`, ms from an arbitrary origin) for elapsed time: timeouts, rates,
 *   backoff, caches, "stale after N s" in memory. A wall-clock jump (NTP step, an operator's `date -s`)
 *   neither fires nor freezes anything that measures with it.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Monotonic ms (arbitrary origin): for durations and deadlines only, never for a date. */
export function monotonicNow(): number {
  return performance.now();
}

/** The monotonic clock as a Clock, for what takes one to measure windows and rates (a fake one in tests). */
export const monotonicClock: Clock = { now: monotonicNow };

/**
 * A wall clock read once from `clock`, then advanced by the monotonic clock: ms since the epoch that never
 * jump. A publish session stamps its frames' arrival with one, so the PROGRAM-DATE-TIMEs of a run stay
 * continuous (anchored at the session's start, plus media time) whatever the host's clock does meanwhile.
 */
export function anchoredClock(clock: Clock = systemClock): Clock {
  const base = clock.now() - monotonicNow();
  return { now: () => base + monotonicNow() };
}
