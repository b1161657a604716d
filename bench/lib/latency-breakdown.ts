import type { LatencySample, ProbeReadout } from './latency-page.js';
import { quantile } from './stats.js';

/**
 * Where a player's latency comes from. Without a catch-up (stock hls.js: maxLiveSyncPlaybackRate 1), the
 * playhead keeps the distance to the live edge it started with, plus the time it spent stalled:
 *
 *   latency at the first 'playing' = edge staleness of the first playlist   (s0: its last part was complete
 *                                                                             this long before it arrived)
 *                                  + hls.js's target latency at the start    (T: PART-HOLD-BACK, or
 *                                                                             liveSyncDuration when set)
 *                                  + start-up delay                          (D: first media request to the
 *                                                                             first 'playing'; the edge moves
 *                                                                             on, the start position does not)
 *   latency later                  = that + time spent waiting after it - time gained playing faster than 1x
 *
 * (liveSyncPosition = edge + time since the playlist arrived - T, taken when the first media request goes
 * out, so the time between the playlist and that request does not count.) All in seconds.
 */
export interface LatencyBreakdown {
  readonly edgeStaleS: number | null;
  /** The level (index in hls.js's list, lowest bitrate first) of the first playlist, and the one at the end. */
  readonly firstLevel: number | null;
  readonly levelAtEnd: number | null;
  readonly targetAtStartS: number | null;
  readonly partHoldBackS: number | null;
  readonly startupDelayS: number | null;
  readonly predictedAtStartS: number | null;
  readonly atFirstPlayingS: number | null;
  /**
   * Latency 1 s after the first 'playing', once the start has settled ('playing' can fire before hls.js
   * has moved the playhead to its start position, and the first frame's date is read ~40 ms early).
   */
  readonly settledS: number | null;
  /** Latency (s) this many seconds after the first 'playing' (first sample at or after it), before the window too. */
  readonly afterFirstPlaying: Record<string, number | null>;
  /** Steady p50 (the measured window) minus the settled latency: stalls, silent playhead losses, catch-up. */
  readonly driftAfterStartS: number | null;
  /** Waiting after the first 'playing' and BUFFER_STALLED_ERROR events (each raises hls.js's target by liveSyncOnStallIncrease). */
  readonly waitingAfterStartS: number;
  readonly stallErrors: number;
  /** Media the first loaded part starts before the start position (loaded and decoded, never shown). */
  readonly loadedBeforeStartS: number | null;
  readonly firstPartIndependent: boolean | null;
  readonly firstRequestWasBitrateTest: boolean;
  /** Page load (or loadSource) to the first 'playing', s. */
  readonly timeToFirstFrameS: number | null;
  /** p50 over the window of the measured latency minus hls.latency (how stale hls.js's edge estimate is). */
  readonly hlsEstimateBelowMeasuredS: number | null;
  /** hls.js target latency at the end, and its p50 of playbackRate and buffered-ahead over the window. */
  readonly targetAtEndS: number | null;
  /**
   * Media seconds played per wall second over the window (1 = real time). Below 1 with no 'waiting' is a
   * playhead that loses time silently (a loaded machine: the renderer runs late); without a catch-up that
   * time adds to the latency for good.
   */
  readonly playheadSpeed: number | null;
  readonly playbackRateP50: number | null;
  readonly bufferedAheadP50S: number | null;
  readonly note: string;
}

const TRAJECTORY_S = [0.5, 1, 2, 4, 8, 16] as const;
const r3 = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
const r4 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10000) / 10000 : null);
const p50 = (xs: number[]) =>
  xs.length
    ? quantile(
        [...xs].sort((a, b) => a - b),
        0.5,
      )
    : null;

export function breakdown(
  probe: ProbeReadout,
  playing: readonly LatencySample[],
  openedAt: number,
  answerDelayP50Ms: number,
): LatencyBreakdown {
  const st = probe.start;
  const level = st?.firstLevel;
  const frag = st?.firstFrag;
  const first = st?.firstPlaying;
  const s0 = level?.edgeStaleMs != null ? level.edgeStaleMs / 1000 : null;
  const T = level?.targetLatency ?? first?.targetLatency ?? null;
  const D = frag && first ? (first.at - frag.at) / 1000 : null;
  const atFirst = first?.latencyMs != null ? first.latencyMs / 1000 : null;
  const steady = p50(playing.map((s) => s.latencyMs! / 1000));
  const firstAt = first?.at ?? Number.POSITIVE_INFINITY;
  const after = (dt: number) => {
    const s = probe.samples.find((x) => x.t >= firstAt + dt * 1000 && x.latencyMs !== null);
    return s ? s.latencyMs! / 1000 : null;
  };
  const settled = after(1);
  return {
    edgeStaleS: r3(s0),
    firstLevel: level?.level ?? null,
    levelAtEnd: playing.at(-1)?.level ?? null,
    targetAtStartS: r3(T),
    partHoldBackS: r3(level?.partHoldBack),
    startupDelayS: r3(D),
    predictedAtStartS: s0 !== null && T !== null && D !== null ? r3(s0 + T + D) : null,
    atFirstPlayingS: r3(atFirst),
    settledS: r3(settled),
    afterFirstPlaying: Object.fromEntries(TRAJECTORY_S.map((dt) => [`${dt}s`, r3(after(dt))])),
    driftAfterStartS: steady !== null && settled !== null ? r3(steady - settled) : null,
    waitingAfterStartS: Math.round(probe.waitingMs) / 1000,
    stallErrors: probe.errors.filter((e) => e.details === 'bufferStalledError' && e.t >= firstAt).length,
    loadedBeforeStartS: frag && frag.startPosition !== null ? r3(frag.startPosition - frag.start) : null,
    firstPartIndependent: frag?.independent ?? null,
    firstRequestWasBitrateTest: frag?.bitrateTest ?? false,
    timeToFirstFrameS: first ? r3((first.at - openedAt) / 1000) : null,
    hlsEstimateBelowMeasuredS: r3(p50(playing.filter((s) => s.hlsLatency !== null).map((s) => s.latencyMs! / 1000 - s.hlsLatency!))),
    targetAtEndS: r3(playing.at(-1)?.targetLatency),
    playheadSpeed:
      playing.length > 1 ? r4((playing.at(-1)!.currentTime - playing[0].currentTime) / ((playing.at(-1)!.t - playing[0].t) / 1000)) : null,
    playbackRateP50: r3(p50(playing.map((s) => s.playbackRate))),
    bufferedAheadP50S: r3(p50(playing.filter((s) => s.aheadS !== null).map((s) => s.aheadS!))),
    note:
      `settled latency ~ edgeStale + targetAtStart + startupDelay (+ ~0.04 s); afterwards + waiting + silent losses - catch-up. ` +
      `Steady held playlist answers came ${answerDelayP50Ms} ms (p50) after their part was complete at ingest.`,
  };
}
