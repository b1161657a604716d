import { once } from 'node:events';
import { decodeAmf0, FlvReader, FlvWriter, MediaAssembler, DEFAULT_ASSEMBLER_OPTIONS } from '../flv/index.js';
import type { LadderRung, MediaFrame, TrackSet, VideoCodec } from '../core/index.js';
import { ProgressParser, type ChildHandle, type Supervisor } from '../process/index.js';
import type { Publisher } from '../stream/index.js';
import { FIRST_RUNG_FD, PROGRESS_FD } from './args.js';
import { FIT_TIMING } from './fit.js';

/** Largest FLV tag read back from FFmpeg (one encoded frame). */
const MAX_TAG_BYTES = 16 * 1024 * 1024;
/**
 * Source audio kept for a rung that starts producing, so its first segment has its audio (ticks): 3 s
 * beyond the longest the source's first frames are held for the first plan (see FrameHold).
 */
const AUDIO_REPLAY_TICKS = (FIT_TIMING.holdMaxMs + 1000 + 3000) * 90;
/** Waiting for FFmpeg to take more input longer than this means it is stuck; the frame is dropped. */
const DRAIN_WAIT_MS = 2000;

/** One FFmpeg child's pipes and the rung sessions it feeds. */
export interface Run {
  /** The supervisor this child belongs to: a stopped supervisor's late events touch only its own run. */
  readonly sup: Supervisor;
  readonly handle: ChildHandle;
  readonly writer: FlvWriter;
  readonly rungs: readonly LadderRung[];
  readonly publishers: Map<string, Publisher>;
  readonly producing: Set<string>;
  /** A new FFmpeg starts decoding at a keyframe: frames before it are not written. */
  needKeyframe: boolean;
  lastWrittenMs: number;
  /** The end of frames written at once from a hold (ms after the writer's base): FFmpeg's backlog to catch up on. */
  backlogUntilMs: number;
  /** When FFmpeg last reported progress (spawn time until it does). */
  lastProgressAt: number;
  /** When a frame was last written to FFmpeg. */
  lastWriteAt: number;
  /** The source's latest audio frames, replayed to a rung when its first video frame comes out. */
  recentAudio: MediaFrame[];
  /** Rungs that have their first video frame out and get every source audio frame as it comes. */
  readonly audioFed: Set<string>;
  /** Per rung: the source time (ms after the writer's base) of the last frame it produced. */
  readonly lastOutputMs: Map<string, number>;
  ended: boolean;
}

export interface RunHooks {
  /** The rung's publisher in the rung hub. */
  readonly publisher: (rung: LadderRung) => Publisher;
  /** FFmpeg's out_time, as reported on the progress pipe. */
  readonly progress: (outTimeUs: number | undefined) => void;
  /** Every rung produced its first frame. */
  readonly allProducing: () => void;
  /** A rung's pipe carried FLV we cannot read. */
  readonly unreadable: (err: unknown, rung: LadderRung) => void;
}

/**
 * Wires a freshly spawned FFmpeg: the FLV header on its stdin (video only: each rung gets the source's
 * audio from feedAudio), its progress pipe, and one FLV reader per rung pipe whose frames are published
 * with the source's timestamps.
 */
export function openRun(sup: Supervisor, handle: ChildHandle, rungs: readonly LadderRung[], tracks: TrackSet, hooks: RunHooks): Run {
  const run: Run = {
    sup,
    handle,
    writer: new FlvWriter(),
    rungs,
    publishers: new Map(),
    producing: new Set(),
    needKeyframe: true,
    lastWrittenMs: 0,
    backlogUntilMs: 0,
    lastProgressAt: performance.now(),
    lastWriteAt: 0,
    recentAudio: [],
    audioFed: new Set(),
    lastOutputMs: new Map(),
    ended: false,
  };
  handle.stdin.on('error', () => {}); // EPIPE when FFmpeg dies: its exit is what we act on
  handle.stdin.write(run.writer.header({ video: tracks.video }));

  const progress = new ProgressParser();
  handle.extra[PROGRESS_FD - 3].on('data', (chunk: Buffer) => {
    for (const p of progress.push(chunk)) hooks.progress(p.outTimeUs);
  });
  rungs.forEach((rung, i) => {
    const pub = hooks.publisher(rung);
    run.publishers.set(rung.name, pub);
    const flv = new FlvReader({ maxTagBytes: MAX_TAG_BYTES });
    const assembler = new MediaAssembler(
      {
        setTracks: (t) => pub.setTracks({ video: t.video, audio: tracks.audio }),
        write: (f) => {
          // FFmpeg ran with -copyts on timestamps relative to the writer's base: add it back.
          const base = run.writer.base ?? 0;
          pub.write({ ...f, dts: f.dts + base, pts: f.pts + base });
          run.lastOutputMs.set(rung.name, f.dts / 90);
          if (!run.audioFed.has(rung.name)) {
            // From its first video frame on, the rung gets the source's audio; the audio of the last
            // seconds first (the packager drops what is older than the rung's first keyframe).
            run.audioFed.add(rung.name);
            for (const a of run.recentAudio) pub.write(a);
          }
          if (!run.producing.has(rung.name)) {
            run.producing.add(rung.name);
            if (run.producing.size === run.rungs.length) hooks.allProducing();
          }
        },
      },
      DEFAULT_ASSEMBLER_OPTIONS,
    );
    handle.extra[FIRST_RUNG_FD - 3 + i].on('data', (chunk: Buffer) => {
      if (run.ended) return;
      try {
        for (const tag of flv.push(chunk)) {
          if (tag.type === 9) assembler.video(tag.timestamp, tag.body);
          else if (tag.type === 18) assembler.metadata(decodeAmf0(tag.body)[1]);
        }
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the frames pushed above may end the run
        if (!run.ended) hooks.unreadable(err, rung);
      }
    });
  });
  return run;
}

/** Write one source video frame to FFmpeg (from a keyframe on); waits while FFmpeg does not take input. */
export async function writeVideo(run: Run, frame: MediaFrame, codec: VideoCodec): Promise<void> {
  const stdin = run.handle.stdin;
  if (stdin.destroyed || !stdin.writable) return;
  if (run.needKeyframe) {
    if (!frame.keyframe) return;
    run.needKeyframe = false;
  }
  const tag = run.writer.frame(frame, codec);
  run.lastWrittenMs = Math.max(run.lastWrittenMs, (frame.dts - (run.writer.base ?? frame.dts)) / 90);
  run.lastWriteAt = performance.now();
  if (stdin.write(tag)) return;
  // FFmpeg is not taking input as fast as it comes: wait (the hub reader queues, then drops to the next
  // keyframe) rather than buffer without bound here.
  const timer = AbortSignal.timeout(DRAIN_WAIT_MS);
  await once(stdin, 'drain', { signal: timer }).catch(() => {});
}

/**
 * Source audio goes straight to every rung that is producing (the same frames as the source rendition,
 * on the same clock as the rungs' video, which FFmpeg wrote with the source's timestamps), and is kept
 * for a few seconds for rungs still starting.
 */
export function feedAudio(run: Run, frame: MediaFrame): void {
  for (const name of run.audioFed) run.publishers.get(name)?.write(frame);
  const recent = run.recentAudio;
  if (run.audioFed.size === run.rungs.length) {
    recent.length = 0; // every rung is fed: nothing more to replay
    return;
  }
  recent.push(frame);
  let old = 0;
  while (old < recent.length && frame.dts - recent[old].dts > AUDIO_REPLAY_TICKS) old++;
  if (old > 0) recent.splice(0, old);
}

/** How far the slowest rung's output is behind what FFmpeg was given, in ms of media time. */
export function runLag(run: Run): number | undefined {
  if (run.needKeyframe || run.lastOutputMs.size < run.rungs.length) return undefined;
  return Math.max(0, Math.round(run.lastWrittenMs - Math.min(...run.lastOutputMs.values())));
}

/**
 * The lag to judge FFmpeg's keeping up by: none while it works through the backlog of held frames (that
 * lag is ours, not FFmpeg's; one too slow for real time shows it in its speed meanwhile).
 */
export function judgedLag(run: Run): number | undefined {
  const lag = runLag(run);
  if (lag === undefined || Math.min(...run.lastOutputMs.values()) < run.backlogUntilMs) return undefined;
  return lag;
}

/** The run's rung sessions end (their playlists continue with a gap, then a discontinuity). Idempotent. */
export function closeRun(run: Run, reason: string): void {
  if (run.ended) return;
  run.ended = true;
  for (const pub of run.publishers.values()) pub.close(reason);
}
