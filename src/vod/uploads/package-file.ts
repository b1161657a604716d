/**
 * An uploaded file to a VOD asset: FFmpeg -> ABR ladder -> the same packager the live path uses (in file
 * mode) -> storage. FFmpeg decodes the file once and writes one FLV per rung to a pipe; each pipe is read
 * into MediaFrames (FLV reader + assembler, as for the live transcoder's output) and cut by a Segmenter
 * into CMAF segments, which go to storage as they complete. Then the playlists (publishVod) and a poster.
 *
 * VOD segments target 4 s (live: 2 s): half the objects and playlist lines, and as quick to start on a VOD
 * player. Keyframes come every 2 s in every rung (file-ladder.ts), so segments are cut at the same instants
 * in every rung. A segment is one fragment (part target = segment target): nobody fetches VOD parts.
 *
 * Each run names its objects with a fresh tag, so a retry never overwrites (or is confused with) what an
 * earlier attempt left; the caller clears the video's prefix before a run. A run that fails waits (a
 * while) for the segment writes it started, so none lands after the caller cleaned up.
 */
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { codecString, DEFAULT_LADDER, type LadderRung, type Logger, type TrackSet } from '../../core/index.js';
import type { RenditionInfo, VideoSegmentRecord } from '../../catalog/index.js';
import { decodeAmf0, DEFAULT_ASSEMBLER_OPTIONS, FlvReader, MediaAssembler } from '../../flv/index.js';
import { Segmenter, type PartOut, type SegmenterSink } from '../../packager/index.js';
import type { ObjectStore } from '../../storage/index.js';
import { assetKey, CACHE_MEDIA, contentTypeOf, makePoster, publishVod } from '../assets.js';
import { inputBytesRead, runFfmpeg } from '../../process/index.js';
import { buildFileArgs, encodeTimeoutMs, KEYFRAME_INTERVAL_S, planFileRungs } from './file-ladder.js';
import { BadMediaError, probeFile, type ProbeResult } from './probe.js';

export interface PackageFileOptions {
  /** A local file. */
  readonly input: string;
  readonly videoId: string;
  readonly store: ObjectStore;
  readonly ffmpegPath: string;
  /** Default 'veryfast'. */
  readonly x264Preset?: string;
  /** Rungs below the top one come from it. Default DEFAULT_LADDER. */
  readonly ladder?: readonly LadderRung[];
  readonly logger: Logger;
  /** Aborting kills FFmpeg; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * Encoding progress 0..1: FFmpeg's output position over the probed duration, or, for a file that does
   * not say how long it is, the share of its bytes FFmpeg has read (where the OS tells; else none).
   */
  readonly onProgress?: (fraction: number) => void;
  /**
   * Called once everything is encoded and stored, just before the playlists and the poster are written
   * (objects at fixed names, unlike the tagged segments); throwing stops the run there. The VOD worker
   * checks that it still holds the job, so a worker that lost it never overwrites the new owner's.
   */
  readonly beforePublish?: () => Promise<void>;
  /** Default 4000. */
  readonly segmentTargetMs?: number;
  /** Longer files are refused: by their declared duration, and by the time decoded so far. Default 6 h. */
  readonly maxDurationSeconds?: number;
  /** FFmpeg may take this many times the file's duration (plus two minutes; encodeTimeoutMs). Default 10. */
  readonly timeoutFactor?: number;
  /** FFmpeg printing no progress this long is killed. Default 120 s. */
  readonly stallTimeoutMs?: number;
  /** Segment bytes of one rung waiting for storage before FFmpeg is made to wait. Default 32 MiB. */
  readonly maxPendingBytes?: number;
}

export interface PackagedFile {
  /** Seconds of the top rendition. */
  readonly duration: number;
  readonly renditions: RenditionInfo[];
  readonly thumbnail: boolean;
  /** Every segment stored, by rendition; what video_segments rows would hold. */
  readonly segments: VideoSegmentRecord[];
  readonly probe: ProbeResult;
}

/** Largest FLV tag read back from FFmpeg (one encoded frame). */
const MAX_TAG_BYTES = 16 * 1024 * 1024;
/** Segment bytes of one rung waiting for storage before its pipe is paused (FFmpeg then waits). */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;
const MAX_DIMENSION = 8192;
/** A file decoding to less than this share of the duration it declares is truncated, not a short video. */
const MIN_DECODED_SHARE = 0.9;
/** A failed run waits this long at most for the segment writes it started. */
const WRITE_DRAIN_MS = 10_000;
/** Progress by bytes read stops short of the end: reading all of a file is not encoding all of it. */
const MAX_BYTES_PROGRESS = 0.99;

/** One rung's way from FFmpeg's FLV pipe to stored segments. */
class RungOutput implements SegmenterSink {
  readonly rung: LadderRung;
  readonly segments: VideoSegmentRecord[] = [];
  tracks: TrackSet = {};
  readonly #o: PackageFileOptions;
  readonly #tag: string;
  readonly #flv = new FlvReader({ maxTagBytes: MAX_TAG_BYTES });
  readonly #assembler: MediaAssembler;
  readonly #segmenter: Segmenter;
  #pipe: Readable | undefined;
  #inits = 0;
  #initUri = '';
  #discontinuity = false;
  #parts: Uint8Array[] = [];
  #partsDuration = 0;
  #writes: Promise<void> = Promise.resolve();
  #pending = 0;
  #failed: Error | undefined;
  #onFail: (err: Error) => void = () => {};

  constructor(rung: LadderRung, opts: PackageFileOptions, tag: string, segmentTargetMs: number) {
    this.rung = rung;
    this.#o = opts;
    this.#tag = tag;
    this.#segmenter = new Segmenter({ partTargetMs: segmentTargetMs, segmentTargetMs }, this);
    this.#assembler = new MediaAssembler(
      { setTracks: (t) => this.#segmenter.startSession(t), write: (f) => this.#segmenter.push(f) },
      DEFAULT_ASSEMBLER_OPTIONS,
    );
  }

  /** Reads FFmpeg's FLV for this rung; `fail` is told of anything that must stop the run. */
  attach(pipe: Readable, fail: (err: Error) => void): void {
    this.#pipe = pipe;
    this.#onFail = fail;
    pipe.on('data', (chunk: Buffer) => {
      if (this.#failed) return;
      try {
        for (const tag of this.#flv.push(chunk)) {
          if (tag.type === 9) this.#assembler.video(tag.timestamp, tag.body);
          else if (tag.type === 8) this.#assembler.audio(tag.timestamp, tag.body);
          else if (tag.type === 18) this.#assembler.metadata(decodeAmf0(tag.body)[1]);
        }
      } catch (err) {
        this.#fail(new Error(`rung ${this.rung.name}: unreadable FLV from FFmpeg: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /** After FFmpeg ended: the last segment, then every write. */
  async finish(): Promise<void> {
    if (!this.#failed) this.#segmenter.endSession();
    await this.#writes;
    if (this.#failed) throw this.#failed;
  }

  /** The run failed: no write is started any more; resolves when the one under way (if any) has ended. */
  abandon(reason: Error): Promise<void> {
    this.#failed ??= reason;
    return this.#writes;
  }

  // ---- SegmenterSink ----

  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void {
    this.tracks = tracks;
    this.#initUri = `${this.#tag}-init${this.#inits++}.mp4`;
    this.#discontinuity = discontinuity;
    this.#write(this.#initUri, bytes);
  }

  part(part: PartOut): void {
    this.#parts.push(part.bytes);
    this.#partsDuration += part.duration;
  }

  segmentEnd(): void {
    const bytes = Buffer.concat(this.#parts);
    const msn = this.segments.length;
    const uri = `${this.#tag}-${String(msn).padStart(5, '0')}.m4s`;
    this.segments.push({
      rendition: this.rung.name,
      msn,
      uri,
      initUri: this.#initUri,
      duration: this.#partsDuration,
      discontinuity: this.#discontinuity,
      gap: false,
      bytes: bytes.byteLength,
      programDateTime: null,
    });
    this.#discontinuity = false;
    this.#parts = [];
    this.#partsDuration = 0;
    this.#write(uri, bytes);
  }

  info(): Omit<RenditionInfo, 'bandwidth' | 'averageBandwidth'> {
    const { video, audio } = this.tracks;
    return {
      name: this.rung.name,
      codecs: [video, audio].flatMap((t) => (t ? [codecString(t)] : [])).join(','),
      width: video?.width || undefined,
      height: video?.height || undefined,
      frameRate: video?.frameRate ? Math.round(video.frameRate * 1000) / 1000 : undefined,
    };
  }

  /** Writes in order; past MAX_PENDING_BYTES the pipe pauses, so FFmpeg waits for storage. */
  #write(file: string, bytes: Uint8Array): void {
    const size = bytes.byteLength;
    this.#pending += size;
    const maxPending = this.#o.maxPendingBytes ?? MAX_PENDING_BYTES;
    if (this.#pending > maxPending) this.#pipe?.pause();
    const key = assetKey(this.#o.videoId, `${this.rung.name}/${file}`);
    this.#writes = this.#writes.then(async () => {
      if (this.#failed) return;
      try {
        await this.#o.store.put(key, Buffer.from(bytes.buffer, bytes.byteOffset, size), {
          contentType: contentTypeOf(file),
          cacheControl: CACHE_MEDIA,
        });
      } catch (err) {
        this.#fail(err as Error);
      } finally {
        this.#pending -= size;
        if (this.#pending <= maxPending / 2) this.#pipe?.resume();
      }
    });
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = err;
    this.#pipe?.resume(); // keep draining so FFmpeg can be ended
    this.#onFail(err);
  }
}

/** Refuses what the probe already shows cannot (or must not) be packaged. */
function checkProbe(
  probe: ProbeResult,
  maxDurationSeconds: number,
): asserts probe is ProbeResult & { video: NonNullable<ProbeResult['video']> } {
  const v = probe.video;
  if (!v) throw new BadMediaError(probe.audio ? 'no video stream: the file holds only audio' : 'no video stream in the file');
  if (v.width > MAX_DIMENSION || v.height > MAX_DIMENSION)
    throw new BadMediaError(`video of ${v.width}x${v.height} is larger than ${MAX_DIMENSION} pixels on a side`);
  if (probe.duration > maxDurationSeconds) {
    throw new BadMediaError(`the video lasts ${Math.round(probe.duration)} s, longer than the limit of ${maxDurationSeconds} s`);
  }
}

const tooLong = (maxDurationSeconds: number) => new BadMediaError(`the video lasts longer than the limit of ${maxDurationSeconds} s`);

/** `p`, or the signal's reason as soon as it is aborted. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Runs FFmpeg over the file and stores every rung's segments; rejects on the first failure. */
async function encode(
  o: PackageFileOptions,
  probe: ProbeResult & { video: NonNullable<ProbeResult['video']> },
  outputs: RungOutput[],
  log: Logger,
): Promise<void> {
  const maxDurationSeconds = o.maxDurationSeconds ?? 6 * 3600;
  const durationUs = probe.duration * 1e6;
  // Without a declared duration, progress is the share of the file read so far.
  const size = durationUs > 0 || !o.onProgress ? 0 : (await stat(o.input)).size;
  let reading = false;
  let ended = false;
  let stop: (reason: Error) => void = () => {};
  const progress = (us: number, pid: number) => {
    // The declared duration was checked already; this also holds a file that does not say, or lies.
    if (us > maxDurationSeconds * 1e6) return stop(tooLong(maxDurationSeconds));
    if (durationUs > 0) return o.onProgress?.(Math.min(1, us / durationUs));
    if (size === 0 || reading) return;
    reading = true;
    inputBytesRead(pid)
      .then((bytes) => {
        reading = false;
        if (!ended && bytes !== undefined) o.onProgress?.(Math.min(MAX_BYTES_PROGRESS, bytes / size));
      })
      .catch((err: unknown) => log.debug({ err }, 'progress not reported'));
  };
  try {
    await runFfmpeg({
      ffmpegPath: o.ffmpegPath,
      args: buildFileArgs({ input: o.input, probe, rungs: outputs.map((out) => out.rung), x264Preset: o.x264Preset ?? 'veryfast' }),
      extraFds: 1 + outputs.length,
      logger: log,
      signal: o.signal,
      timeoutMs: encodeTimeoutMs(probe.duration, { maxDurationSeconds, timeoutFactor: o.timeoutFactor ?? 10 }),
      stallTimeoutMs: o.stallTimeoutMs ?? 120_000,
      onProgress: progress,
      onPipes: (pipes, kill) => {
        stop = kill;
        outputs.forEach((out, i) => out.attach(pipes[i], kill));
      },
    });
  } finally {
    ended = true;
  }
  // FFmpeg is done; the last segments may still be on their way to storage (which may hang: abort wins).
  await untilAborted(Promise.all(outputs.map((out) => out.finish())), o.signal);
}

/** After a failure: lets the writes under way end (up to WRITE_DRAIN_MS), so none lands after clean-up. */
async function abandon(outputs: readonly RungOutput[], reason: Error, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const drained = Promise.all(outputs.map((out) => out.abandon(reason))).then(() => true);
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), WRITE_DRAIN_MS)));
  const ok = await Promise.race([drained, late]);
  clearTimeout(timer);
  if (!ok) log.warn({ waitedMs: WRITE_DRAIN_MS }, 'segment writes still under way after the run failed; what they store is left behind');
}

/**
 * Packages `input` as the VOD asset of `videoId` and publishes it (playlists, poster). Throws BadMediaError
 * for input that cannot become a video (retrying will not help), the signal's reason on abort, and other
 * errors (FFmpeg killed, storage down) for failures worth a retry. When it throws, no write it started is
 * still under way (unless storage hung past WRITE_DRAIN_MS, which is logged).
 */
export async function packageFile(o: PackageFileOptions): Promise<PackagedFile> {
  const log = o.logger.child({ video: o.videoId });
  const segmentTargetMs = o.segmentTargetMs ?? 4000;
  const maxDurationSeconds = o.maxDurationSeconds ?? 6 * 3600;
  const probe = await probeFile(o.input, o.ffmpegPath, o.signal);
  checkProbe(probe, maxDurationSeconds);
  const rungs = planFileRungs(probe.video, o.ladder ?? DEFAULT_LADDER);
  log.info({ probe, rungs: rungs.map((r) => r.name) }, 'packaging an upload');
  const tag = randomBytes(4).toString('hex');
  const outputs = rungs.map((r) => new RungOutput(r, o, tag, segmentTargetMs));
  try {
    await encode(o, probe, outputs, log);
  } catch (err) {
    await abandon(outputs, err instanceof Error ? err : new Error(String(err)), log);
    throw err;
  }

  const top = outputs[0];
  const decoded = top.segments.reduce((n, s) => n + s.duration, 0);
  if (top.segments.length === 0 || !top.tracks.video) throw new BadMediaError('no video frame could be decoded from the file');
  if (decoded > maxDurationSeconds + KEYFRAME_INTERVAL_S) throw tooLong(maxDurationSeconds);
  // Against the video stream's own duration: the container's is its longest stream's, and audio running
  // on after the picture is not a truncated file.
  const declared = probe.videoDuration;
  if (declared > 0 && decoded < declared * MIN_DECODED_SHARE - 1) {
    throw new BadMediaError(`truncated: only ${decoded.toFixed(1)} s of the ${declared.toFixed(1)} s the file declares could be decoded`);
  }
  o.signal?.throwIfAborted();
  await o.beforePublish?.();
  const published = await publishVod(
    o.store,
    o.videoId,
    outputs.map((out) => ({ info: out.info(), segments: out.segments })),
  );
  let thumbnail = false;
  try {
    o.signal?.throwIfAborted();
    thumbnail = await makePoster(o.store, o.ffmpegPath, o.videoId, top.rung.name, top.segments[0]);
  } catch (err) {
    if (o.signal?.aborted) throw o.signal.reason;
    log.warn({ err }, 'no poster: FFmpeg could not make one');
  }
  log.info({ duration: published.duration, renditions: published.renditions.length }, 'upload packaged');
  return {
    duration: published.duration,
    renditions: published.renditions,
    thumbnail,
    segments: outputs.flatMap((out) => out.segments),
    probe,
  };
}
