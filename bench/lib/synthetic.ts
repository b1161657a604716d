import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, terminate, track } from '../../harness/processes.js';

/**
 * Synthetic RTMP publishers for load benches, the way SRS benchmarks them: a short H.264/AAC FLV is
 * encoded once, then pushed by `ffmpeg -re -stream_loop -1 -c copy`, so that a publisher costs almost no
 * CPU while the server is under load.
 *
 * The file is 32 s of 640x360 at 30 fps, a keyframe every second, 600 kbit/s video (CBR-like: maxrate and
 * bufsize equal) and 64 kbit/s AAC at 48 kHz. 32 s holds a whole number of video frames (960), of GOPs (32)
 * and of AAC frames (1500 of 1024 samples), so the loop seam adds no gap in either track.
 */
export const SYNTHETIC = {
  width: 640,
  height: 360,
  fps: 30,
  gopFrames: 30,
  videoKbps: 600,
  audioKbps: 64,
  seconds: 32,
} as const;

export function describeSynthetic(): string {
  const s = SYNTHETIC;
  return `${s.width}x${s.height} ${s.fps} fps H.264 ${s.videoKbps} kbit/s (keyframe every ${s.gopFrames / s.fps} s) + AAC ${s.audioKbps} kbit/s, ${s.seconds} s file looped by ffmpeg -re -stream_loop -1 -c copy`;
}

/** Path of the pre-encoded FLV, encoding it first when it is not cached yet (a few seconds). */
export async function syntheticFlv(cacheDir = join(tmpdir(), 'livepack-bench-cache')): Promise<string> {
  const s = SYNTHETIC;
  const file = join(cacheDir, `synthetic-${s.height}p${s.fps}-${s.videoKbps}k-${s.seconds}s.flv`);
  if (existsSync(file)) return file;
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${file}.${process.pid}.tmp`;
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${s.width}x${s.height}:rate=${s.fps}`,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(s.seconds),
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-pix_fmt',
    'yuv420p',
    '-profile:v',
    'main',
    '-g',
    String(s.gopFrames),
    '-keyint_min',
    String(s.gopFrames),
    '-sc_threshold',
    '0',
    '-bf',
    '0',
    '-b:v',
    `${s.videoKbps}k`,
    '-maxrate',
    `${s.videoKbps}k`,
    '-bufsize',
    `${s.videoKbps}k`,
    '-c:a',
    'aac',
    '-b:a',
    `${s.audioKbps}k`,
    '-ar',
    '48000',
    '-ac',
    '2',
    '-f',
    'flv',
    partial,
  ];
  // A timeout counts as a failed encode (exit null), so the partial file goes too.
  const { code, stderr } = await run('ffmpeg', args, 120_000).catch((err: Error) => ({ code: null, stderr: err.message }));
  if (code !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`encoding the synthetic source failed (ffmpeg exit ${code}): ${stderr.trim().slice(-500)}`);
  }
  renameSync(partial, file);
  return file;
}

export type Publisher = ChildProcess & { stderrText(): string };

/**
 * Push `file` to `url` in real time, looping forever, without re-encoding. The child is tracked (killed
 * when the bench exits). `taskset` pins it to CPUs (e.g. "1") when given.
 */
export function startPublisher(file: string, url: string, opts: { taskset?: string } = {}): Publisher {
  const ff = ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', file, '-c', 'copy', '-f', 'flv', url];
  const [cmd, args] = opts.taskset ? ['taskset', ['-c', opts.taskset, 'ffmpeg', ...ff]] : ['ffmpeg', ff];
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })) as Publisher;
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.stderrText = () => err;
  return child;
}

/** Stop a publisher (SIGTERM, SIGKILL after `timeoutMs`) and wait for it to exit. */
export function stopPublisher(child: ChildProcess, timeoutMs = 3000): Promise<void> {
  return terminate(child, timeoutMs);
}

/**
 * Kill a publisher with no goodbye (SIGKILL): to the server this is a dropped connection, which waits
 * RECONNECT_GRACE_MS for the publisher to come back, where stopPublisher's clean unpublish ends the run.
 */
export function dropPublisher(child: ChildProcess): Promise<void> {
  return terminate(child, 3000, 'SIGKILL');
}
