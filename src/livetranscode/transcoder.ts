import { cpus } from 'node:os';
import { DEFAULT_LADDER, type LadderRung, type Logger } from '../core/index.js';
import type { StreamHub } from '../stream/index.js';
import type { GovernorOptions } from './governor.js';
import { StreamLadder } from './stream-ladder.js';
import type { TranscodeCounters, TranscodeStatus } from './types.js';

export interface LiveTranscoderOptions {
  readonly hub: StreamHub;
  /** Where rungs are published, as `<stream id>/<rung>`. */
  readonly rungHub: StreamHub;
  readonly logger: Logger;
  /** FFmpeg to run; undefined when none was found (ABR streams are then served as passthrough). */
  readonly ffmpegPath: string | undefined;
  readonly x264Preset: string;
  readonly vaapiDevice: string;
  readonly readyTimeoutMs: number;
  readonly governor: GovernorOptions;
  /** Streams transcoded at once; more ABR streams are served as passthrough (and counted). */
  readonly maxStreams: number;
  /**
   * The ladder of a stream that is to be transcoded, undefined for passthrough (catalog lookup).
   * DEFAULT_LADDER itself (the very array) is fitted to each source's bitrate; any other ladder is the
   * stream's own and is kept as it is, with warnings in the status.
   */
  readonly resolveLadder: (streamId: string) => Promise<readonly LadderRung[] | undefined>;
}

/** How long a failed FFmpeg start keeps /healthz saying FFmpeg is down when nothing tries it again. */
const FFMPEG_FAILURE_MEMORY_MS = 10 * 60_000;

/** Samples the machine's CPU idle fraction (all cores) between ticks. */
class CpuIdle {
  #last = cpus().map((c) => c.times);
  value: number | undefined;

  sample(): void {
    const now = cpus().map((c) => c.times);
    let idle = 0;
    let total = 0;
    now.forEach((t, i) => {
      const p = this.#last.at(i);
      if (!p) return;
      idle += t.idle - p.idle;
      total += t.user + t.nice + t.sys + t.irq + t.idle - (p.user + p.nice + p.sys + p.irq + p.idle);
    });
    this.#last = now;
    if (total <= 0) return;
    const v = idle / total;
    // Smoothed over ~10 s: one quiet second is not headroom.
    this.value = this.value === undefined ? v : this.value * 0.9 + v * 0.1;
  }
}

/**
 * Starts a StreamLadder for every live stream whose profile is "abr" (the catalog says, through
 * resolveLadder), up to maxStreams at once, and reports their status.
 */
export class LiveTranscoder {
  readonly counters: TranscodeCounters = { streams: 0, exits: 0, crashes: 0, rungsDropped: 0, rungsRestored: 0, overLimit: 0 };
  readonly #o: LiveTranscoderOptions;
  readonly #log: Logger;
  readonly #streams = new Map<string, StreamLadder>();
  readonly #cpu = new CpuIdle();
  readonly #onStart = (streamId: string) => void this.#startStream(streamId);
  #timer: NodeJS.Timeout | undefined;
  #warnedNoFfmpeg = false;
  /** The last FFmpeg start that failed, cleared by the next one that works. */
  #ffmpegFailure: { at: number; reason: string } | undefined;
  #closed = false;

  constructor(opts: LiveTranscoderOptions) {
    this.#o = opts;
    this.#log = opts.logger;
  }

  start(): void {
    this.#o.hub.on('stream-start', this.#onStart);
    this.#timer = setInterval(() => {
      this.#cpu.sample();
      const now = performance.now();
      for (const s of this.#streams.values()) s.tick(now);
    }, 1000);
    this.#timer.unref();
  }

  get size(): number {
    return this.#streams.size;
  }

  async #startStream(streamId: string): Promise<void> {
    // Subscribe at once so the first session's events are queued while the catalog answers.
    const reader = this.#o.hub.subscribe(streamId, 'transcoder');
    let ladder: readonly LadderRung[] | undefined;
    try {
      ladder = await this.#o.resolveLadder(streamId);
    } catch (err) {
      this.#log.warn({ err, stream: streamId }, 'could not read the stream profile; serving the source only');
    }
    // The stream's previous run may still be stopping its FFmpeg (a stream that ended and came back at
    // once): let it finish, so the new run gets the ladder.
    const previous = this.#streams.get(streamId);
    if (previous) await Promise.race([previous.done, new Promise((r) => setTimeout(r, 6000).unref())]);
    if (!ladder || this.#closed || this.#streams.has(streamId)) {
      if (ladder && this.#streams.has(streamId))
        this.#log.warn({ stream: streamId }, 'the previous run of this stream is still stopping; serving the source only');
      return reader.close();
    }
    if (!this.#o.ffmpegPath) {
      this.#ffmpegFailure = { at: performance.now(), reason: 'no FFmpeg found' };
      if (!this.#warnedNoFfmpeg) this.#log.warn('no FFmpeg found (set FFMPEG_PATH): ABR streams are served as passthrough');
      this.#warnedNoFfmpeg = true;
      return reader.close();
    }
    this.counters.streams++;
    const t = new StreamLadder({
      streamId,
      ladder,
      custom: ladder !== DEFAULT_LADDER,
      reader,
      rungHub: this.#o.rungHub,
      logger: this.#log,
      ffmpegPath: this.#o.ffmpegPath,
      x264Preset: this.#o.x264Preset,
      vaapiDevice: this.#o.vaapiDevice,
      readyTimeoutMs: this.#o.readyTimeoutMs,
      governor: this.#o.governor,
      counters: this.counters,
      cpuIdle: () => this.#cpu.value,
      // Only streams with an FFmpeg take a slot: one at or below the lowest rung, or failed, does not.
      admit: (self) => [...this.#streams.values()].filter((s) => s !== self && s.hasChild).length < this.#o.maxStreams,
      onFfmpeg: (works, reason) => (this.#ffmpegFailure = works ? undefined : { at: performance.now(), reason: reason ?? 'did not start' }),
    });
    this.#streams.set(streamId, t);
    void t.done.finally(() => {
      if (this.#streams.get(streamId) === t) this.#streams.delete(streamId);
    });
  }

  /**
   * Whether the live ladders' FFmpeg works, as far as this node saw: false while its last start failed
   * (within FFMPEG_FAILURE_MEMORY_MS) or an ABR stream found no FFmpeg at all. Spawns nothing: it is read
   * by /healthz on every probe.
   */
  ffmpegWorks(): boolean {
    const f = this.#ffmpegFailure;
    return !f || performance.now() - f.at > FFMPEG_FAILURE_MEMORY_MS;
  }

  status(streamId: string): TranscodeStatus | undefined {
    return this.#streams.get(streamId)?.status(this.#o.rungHub);
  }

  list(): Array<{ streamId: string; status: TranscodeStatus }> {
    return [...this.#streams.entries()].map(([streamId, s]) => ({ streamId, status: s.status(this.#o.rungHub) }));
  }

  /** Stop every FFmpeg (waiting for each to exit) and end the rung streams. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#o.hub.off('stream-start', this.#onStart);
    clearInterval(this.#timer);
    await Promise.all([...this.#streams.values()].map((s) => s.close()));
    this.#streams.clear();
  }
}
