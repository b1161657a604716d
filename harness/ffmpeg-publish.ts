import { spawn, type ChildProcess } from 'node:child_process';

export interface PublishOptions {
  readonly size?: string;
  readonly fps?: number;
  readonly gop?: number;
  readonly seconds?: number;
  readonly extraArgs?: string[];
}

/** A real FFmpeg publishing a synthetic H.264 + AAC stream in real time over RTMP. */
export function ffmpegPublish(url: string, opts: PublishOptions = {}): ChildProcess & { stderrText: () => string } {
  const fps = opts.fps ?? 30;
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${opts.size ?? '640x360'}:rate=${fps}`,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    ...(opts.seconds ? ['-t', String(opts.seconds)] : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-tune',
    'zerolatency',
    '-pix_fmt',
    'yuv420p',
    '-g',
    String(opts.gop ?? fps),
    '-keyint_min',
    String(opts.gop ?? fps),
    '-sc_threshold',
    '0',
    '-b:v',
    '800k',
    '-c:a',
    'aac',
    '-b:a',
    '96k',
    '-ar',
    '48000',
    '-ac',
    '2',
    ...(opts.extraArgs ?? []),
    '-f',
    'flv',
    url,
  ];
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { stderrText: () => string };
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 20_000) err = err.slice(-10_000);
  });
  child.stderrText = () => err;
  return child;
}
