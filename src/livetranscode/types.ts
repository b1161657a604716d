import type { FitPhase } from './fit.js';

/**
 * idle: no FFmpeg (no session, or no rung below the source); starting: FFmpeg spawned, not every rung has
 * output yet; running; restarting: FFmpeg exited and is restarted with backoff; degraded: every rung was
 * dropped for lack of CPU; failed: FFmpeg never started, repeatedly (lastError says why); stopped.
 */
export type TranscodeState = 'idle' | 'starting' | 'running' | 'restarting' | 'degraded' | 'failed' | 'stopped';

export interface RungStatus {
  readonly name: string;
  readonly height: number;
  /** As encoded (known once the rung produced output). */
  readonly width: number | undefined;
  readonly encoder: string;
  /** What FFmpeg encodes it at: the ladder's bitrate, capped to the source's for the default ladder. */
  readonly targetBitrateKbps: number;
  /** What the ladder says. */
  readonly ladderBitrateKbps: number;
  /** dropped: shed because FFmpeg could not keep up in real time; it comes back when the CPU allows. */
  readonly state: 'starting' | 'running' | 'dropped';
  /** Measured over the last second. */
  readonly fps: number;
  readonly bitrateKbps: number;
}

export interface TranscodeStatus {
  readonly state: TranscodeState;
  readonly pid: number | undefined;
  /** FFmpeg's speed over the last seconds (1 = real time). */
  readonly speed: number | undefined;
  /** How far FFmpeg's output lags what it was given, ms. */
  readonly lagMs: number | undefined;
  /** FFmpeg exits that were not asked for (crashes, failed starts) during this stream. */
  readonly restarts: number;
  readonly lastError: string | undefined;
  readonly droppedRungs: readonly string[];
  readonly rungs: readonly RungStatus[];
  /** How the ladder was fitted to this source session (undefined before a session with video). */
  readonly fit: LadderFitStatus | undefined;
  /** About a custom ladder for this source: a rung above the source's bitrate, or not below the one above it. */
  readonly warnings: readonly string[];
}

export interface LadderFitStatus {
  /**
   * measuring: the first seconds of the source are measured before FFmpeg starts (default ladder);
   * estimated: fitted to the first seconds; settled: fitted to the settled bitrate (final for the session).
   */
  readonly state: FitPhase;
  /** The stream's own ladder: kept as it is, only warned about. */
  readonly custom: boolean;
  /** The source's video bitrate the ladder is fitted to, kb/s over whole GOPs (undefined while measuring). */
  readonly sourceVideoKbps: number | undefined;
  /** Rungs of the default ladder below the source that are not transcoded at its bitrate, and why. */
  readonly omittedRungs: ReadonlyArray<{ readonly name: string; readonly reason: string }>;
}

export interface TranscodeCounters {
  /** Streams whose ladder was started. */
  streams: number;
  /** FFmpeg exits not asked for. */
  exits: number;
  /** ...of which after it had been working. */
  crashes: number;
  rungsDropped: number;
  rungsRestored: number;
  /** ABR streams served as passthrough because TRANSCODE_MAX_STREAMS were already transcoding. */
  overLimit: number;
}
