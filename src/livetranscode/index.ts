/**
 * Live ABR ladder: one supervised FFmpeg per live stream turns the source into lower rungs, published to
 * the rung hub where the packager packages them beside the source, aligned segment for segment.
 */
export { LiveTranscoder } from './transcoder.js';
export type { LiveTranscoderOptions } from './transcoder.js';
export { buildFfmpegArgs } from './args.js';
export { DEFAULT_GOVERNOR, LoadGovernor } from './governor.js';
export type { GovernorOptions, LoadSample } from './governor.js';
export { FIT_TIMING, FrameHold, GopBitrateMeter, LadderFit, planChanged } from './fit.js';
export type { FitPhase, FitStep, FitTiming } from './fit.js';
export type { LadderFitStatus, RungStatus, TranscodeCounters, TranscodeState, TranscodeStatus } from './types.js';
