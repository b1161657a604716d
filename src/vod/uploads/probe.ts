/**
 * What an uploaded file holds, before anything is encoded: ffprobe (found next to the FFmpeg binary, else
 * on PATH), or, where only an FFmpeg binary exists (the npm-bundled one ships no ffprobe), the stream
 * summary `ffmpeg -i` prints. A file that is not media we can package is a BadMediaError with a reason
 * meant for the uploader ("not a media file: ffprobe: Invalid data found when processing input"), which
 * never names a path on this server.
 *
 * An upload is outside input: every tool that opens it gets INPUT_GUARD_ARGS. FFmpeg picks a demuxer by
 * content, not by file name, so without them an ".mp4" holding an HLS playlist (or a concat script) would
 * be read as one and make FFmpeg open whatever local files it lists: another video's media, any file on
 * the host.
 */
import { accessSync, constants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AppError } from '../../core/index.js';
import { execTool, type ExecToolResult } from '../../process/index.js';

/** The input cannot become a video (not media, truncated, no video...). Retrying does not help. */
export class BadMediaError extends AppError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('E_UNSUPPORTED_CODEC', reason, options);
    this.name = 'BadMediaError';
  }
}

export function isBadMedia(err: unknown): err is BadMediaError {
  return err instanceof BadMediaError;
}

export interface ProbedVideo {
  /** Stream index in the file (FFmpeg's `0:<index>`). */
  readonly index: number;
  readonly codec: string;
  /** As displayed: a rotated phone video's width and height are swapped back. */
  readonly width: number;
  readonly height: number;
  /** Frames per second, 0 if unknown. */
  readonly frameRate: number;
}

export interface ProbedAudio {
  readonly index: number;
  readonly codec: string;
  readonly channels: number;
  readonly sampleRate: number;
}

export interface ProbeResult {
  /** Seconds (the container's duration, else the video stream's); 0 when the file does not say. */
  readonly duration: number;
  /**
   * Seconds of the video stream alone, 0 when the file does not say. The container's duration is its
   * longest stream's: a phone clip's audio may run on after the picture ends.
   */
  readonly videoDuration: number;
  readonly video: ProbedVideo | undefined;
  readonly audio: ProbedAudio | undefined;
}

const PROBE_TIMEOUT_MS = 30_000;
const PROBE_MAX_OUTPUT = 4 << 20;

/**
 * The demuxers an upload may be read with (FFmpeg 5.1's short names, `ffmpeg -demuxers`), for every
 * container MEDIA_EXTENSIONS names: mov (mp4, m4v, mov, qt, 3gp, 3g2), matroska (mkv, webm), flv, mpegts
 * (ts, mts, m2ts), avi, mpeg (program stream: mpg, mpeg), asf (wmv, asf), mxf, ogg (ogv). None of them
 * opens other files; hls, concat, image2 and the like, which do, are left out.
 */
export const INPUT_FORMATS = ['mov', 'matroska', 'flv', 'mpegts', 'avi', 'mpeg', 'asf', 'mxf', 'ogg'] as const;

/**
 * Options for FFmpeg or ffprobe that go before `-i <upload>`: only INPUT_FORMATS may read it, and only the
 * file protocol may be opened (the upload is a local path; nothing it names is fetched over the network).
 */
export const INPUT_GUARD_ARGS: readonly string[] = ['-format_whitelist', INPUT_FORMATS.join(','), '-protocol_whitelist', 'file'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** ffprobe beside `ffmpegPath` (same name with ffmpeg -> ffprobe), else undefined. */
export function ffprobeBeside(ffmpegPath: string): string | undefined {
  const name = basename(ffmpegPath).replace(/ffmpeg/i, 'ffprobe');
  if (name === basename(ffmpegPath)) return undefined;
  const candidate = join(dirname(ffmpegPath), name);
  return isExecutable(candidate) ? candidate : undefined;
}

/** "30000/1001" -> 29.97; "0/0" and garbage -> 0. */
export function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [n, d] = rate.split('/').map(Number) as [number, number?];
  const v = d === undefined ? n : d > 0 ? n / d : 0;
  return Number.isFinite(v) && v > 0 && v <= 1000 ? v : 0;
}

/**
 * What FFmpeg's tools said went wrong: their last line without the input path in front, with the line
 * before it as detail when there is one ("Invalid data found when processing input (moov atom not found)":
 * the detail is what tells a truncated MP4 from a file that is not media at all). A format INPUT_GUARD_ARGS
 * refused is said as such. The input's path and folder are taken out wherever they appear.
 */
export function lastReason(stderr: string, input: string): string {
  const refused = /\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist/.exec(stderr);
  if (refused) return `its format (${refused[1].split(',')[0]}) is not a video container this server accepts`;
  const lines = stderr
    .split('\n')
    .map((l) => l.trim().replace(/^\[[^\]]* @ 0x[0-9a-f]+\]\s*/, ''))
    .map((l) => (l.startsWith(`${input}: `) ? l.slice(input.length + 2) : l))
    // The reason goes to the uploader: no path of this server in it.
    .map((l) => {
      const out = l.replaceAll(input, 'the file');
      return dirname(input).length > 1 ? out.replaceAll(dirname(input), '.') : out;
    })
    .filter((l) => l && !l.startsWith('At least one output file'));
  const last = lines.at(-1) ?? 'no output';
  const detail = lines.at(-2);
  return detail && detail !== last ? `${last} (${detail})` : last;
}

/** "01:02:03.500000000" (Matroska's DURATION tag) -> 3723.5; anything else -> 0. */
function parseClock(text: string | undefined): number {
  const m = text ? /^(\d+):(\d\d):(\d\d(?:\.\d+)?)$/.exec(text.trim()) : null;
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : 0;
}

interface FfprobeJson {
  streams?: Array<{
    index?: number;
    codec_type?: string;
    codec_name?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    channels?: number;
    sample_rate?: string;
    duration?: string;
    disposition?: { attached_pic?: number };
    tags?: { rotate?: string; DURATION?: string };
    side_data_list?: Array<{ rotation?: number }>;
  }>;
  format?: { duration?: string };
}

/** Pure: the ffprobe JSON of a file, as a ProbeResult. */
export function fromFfprobeJson(json: FfprobeJson): ProbeResult {
  const streams = json.streams ?? [];
  // Cover art in an MP3 or M4A is a one-frame "video" stream; it is not a video.
  const v = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic && (s.width ?? 0) > 0);
  const a = streams.find((s) => s.codec_type === 'audio');
  let video: ProbedVideo | undefined;
  if (v) {
    const rotation = Number(v.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? v.tags?.rotate ?? 0);
    const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
    const [w, h] = [v.width ?? 0, v.height ?? 0];
    video = {
      index: v.index ?? 0,
      codec: v.codec_name ?? 'unknown',
      width: quarter ? h : w,
      height: quarter ? w : h,
      frameRate: parseRate(v.avg_frame_rate) || parseRate(v.r_frame_rate),
    };
  }
  const audio = a
    ? { index: a.index ?? 0, codec: a.codec_name ?? 'unknown', channels: a.channels ?? 2, sampleRate: Number(a.sample_rate) || 48_000 }
    : undefined;
  // Matroska has no per-stream duration field; FFmpeg and mkvmerge write a DURATION tag instead. Without
  // either, the container's duration is the video's when there is no audio to outlast it.
  const own = Number(v?.duration) || parseClock(v?.tags?.DURATION);
  const duration = Number(json.format?.duration) || own || 0;
  const videoDuration = own || (a ? 0 : duration);
  return { duration, videoDuration, video, audio };
}

/** Pure: the stream summary of `ffmpeg -i <file>` (stderr), as a ProbeResult. */
export function fromFfmpegBanner(text: string): ProbeResult {
  const d = /Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)/.exec(text);
  const duration = d ? Number(d[1]) * 3600 + Number(d[2]) * 60 + Number(d[3]) : 0;
  let video: ProbedVideo | undefined;
  let audio: ProbedAudio | undefined;
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const m = /Stream #0:(\d+)[^:]*: (Video|Audio): (\w+)(.*)$/.exec(line);
    if (!m) return;
    const [, index, type, codec, rest] = m;
    if (type === 'Video' && !video && !rest.includes('(attached pic)')) {
      const size = /, (\d{2,5})x(\d{2,5})/.exec(rest);
      if (!size) return;
      const fps = /, ([\d.]+) fps/.exec(rest) ?? /, ([\d.]+) tbr/.exec(rest);
      // The side data indented under the stream line says how a phone video is to be turned.
      const end = lines.findIndex((l, j) => j > i && (/Stream #/.test(l) || !/^\s{4}/.test(l)));
      const rot = lines
        .slice(i + 1, end < 0 ? undefined : end)
        .join('\n')
        .match(/rotation of (-?[\d.]+) degrees/);
      const quarter = rot ? Math.abs(Math.round(Number(rot[1]) / 90)) % 2 === 1 : false;
      const [w, h] = [Number(size[1]), Number(size[2])];
      video = { index: Number(index), codec, width: quarter ? h : w, height: quarter ? w : h, frameRate: fps ? Number(fps[1]) : 0 };
    } else if (type === 'Audio' && !audio) {
      const hz = /, (\d+) Hz/.exec(rest);
      const channels = /, (mono|stereo|(\d+) channels|5\.1|7\.1)/.exec(rest);
      const count = !channels
        ? 2
        : channels[1] === 'mono'
          ? 1
          : channels[1] === 'stereo'
            ? 2
            : channels[2]
              ? Number(channels[2])
              : channels[1] === '5.1'
                ? 6
                : 8;
      audio = { index: Number(index), codec, channels: count, sampleRate: hz ? Number(hz[1]) : 48_000 };
    }
  });
  // The banner gives the container's duration only: that is the video's when nothing else is in the file.
  return { duration, videoDuration: audio ? 0 : duration, video, audio };
}

/**
 * Whether the tool ran and judged the input: FFmpeg's tools exit with 1 after saying on stderr why they
 * could not read it. Any other ending (a crash is a signal, which execTool rejects; 126/127 is a binary
 * that cannot be run; 1 with nothing said) is the tool failing, not the upload: worth a retry, and never
 * the uploader's fault.
 */
function judgedInput(tool: string, r: ExecToolResult): void {
  if (r.code === 1 && r.stderr.trim() !== '') return;
  const said = r.stderr.trim().split('\n').at(-1)?.slice(0, 200);
  throw new AppError('E_INTERNAL', `${tool} failed: exited with code ${r.code}${said ? `: ${said}` : ' and said nothing'}`);
}

/**
 * Probes `input`. BadMediaError when the tools cannot read it as media; AppError E_INTERNAL when they
 * could not run at all or failed themselves (a fault of this server, worth a retry).
 */
export async function probeFile(input: string, ffmpegPath: string, signal?: AbortSignal): Promise<ProbeResult> {
  const ffprobe = ffprobeBeside(ffmpegPath);
  const opts = { timeoutMs: PROBE_TIMEOUT_MS, maxBuffer: PROBE_MAX_OUTPUT, signal };
  if (ffprobe) {
    const r = await execTool(
      ffprobe,
      ['-v', 'error', ...INPUT_GUARD_ARGS, '-print_format', 'json', '-show_format', '-show_streams', input],
      opts,
    );
    if (r.code !== 0) {
      judgedInput('ffprobe', r);
      throw new BadMediaError(`not a media file: ffprobe: ${lastReason(r.stderr, input)}`);
    }
    let json: FfprobeJson;
    try {
      json = JSON.parse(r.stdout) as FfprobeJson;
    } catch (err) {
      throw new AppError('E_INTERNAL', 'ffprobe printed something that is not JSON', { cause: err });
    }
    if (!json.streams?.length) throw new BadMediaError('not a media file: ffprobe found no streams in it');
    return fromFfprobeJson(json);
  }
  // `ffmpeg -i` alone always exits 1 ("At least one output file must be specified"): read its banner.
  const r = await execTool(ffmpegPath, ['-hide_banner', '-nostdin', ...INPUT_GUARD_ARGS, '-i', input], opts);
  if (!/Stream #0:/.test(r.stderr)) {
    judgedInput('ffmpeg', r);
    throw new BadMediaError(`not a media file: ffmpeg: ${lastReason(r.stderr, input)}`);
  }
  return fromFfmpegBanner(r.stderr);
}
