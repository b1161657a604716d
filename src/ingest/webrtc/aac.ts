/**
 * Opus to AAC through a supervised FFmpeg (src/process): Ogg Opus on stdin, ADTS on stdout. HLS players
 * (Safari and every hls.js browser) all play AAC in fMP4; Opus in fMP4 is not universal. One FFmpeg per
 * WHIP session with audio; about 1-2 % of a core.
 *
 * Timing does not depend on FFmpeg's timestamps: the Ogg stream is the RTP timeline made contiguous (see
 * opus.ts), and FFmpeg neither drops nor adds samples, so AAC frame k covers Ogg samples
 * [(k - 1) * 1024, k * 1024) (frame 0 is the encoder's priming) and its RTP time is anchor + (k - 1) * 1024.
 */
import { randomInt } from 'node:crypto';
import { AppError, type Logger } from '../../core/index.js';
import { quietArgs, Supervisor, type ChildHandle } from '../../process/index.js';
import { AdtsReader, type AdtsFrame } from './adts.js';
import { OpusTimeline } from './opus.js';

/** AAC-LC frame length in samples. */
const AAC_FRAME = 1024;
/** stdin bytes FFmpeg may leave unread before audio is dropped (it is ~4 KB/s; 256 KB is a minute). */
const MAX_STDIN_BACKLOG = 256 * 1024;

export interface AacTranscoderOptions {
  readonly ffmpegPath: string;
  readonly logger: Logger;
  readonly bitrateKbps: number;
  /** Called for every AAC frame with the RTP time (extended, 48 kHz) of its first sample. */
  readonly onFrame: (frame: AdtsFrame, rtpTime: number) => void;
  readonly readyTimeoutMs?: number;
}

export function aacArgs(bitrateKbps: number): string[] {
  return [
    ...quietArgs(),
    // The Ogg headers say everything there is to know: no probing beyond them, so the first packets are
    // decoded at once (and none is skipped: the sample count is the timeline).
    '-probesize',
    '32',
    '-analyzeduration',
    '0',
    '-f',
    'ogg',
    '-i',
    'pipe:0',
    '-vn',
    '-c:a',
    'aac',
    '-b:a',
    `${bitrateKbps}k`,
    '-ac',
    '2',
    '-ar',
    '48000',
    '-flush_packets',
    '1',
    '-f',
    'adts',
    'pipe:1',
  ];
}

interface Run {
  readonly handle: ChildHandle;
  readonly timeline: OpusTimeline;
  frames: number;
  ended: boolean;
}

export class AacTranscoder {
  readonly #o: AacTranscoderOptions;
  readonly #sup: Supervisor;
  #run: Run | undefined;
  /** Opus packets not given to FFmpeg (backlog, or none running). */
  dropped = 0;
  /** Silence filled in for lost or missing Opus packets, in samples. */
  filledSamples = 0;
  frames = 0;

  constructor(opts: AacTranscoderOptions) {
    if (opts.bitrateKbps < 16 || opts.bitrateKbps > 512) throw new AppError('E_CONFIG_INVALID', 'AAC bitrate must be 16-512 kb/s');
    this.#o = opts;
    this.#sup = new Supervisor({
      name: 'ffmpeg-aac',
      command: opts.ffmpegPath,
      args: () => aacArgs(opts.bitrateKbps),
      logger: opts.logger,
      readyTimeoutMs: opts.readyTimeoutMs ?? 10_000,
      backoff: { initialMs: 500, maxMs: 10_000, factor: 2 },
      maxStartFailures: 3,
      killTimeoutMs: 2000,
      onStart: (h) => this.#onStart(h),
      onExit: (info) => {
        if (this.#run) this.#run.ended = true;
        this.#run = undefined;
        if (info.kind !== 'stopped') opts.logger.warn({ reason: info.reason, stderr: info.stderrTail.slice(-3) }, 'AAC transcoder exited');
      },
    });
  }

  get state(): string {
    return this.#sup.state;
  }

  get restarts(): number {
    return this.#sup.restarts;
  }

  start(): void {
    this.#sup.start();
  }

  #onStart(handle: ChildHandle): void {
    const run: Run = { handle, timeline: new OpusTimeline(randomInt(2 ** 31)), frames: 0, ended: false };
    this.#run = run;
    handle.stdin.on('error', () => {}); // EPIPE when it dies: its exit is what counts
    const adts = new AdtsReader();
    handle.stdout.on('data', (chunk: Buffer) => {
      if (run.ended) return;
      let frames: AdtsFrame[];
      try {
        frames = adts.push(chunk);
      } catch (err) {
        run.ended = true;
        this.#o.logger.error({ err }, 'unreadable ADTS from FFmpeg; restarting it');
        this.#sup.restartNow('unreadable output');
        return;
      }
      for (const f of frames) {
        handle.markReady();
        const k = run.frames++;
        this.frames++;
        const anchor = run.timeline.anchor;
        // Frame 0 holds the encoder's priming (it starts 1024 samples before the first input sample).
        if (k === 0 || anchor === undefined) continue;
        this.#o.onFrame(f, anchor + (k - 1) * AAC_FRAME);
      }
    });
  }

  /** One Opus packet at its extended RTP timestamp (48 kHz). Never blocks; drops (and counts) when FFmpeg lags. */
  write(rtpTime: number, payload: Uint8Array): void {
    const run = this.#run;
    const stdin = run?.handle.stdin;
    if (!run || run.ended || !stdin || !stdin.writable) {
      this.dropped++;
      return;
    }
    if (stdin.writableLength > MAX_STDIN_BACKLOG) {
      this.dropped++;
      return;
    }
    const step = run.timeline.push(rtpTime, payload);
    if (step.kind === 'bad') {
      this.dropped++;
      return;
    }
    if (step.kind === 'restart') {
      // The sender's timeline jumped (paused, restarted): a new FFmpeg starts a new one at the next packet.
      run.ended = true;
      this.#sup.restartNow('audio timeline jumped');
      return;
    }
    this.filledSamples += step.filled;
    if (step.bytes.length === 1) stdin.write(step.bytes[0]);
    else if (step.bytes.length > 1) stdin.write(Buffer.concat(step.bytes));
  }

  /** Stops FFmpeg (waits for it). Idempotent. */
  close(): Promise<void> {
    if (this.#run) this.#run.ended = true;
    return this.#sup.stop();
  }
}
