import type { LadderRung } from '../core/index.js';
import { quietProgressArgs } from '../process/index.js';

export interface TranscodeArgsInput {
  readonly rungs: readonly LadderRung[];
  readonly source: { readonly width: number; readonly height: number; readonly frameRate: number };
  /** libx264 preset (speed/quality trade-off). */
  readonly x264Preset: string;
  /** Render node for h264_vaapi. */
  readonly vaapiDevice: string;
}

/** FFmpeg's -progress output goes to fd 3; rung i is written to fd 4 + i. */
export const PROGRESS_FD = 3;
export const FIRST_RUNG_FD = 4;

/**
 * Encoder options per encoder. Every one runs without B-frames (decode order = presentation order, no
 * reordering delay) and turns the forced keyframes into IDR frames, so each rung has a random access
 * point wherever the source has one.
 */
function encoderArgs(r: LadderRung, preset: string): string[] {
  const rate = [`-b:v`, `${r.videoBitrateKbps}k`, `-maxrate`, `${r.videoBitrateKbps}k`, `-bufsize`, `${2 * r.videoBitrateKbps}k`];
  switch (r.encoder) {
    case 'libx264':
      // zerolatency: no lookahead and no frame delay; sc_threshold 0: no keyframes of its own at scene cuts.
      return ['-c:v', 'libx264', '-preset', preset, '-tune', 'zerolatency', ...rate, '-bf', '0', '-sc_threshold', '0', '-g', '600'];
    case 'h264_nvenc':
      return ['-c:v', 'h264_nvenc', '-preset', 'p4', '-tune', 'll', ...rate, '-bf', '0', '-forced-idr', '1', '-g', '600'];
    case 'h264_qsv':
      return ['-c:v', 'h264_qsv', '-preset', 'veryfast', ...rate, '-bf', '0', '-forced_idr', '1', '-g', '600'];
    case 'h264_vaapi':
      return ['-c:v', 'h264_vaapi', ...rate, '-bf', '0', '-g', '600'];
  }
}

/** The video filter chain of one rung: frame rate cap, then scale on the short side (never up). */
function rungFilter(r: LadderRung, source: TranscodeArgsInput['source']): string {
  const steps: string[] = [];
  // Reduce by a whole factor (60 -> 30, 59.94 -> 29.97, 50 -> 25) by keeping every n-th frame *and every
  // keyframe*, with their own timestamps: the fps filter would re-stamp frames on its grid and drop a
  // source keyframe that falls between (a 59-frame GOP at 59.94 fps loses most of them).
  if (source.frameRate > r.maxFrameRate + 0.5) {
    const factor = Math.ceil(source.frameRate / r.maxFrameRate - 0.01);
    steps.push(`select='key+not(mod(n,${factor}))'`);
  }
  const portrait = source.height > source.width && source.width > 0;
  steps.push(portrait ? `scale=${r.height}:-2` : `scale=-2:${r.height}`);
  if (r.encoder === 'h264_vaapi') steps.push('format=nv12', 'hwupload');
  return steps.join(',');
}

/**
 * One FFmpeg for the whole ladder: the source's video is decoded once (FLV on stdin), split, and each
 * rung is encoded and written as FLV to its own pipe with the source's timestamps (-copyts). Keyframes
 * are forced where the source has them (-force_key_frames source), which is what lets every rung cut its
 * segments where the source does. Video only: the rungs carry the source's audio frames, which the
 * transcoder adds to them itself (a copy through FFmpeg would only cost a pipe round trip per frame).
 */
export function buildFfmpegArgs(input: TranscodeArgsInput): string[] {
  const { rungs, source } = input;
  const args = quietProgressArgs(PROGRESS_FD, 0.5);
  if (rungs.some((r) => r.encoder === 'h264_vaapi')) args.push('-vaapi_device', input.vaapiDevice);
  // Input: no probing beyond the FLV header and the sequence headers written first (the FLV header says
  // which streams there are); slice threads (frame threads would hold frames back). Not -fflags nobuffer:
  // it discards the packets read while probing, the first keyframe among them, and nothing decodes until
  // the next one (a whole GOP later).
  args.push('-probesize', '32', '-analyzeduration', '0', '-thread_type', 'slice', '-f', 'flv', '-i', 'pipe:0');
  args.push('-copyts');
  const labels = rungs.map((_, i) => `[v${i}]`);
  const graph =
    rungs.length === 1
      ? `[0:v]${rungFilter(rungs[0], source)}${labels[0]}`
      : `[0:v]split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join('')};` +
        rungs.map((r, i) => `[s${i}]${rungFilter(r, source)}${labels[i]}`).join(';');
  args.push('-filter_complex', graph);
  rungs.forEach((r, i) => {
    args.push('-map', labels[i]);
    // -enc_time_base -1: the encoder keeps the demuxer's time base (FLV's milliseconds), so every frame
    // keeps the source's timestamp instead of being re-stamped on a guessed frame-rate grid.
    args.push(...encoderArgs(r, input.x264Preset), '-force_key_frames', 'source', '-fps_mode', 'passthrough', '-enc_time_base:v', '-1');
    // Write every packet at once: the FLV muxer would otherwise fill 32 KB before the pipe sees a byte.
    args.push('-flush_packets', '1', '-flvflags', 'no_duration_filesize', '-f', 'flv', `pipe:${FIRST_RUNG_FD + i}`);
  });
  return args;
}
