/**
 * The ABR ladder of an uploaded file and the one FFmpeg run that encodes it. Unlike the live ladder
 * (livetranscode/args.ts), the source is not a rung of its own: an upload can be any codec and bitrate,
 * so every rung, the top one included, is encoded to H.264 + AAC, and the top rung sits at the source's
 * height (at most 1080). Keyframes are forced at fixed instants in every rung, which is what lines up the
 * rungs' segments (same cut instants, so a player switching rungs lands on the same timeline).
 */
import { DEFAULT_LADDER, rungsFor, type LadderRung } from '../../core/index.js';
import { quietProgressArgs } from '../../process/index.js';
import { INPUT_GUARD_ARGS, type ProbeResult } from './probe.js';

/** FFmpeg's -progress output goes to fd 3; rung i is written to fd 4 + i (as in the live transcoder). */
export const PROGRESS_FD = 3;
export const FIRST_RUNG_FD = 4;
/** The tallest rung an upload is packaged to; a 4K upload is scaled down to it. */
export const MAX_TOP_HEIGHT = 1080;
/** Keyframes are forced every this many seconds in every rung. */
export const KEYFRAME_INTERVAL_S = 2;
/** What FFmpeg may take on top of its share by duration (start-up, the slow first seconds of a file). */
export const ENCODE_GRACE_MS = 120_000;
/** Bitrate floor of a tiny top rung. */
const MIN_TOP_KBPS = 150;
const AUDIO_KBPS = 128;

/** Whole even number of pixels (H.264 4:2:0 needs even sizes), at least 2. */
const even = (n: number) => Math.max(2, Math.floor(n / 2) * 2);

/**
 * The rungs of a source: a top rung at its short side (capped at MAX_TOP_HEIGHT) with a bitrate scaled by
 * pixels from the nearest ladder rung at or above it, plus the ladder's rungs below it. Highest first.
 */
export function planFileRungs(source: { width: number; height: number }, ladder: readonly LadderRung[] = DEFAULT_LADDER): LadderRung[] {
  const short = Math.min(source.width || source.height, source.height);
  const top = even(Math.min(short, MAX_TOP_HEIGHT));
  const sorted = [...ladder].sort((a, b) => b.height - a.height);
  const ref = [...sorted].reverse().find((r) => r.height >= top) ?? sorted.at(0);
  const kbps = ref ? Math.max(MIN_TOP_KBPS, Math.round(ref.videoBitrateKbps * (top / ref.height) ** 2)) : 1000;
  const topRung: LadderRung = {
    name: `${top}p`,
    height: top,
    videoBitrateKbps: kbps,
    maxFrameRate: ref?.maxFrameRate ?? 60,
    encoder: 'libx264',
  };
  // Uploads are encoded in software whatever encoder a live ladder uses: the job queue may run anywhere.
  const below = rungsFor(sorted, { width: top, height: top }).map((r) => ({ ...r, encoder: 'libx264' as const }));
  return [topRung, ...below];
}

/** Frame rate of a rung: the source's, divided by a whole factor until at most the rung's cap. 0 if unknown. */
export function rungFrameRate(sourceFps: number, rung: LadderRung): number {
  if (sourceFps <= 0) return 0;
  const factor = Math.max(1, Math.ceil(sourceFps / rung.maxFrameRate - 0.01));
  return sourceFps / factor;
}

/**
 * How long the FFmpeg run of a file may take in all: `timeoutFactor` times its duration, plus
 * ENCODE_GRACE_MS. A file that does not say how long it is (a browser's MediaRecorder WebM, a raw
 * transport stream: probed duration 0) gets the allowance of the longest accepted file; what bounds it
 * in practice is the stall timeout and the longest duration checked against the decoded time.
 */
export function encodeTimeoutMs(durationSeconds: number, limits: { maxDurationSeconds: number; timeoutFactor: number }): number {
  const seconds = durationSeconds > 0 ? durationSeconds : limits.maxDurationSeconds;
  return ENCODE_GRACE_MS + Math.round(seconds * 1000 * limits.timeoutFactor);
}

export interface FileArgsInput {
  readonly input: string;
  readonly probe: ProbeResult & { readonly video: NonNullable<ProbeResult['video']> };
  readonly rungs: readonly LadderRung[];
  /** libx264 preset. */
  readonly x264Preset: string;
}

/** Filter chain of one rung: frame rate cap (whole factor), scale on the short side, 4:2:0. */
function rungFilter(r: LadderRung, input: FileArgsInput): string {
  const { video } = input.probe;
  const steps: string[] = [];
  const fps = rungFrameRate(video.frameRate, r);
  if (fps > 0 && fps < video.frameRate - 0.01) steps.push(`fps=${fps.toFixed(6)}`);
  const portrait = video.height > video.width;
  steps.push(portrait ? `scale=${r.height}:-2` : `scale=-2:${r.height}`, 'format=yuv420p');
  return steps.join(',');
}

/**
 * One FFmpeg for the whole ladder: the file is decoded once, split, and each rung is encoded and written
 * as FLV to its own pipe, with audio encoded to AAC in each. `-force_key_frames expr:` puts an IDR frame at
 * the first frame at or after every KEYFRAME_INTERVAL_S seconds of presentation time, the same instants in
 * every rung; scene-cut keyframes are off so there are no others.
 */
export function buildFileArgs(input: FileArgsInput): string[] {
  const { rungs, probe } = input;
  const args = quietProgressArgs(PROGRESS_FD, 1);
  // The upload is outside input: read only as a video container, and only as a local file (probe.ts).
  args.push(...INPUT_GUARD_ARGS, '-i', input.input);
  const src = `[0:${probe.video.index}]`;
  const graph =
    rungs.length === 1
      ? `${src}${rungFilter(rungs[0], input)}[v0]`
      : `${src}split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join('')};` +
        rungs.map((r, i) => `[s${i}]${rungFilter(r, input)}[v${i}]`).join(';');
  args.push('-filter_complex', graph);
  const audio = probe.audio;
  rungs.forEach((r, i) => {
    args.push('-map', `[v${i}]`);
    if (audio) args.push('-map', `0:${audio.index}`);
    const k = r.videoBitrateKbps;
    args.push(
      '-c:v',
      'libx264',
      '-preset',
      input.x264Preset,
      '-b:v',
      `${k}k`,
      '-maxrate',
      `${Math.round(k * 1.5)}k`,
      '-bufsize',
      `${2 * k}k`,
    );
    args.push('-g', '100000', '-keyint_min', '1', '-sc_threshold', '0', '-force_key_frames', `expr:gte(t,n_forced*${KEYFRAME_INTERVAL_S})`);
    if (audio) args.push('-c:a', 'aac', '-b:a', `${AUDIO_KBPS}k`, '-ac', String(Math.min(2, Math.max(1, audio.channels))), '-ar', '48000');
    // Without it, FFmpeg stops with "Too many packets buffered" when one stream starts well after another.
    args.push('-max_muxing_queue_size', '4096', '-flvflags', 'no_duration_filesize', '-f', 'flv', `pipe:${FIRST_RUNG_FD + i}`);
  });
  return args;
}
