/**
 * A current thumbnail for every live stream, cut about every intervalMs from the newest keyframe of its
 * lowest rendition (see live-keyframes.ts) by one short FFmpeg run, and kept in memory for the API to serve.
 *
 * Bounded throughout: one image per stream (the newest replaces the one before), at most maxBytes each;
 * no new cut of a stream while its previous FFmpeg runs, and at most maxConcurrent FFmpeg runs at once;
 * no cut when the keyframe is the one cut last time (a stream whose publisher is away). Requests never
 * cause a cut: they read the last image. A stream that ends loses its image at once (its FFmpeg, if one
 * is running, is stopped); what stays of a run is the VOD poster the recorder makes.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError, monotonicNow, type Logger } from '../../core/index.js';
import { execTool } from '../../process/index.js';
import type { KeyframeClip, LiveKeyframes } from './live-keyframes.js';

/** Told when a live stream starts and ends (stream/StreamHub). */
export interface LiveStreamEvents {
  on(event: 'stream-start' | 'stream-end', listener: (streamId: string) => void): unknown;
  off(event: 'stream-start' | 'stream-end', listener: (streamId: string) => void): unknown;
}

/** Turns a keyframe clip into image bytes; rejects on failure. The default runs FFmpeg (cutWithFfmpeg). */
export type ThumbnailCutter = (clip: KeyframeClip, signal: AbortSignal) => Promise<Buffer>;

export interface LiveThumbnailsOptions {
  readonly streams: LiveStreamEvents;
  readonly keyframes: LiveKeyframes;
  readonly logger: Logger;
  /** FFmpeg for the default cutter (required unless `cut` is given). */
  readonly ffmpegPath?: string;
  /** How often a stream's thumbnail is cut again. Default 10 s. */
  readonly intervalMs?: number;
  /** Largest image kept; a larger one is dropped (and counted). Default 256 KiB. */
  readonly maxBytes?: number;
  /** FFmpeg runs at once over every stream. Default 2. */
  readonly maxConcurrent?: number;
  /** Largest keyframe clip handed to FFmpeg (init + part or segment). Default 16 MiB. */
  readonly maxClipBytes?: number;
  readonly cut?: ThumbnailCutter;
}

export interface LiveThumbnail {
  readonly bytes: Buffer;
  readonly contentType: 'image/jpeg';
  /** Strong ETag (a hash of the bytes). */
  readonly etag: string;
  /** When it was cut, ms since epoch. */
  readonly cutAt: number;
}

export interface LiveThumbnailCounters {
  /** Images made. */
  cuts: number;
  /** FFmpeg runs that failed or timed out. */
  failures: number;
  /** Refreshes skipped: the keyframe was the one cut last time. */
  unchanged: number;
  /** Due refreshes put off for a tick (about a second) because maxConcurrent FFmpeg runs were busy. */
  deferred: number;
  /** Images over maxBytes, or clips over maxClipBytes, not kept. */
  oversized: number;
}

/** A cut image over maxBytes (counted, not kept). */
export class ThumbnailTooLargeError extends AppError {
  constructor(size: number, maxBytes: number) {
    super('E_LIMIT_EXCEEDED', `thumbnail of ${size} bytes is over ${maxBytes}`);
    this.name = 'ThumbnailTooLargeError';
  }
}

export const DEFAULT_LIVE_THUMBNAIL_INTERVAL_MS = 10_000;
const DEFAULT_MAX_BYTES = 256 * 1024;
const DEFAULT_MAX_CLIP_BYTES = 16 * 1024 * 1024;
/** One FFmpeg decoding one frame of a small clip: anything longer is stuck. */
const CUT_TIMEOUT_MS = 10_000;
/** How soon a stream without a keyframe yet (just started) is looked at again. */
const RETRY_MS = 1000;
/** Streams tracked at once; the hub's ingest limits keep the real number far below. */
const MAX_STREAMS = 10_000;

interface Entry {
  image: LiveThumbnail | undefined;
  /** Not before this (ms since epoch) is the next cut tried. */
  dueAt: number;
  /** Set while a refresh (keyframe lookup and FFmpeg) runs. */
  running: AbortController | undefined;
  lastClip: string | undefined;
  failures: number;
}

export class LiveThumbnails {
  readonly counters: LiveThumbnailCounters = { cuts: 0, failures: 0, unchanged: 0, deferred: 0, oversized: 0 };
  readonly #opts: LiveThumbnailsOptions;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #maxBytes: number;
  readonly #maxConcurrent: number;
  readonly #entries = new Map<string, Entry>();
  readonly #work = new Set<Promise<void>>();
  readonly #onStart = (streamId: string) => this.#track(streamId);
  readonly #onEnd = (streamId: string) => this.#forget(streamId);
  #cut: ThumbnailCutter | undefined;
  #dir: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #active = 0;
  #started = false;
  #closing: Promise<void> | undefined;

  constructor(opts: LiveThumbnailsOptions) {
    if (!opts.cut && !opts.ffmpegPath) throw new AppError('E_INTERNAL', 'LiveThumbnails needs ffmpegPath or cut');
    this.#opts = opts;
    this.#log = opts.logger;
    this.#intervalMs = opts.intervalMs ?? DEFAULT_LIVE_THUMBNAIL_INTERVAL_MS;
    this.#maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#maxConcurrent = opts.maxConcurrent ?? 2;
    this.#cut = opts.cut;
  }

  /** Follows the streams that start from now on (start it before ingest) and cuts on a timer. */
  async start(): Promise<void> {
    if (this.#started || this.#closing) return;
    this.#started = true;
    if (!this.#cut) {
      const dir = await mkdtemp(join(tmpdir(), 'livepack-thumbs-'));
      this.#dir = dir;
      const ffmpeg = this.#opts.ffmpegPath!;
      let n = 0;
      this.#cut = (clip, signal) => cutWithFfmpeg(ffmpeg, clip, join(dir, String(n++)), this.#maxBytes, signal);
    }
    this.#opts.streams.on('stream-start', this.#onStart);
    this.#opts.streams.on('stream-end', this.#onEnd);
    this.#timer = setInterval(() => this.#tick(), Math.min(RETRY_MS, this.#intervalMs));
    this.#timer.unref();
  }

  /** How often a stream's thumbnail is cut again. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** The last image cut of a live stream; never waits, never cuts. */
  get(streamId: string): LiveThumbnail | undefined {
    return this.#entries.get(streamId)?.image;
  }

  has(streamId: string): boolean {
    return this.#entries.get(streamId)?.image !== undefined;
  }

  /** Streams followed now, and refreshes (keyframe lookup and FFmpeg) in progress. */
  stats(): { streams: number; running: number } {
    return { streams: this.#entries.size, running: this.#active };
  }

  #track(streamId: string): void {
    this.#forget(streamId);
    if (this.#entries.size >= MAX_STREAMS) return;
    this.#entries.set(streamId, { image: undefined, dueAt: 0, running: undefined, lastClip: undefined, failures: 0 });
  }

  #forget(streamId: string): void {
    const e = this.#entries.get(streamId);
    if (!e) return;
    this.#entries.delete(streamId);
    e.running?.abort(new AppError('E_CLOSED', 'stream ended'));
  }

  #tick(): void {
    const now = monotonicNow();
    const due = [...this.#entries].filter(([, e]) => !e.running && now >= e.dueAt);
    // Over the FFmpeg limit, the stream that has waited longest goes first: none is starved.
    due.sort((x, y) => x[1].dueAt - y[1].dueAt);
    for (const [id, e] of due) {
      if (this.#active >= this.#maxConcurrent) {
        this.counters.deferred++;
        continue;
      }
      const p = this.#refresh(id, e);
      this.#work.add(p);
      void p.finally(() => this.#work.delete(p));
    }
  }

  async #refresh(streamId: string, e: Entry): Promise<void> {
    const ac = new AbortController();
    e.running = ac;
    this.#active++;
    const startedAt = monotonicNow();
    // Whatever happens below, not again before the interval (unless there is no keyframe yet).
    e.dueAt = startedAt + this.#intervalMs;
    try {
      const clip = await this.#opts.keyframes.latest(streamId);
      if (ac.signal.aborted) return;
      if (!clip) {
        e.dueAt = startedAt + Math.min(RETRY_MS, this.#intervalMs);
        return;
      }
      if (clip.id === e.lastClip) {
        this.counters.unchanged++;
        return;
      }
      // Tried once, whatever comes of it: a keyframe FFmpeg cannot cut is not tried again.
      e.lastClip = clip.id;
      if (clip.init.byteLength + clip.media.byteLength > (this.#opts.maxClipBytes ?? DEFAULT_MAX_CLIP_BYTES)) {
        this.counters.oversized++;
        return;
      }
      const bytes = await this.#cut!(clip, ac.signal);
      // The stream ended meanwhile: nothing of it is kept.
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted while the cut ran
      if (ac.signal.aborted || this.#entries.get(streamId) !== e) return;
      if (bytes.byteLength > this.#maxBytes) {
        this.counters.oversized++;
        return;
      }
      e.image = {
        bytes,
        contentType: 'image/jpeg',
        etag: `"${createHash('sha1').update(bytes).digest('base64url').slice(0, 20)}"`,
        cutAt: Date.now(),
      };
      e.failures = 0;
      this.counters.cuts++;
    } catch (err) {
      if (ac.signal.aborted) return;
      if (err instanceof ThumbnailTooLargeError) {
        this.counters.oversized++;
        return;
      }
      this.counters.failures++;
      // Logged once per stream until it succeeds again: a stream FFmpeg cannot decode fails every interval.
      if (e.failures++ === 0) this.#log.warn({ err, stream: streamId }, 'live thumbnail: could not cut a frame');
    } finally {
      e.running = undefined;
      this.#active--;
    }
  }

  /** Stops following streams, stops FFmpeg runs in progress and waits for them, drops every image. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      this.#opts.streams.off('stream-start', this.#onStart);
      this.#opts.streams.off('stream-end', this.#onEnd);
      for (const id of [...this.#entries.keys()]) this.#forget(id);
      while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
      if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#closing;
  }
}

/**
 * One FFmpeg run: the clip as a file (init + one part: a few hundred ms of media), its first video frame
 * scaled into 640x640 and written as a JPEG. `base` is a path without extension, unique per run.
 */
export async function cutWithFfmpeg(
  ffmpegPath: string,
  clip: KeyframeClip,
  base: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Buffer> {
  const input = `${base}.mp4`;
  const output = `${base}.jpg`;
  try {
    await writeFile(input, [clip.init, clip.media]);
    const r = await execTool(
      ffmpegPath,
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-nostdin',
        // One frame of a small picture: threads would cost more to start than they save.
        '-threads',
        '1',
        '-i',
        input,
        '-map',
        '0:v:0',
        '-frames:v',
        '1',
        '-vf',
        "scale=w='min(640,iw)':h='min(640,ih)':force_original_aspect_ratio=decrease:force_divisible_by=2",
        '-q:v',
        '5',
        '-f',
        'image2',
        '-update',
        '1',
        '-y',
        output,
      ],
      { timeoutMs: CUT_TIMEOUT_MS, signal, maxBuffer: 64 * 1024 },
    );
    if (r.code !== 0) throw new AppError('E_INTERNAL', `ffmpeg exited with ${r.code}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    const size = (await stat(output)).size;
    // Not read into memory: the caller would only drop it.
    if (size > maxBytes) throw new ThumbnailTooLargeError(size, maxBytes);
    return await readFile(output);
  } finally {
    await Promise.all([rm(input, { force: true }), rm(output, { force: true })]);
  }
}
