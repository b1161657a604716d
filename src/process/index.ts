export { Supervisor } from './supervisor.js';
export type { BackoffOptions, ChildHandle, ExitInfo, ExitKind, SupervisorOptions, SupervisorState } from './types.js';
export { ProgressParser, quietArgs, quietProgressArgs, SpeedMeter } from './progress.js';
export type { Progress, ProgressParserOptions, SpeedMeterOptions } from './progress.js';
export { findFfmpeg, ffmpegEncoders, ffmpegRuns, parseEncoders } from './ffmpeg.js';
export { execTool, FfmpegError, inputBytesRead, runFfmpeg } from './ffmpeg-run.js';
export type { ExecToolOptions, ExecToolResult, FfmpegRunOptions } from './ffmpeg-run.js';
