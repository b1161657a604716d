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
  readonly targetBitrateKbps: number;
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
