import { StringDecoder } from 'node:string_decoder';

/** One block of FFmpeg's `-progress` output. Values FFmpeg prints as N/A (or leaves out) are undefined. */
export interface Progress {
  readonly frame: number | undefined;
  readonly fps: number | undefined;
  /** Output position in microseconds (`out_time_us`; `out_time_ms` is the same number, misnamed). */
  readonly outTimeUs: number | undefined;
  /** Cumulative since FFmpeg started (`speed=1.01x`), so slow to show a stall; see SpeedMeter. */
  readonly speed: number | undefined;
  readonly dropFrames: number | undefined;
  readonly dupFrames: number | undefined;
  readonly totalSizeBytes: number | undefined;
  /** 'end' on the last block, when FFmpeg finishes. */
  readonly progress: 'continue' | 'end';
}

export interface ProgressParserOptions {
  /** Longer lines are dropped whole (and counted); FFmpeg's are under 100 chars. Default 1024. */
  readonly maxLineLength?: number;
}

/** The keys we keep; anything else FFmpeg prints (`stream_0_0_q`, `bitrate`, `out_time`) is skipped. */
const KEYS = {
  frame: 'frame',
  fps: 'fps',
  out_time_us: 'outTimeUs',
  speed: 'speed',
  drop_frames: 'dropFrames',
  dup_frames: 'dupFrames',
  total_size: 'totalSizeBytes',
} as const;

type Field = (typeof KEYS)[keyof typeof KEYS];

/**
 * FFmpeg's `-progress pipe:N` output: blocks of `key=value` lines, each block closed by `progress=continue`
 * (or `progress=end` on the last). Fed arbitrary chunks; a line split across chunks is joined. Memory is
 * bounded: a partial line longer than maxLineLength is dropped up to its newline, and only known keys are
 * kept.
 */
export class ProgressParser {
  /** Lines dropped for being too long. */
  droppedLines = 0;
  readonly #maxLine: number;
  readonly #decoder = new StringDecoder('utf8');
  #partial = '';
  #skipping = false;
  #block: Partial<Record<Field, number>> = {};

  constructor(options: ProgressParserOptions = {}) {
    this.#maxLine = options.maxLineLength ?? 1024;
  }

  /** Feed the next chunk; returns the blocks it completed, oldest first. */
  push(chunk: Buffer | string): Progress[] {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    const out: Progress[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const piece = text.slice(start, nl);
      start = nl + 1;
      if (this.#skipping) {
        this.#skipping = false;
        continue;
      }
      const line = this.#partial + piece;
      this.#partial = '';
      if (line.length > this.#maxLine) {
        this.droppedLines++;
        continue;
      }
      const block = this.#line(line.endsWith('\r') ? line.slice(0, -1) : line);
      if (block) out.push(block);
    }
    if (!this.#skipping) {
      this.#partial += text.slice(start);
      if (this.#partial.length > this.#maxLine) {
        this.droppedLines++;
        this.#partial = '';
        this.#skipping = true;
      }
    }
    return out;
  }

  #line(line: string): Progress | undefined {
    const eq = line.indexOf('=');
    if (eq <= 0) return undefined;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'progress') {
      const b = this.#block;
      this.#block = {};
      return {
        frame: b.frame,
        fps: b.fps,
        outTimeUs: b.outTimeUs,
        speed: b.speed,
        dropFrames: b.dropFrames,
        dupFrames: b.dupFrames,
        totalSizeBytes: b.totalSizeBytes,
        progress: value === 'end' ? 'end' : 'continue',
      };
    }
    const field = (KEYS as Record<string, Field | undefined>)[key];
    if (field === undefined) return undefined;
    // 'N/A' (no timestamp yet, size unknown) and garbage parse to NaN: left out, so undefined.
    const n = Number(field === 'speed' && value.endsWith('x') ? value.slice(0, -1) : value);
    if (value !== '' && Number.isFinite(n)) this.#block[field] = n;
    else delete this.#block[field];
    return undefined;
  }
}

export interface SpeedMeterOptions {
  /** Speed is measured over about this much wall time. Default 3000. */
  readonly windowMs?: number;
  /** Samples kept at most (a bound for callers that sample very often). Default 1000. */
  readonly maxSamples?: number;
}

/**
 * Encoding speed over a sliding window: Δout_time / Δwall. FFmpeg's own `speed` is averaged since it
 * started, so after an hour at 1.0x a stall shows as 0.99x; a live transcoder falling behind must be seen
 * within seconds. The oldest sample kept is the newest one at or before the window's start, so once there
 * is enough history the measured span is at least windowMs.
 */
export class SpeedMeter {
  readonly #windowMs: number;
  readonly #maxSamples: number;
  #wall: number[] = [];
  #out: number[] = [];

  constructor(options: SpeedMeterOptions = {}) {
    this.#windowMs = options.windowMs ?? 3000;
    this.#maxSamples = options.maxSamples ?? 1000;
  }

  /** A sample: wall clock in ms, FFmpeg's out_time in µs. Output time going back (a restart) starts over. */
  add(wallMs: number, outTimeUs: number): void {
    const n = this.#wall.length;
    if (n > 0 && (outTimeUs < this.#out[n - 1] || wallMs < this.#wall[n - 1])) this.reset();
    this.#wall.push(wallMs);
    this.#out.push(outTimeUs);
    const from = wallMs - this.#windowMs;
    let drop = 0;
    while (drop + 1 < this.#wall.length && this.#wall[drop + 1] <= from) drop++;
    drop = Math.max(drop, this.#wall.length - this.#maxSamples);
    if (drop > 0) {
      this.#wall.splice(0, drop);
      this.#out.splice(0, drop);
    }
  }

  /** Output seconds per wall second over the window; undefined until two samples span some wall time. */
  speed(): number | undefined {
    const n = this.#wall.length;
    if (n < 2) return undefined;
    const dWall = this.#wall[n - 1] - this.#wall[0];
    if (dWall <= 0) return undefined;
    return (this.#out[n - 1] - this.#out[0]) / 1000 / dWall;
  }

  reset(): void {
    this.#wall = [];
    this.#out = [];
  }
}

/** The arguments every FFmpeg run of ours starts with: no banner, no stdin, warnings only, no stats line. */
export function quietArgs(): string[] {
  return ['-hide_banner', '-nostdin', '-loglevel', 'level+warning', '-nostats'];
}

/** quietArgs, and progress blocks on pipe `fd` every `periodS` seconds. */
export function quietProgressArgs(fd: number, periodS: number): string[] {
  return [...quietArgs(), '-progress', `pipe:${fd}`, '-stats_period', String(periodS)];
}
