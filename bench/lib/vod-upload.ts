import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildFileArgs, planFileRungs } from '../../src/vod/uploads/file-ladder.js';
import { findFfmpeg } from '../../src/process/index.js';
import { probeFile } from '../../src/vod/uploads/probe.js';
import { track } from '../../harness/processes.js';
import { startServerProcess } from '../../harness/server-process.js';

export interface UploadFigures {
  source: string;
  ladder: string[];
  bytes: number;
  /** The tus PATCH of the whole file on loopback. */
  uploadMs: number;
  /** End of the upload to `status: ready` (probe, FFmpeg ladder, segmenter, storage, playlists, poster). */
  packageMs: number;
  /** Media seconds per wall second of packageMs. */
  speed: number;
  /** The same FFmpeg command, writing each rung to an FLV file instead of our pipes. */
  ffmpegAloneMs: number;
  ffmpegSpeed: number;
}

function runToEnd(cmd: string, args: string[], signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const abort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', abort, { once: true });
    child.once('exit', (code) => {
      signal.removeEventListener('abort', abort);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited with ${code}: ${stderr}`));
    });
  });
}

/** A 720p30 H.264/AAC MP4 of `seconds`, made once and cached. */
export async function uploadSource(seconds: number, signal: AbortSignal): Promise<string> {
  const dir = join(tmpdir(), 'livepack-bench-cache');
  const file = join(dir, `upload-720p30-${seconds}s.mp4`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.${process.pid}.tmp.mp4`;
  await runToEnd(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000',
      '-t',
      String(seconds),
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      '3000k',
      '-g',
      '60',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      '-movflags',
      '+faststart',
      partial,
    ],
    signal,
  );
  renameSync(partial, file);
  return file;
}

interface BenchHooks {
  repoRoot: string;
  apiToken: string;
  seconds: number;
  signal: AbortSignal;
  cleanups: (() => Promise<unknown> | void)[];
  readonly waitFor: <T>(
    what: string,
    fn: () => Promise<T | undefined | false>,
    timeoutMs: number,
    opts?: { stepMs?: number },
  ) => Promise<T>;
}

/**
 * Upload a generated file to a server started as `npm start` runs it, time its packaging, then time
 * FFmpeg alone running the very command the packaging job runs (buildFileArgs), with files as outputs.
 */
export async function benchUpload(h: BenchHooks): Promise<UploadFigures> {
  const file = await uploadSource(h.seconds, h.signal);
  const bytes = statSync(file).size;
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-upload-'));
  h.cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const srv = await startServerProcess(h.repoRoot, dataDir, h.apiToken, h.signal, { VOD_WORKERS: '1' });
  h.cleanups.push(() => srv.stop());
  const t0 = performance.now();
  const videoId = await uploadFile(srv.base, h.apiToken, file, 'bench upload');
  const uploaded = performance.now();
  await waitUploadReady(srv.base, h.apiToken, videoId, h.seconds * 20_000, h.waitFor, 20);
  const packageMs = performance.now() - uploaded;
  await srv.stop();

  // FFmpeg alone: the job's own command line, each rung written to a file instead of a pipe.
  const probe = await probeFile(file, findFfmpeg());
  const rungs = planFileRungs(probe.video!);
  const out = mkdtempSync(join(tmpdir(), 'livepack-bench-ffmpeg-'));
  h.cleanups.push(() => rmSync(out, { recursive: true, force: true }));
  const args = buildFileArgs({ input: file, probe: probe as Parameters<typeof buildFileArgs>[0]['probe'], rungs, x264Preset: 'veryfast' });
  const alone: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-progress') {
      i++; // no progress pipe
      continue;
    }
    const m = /^pipe:(\d+)$/.exec(args[i]);
    alone.push(m ? join(out, `rung${m[1]}.flv`) : args[i]);
  }
  const t1 = performance.now();
  await runToEnd(findFfmpeg(), ['-y', ...alone], h.signal);
  const ffmpegAloneMs = performance.now() - t1;

  return {
    source: `${h.seconds} s 1280x720 30 fps H.264 3 Mbit/s + AAC MP4 (${(bytes / 1e6).toFixed(1)} MB), x264 preset veryfast`,
    ladder: rungs.map((r) => `${r.name} ${r.videoBitrateKbps} kb/s`),
    bytes,
    uploadMs: Math.round(uploaded - t0),
    packageMs: Math.round(packageMs),
    speed: h.seconds / (packageMs / 1000),
    ffmpegAloneMs: Math.round(ffmpegAloneMs),
    ffmpegSpeed: h.seconds / (ffmpegAloneMs / 1000),
  };
}

/** One whole-file tus upload (initiate, then a single PATCH) of `file`; resolves with the new video's id. */
export async function uploadFile(base: string, apiToken: string, file: string, title: string): Promise<string> {
  const auth = { authorization: `Bearer ${apiToken}` };
  const bytes = statSync(file).size;
  const init = await fetch(`${base}/api/v1/videos/upload/initiate`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ title, size: bytes, filename: 'upload.mp4' }),
  });
  if (init.status !== 201) throw new Error(`initiate: ${init.status} ${await init.text()}`);
  const { videoId, uploadUrl } = (await init.json()) as { videoId: string; uploadUrl: string };
  const url = new URL(new URL(uploadUrl).pathname, base).href;
  const patch = await fetch(url, {
    method: 'PATCH',
    headers: {
      ...auth,
      'tus-resumable': '1.0.0',
      'upload-offset': '0',
      'content-type': 'application/offset+octet-stream',
      'content-length': String(bytes),
    },
    body: Readable.toWeb(createReadStream(file)) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  if (patch.status !== 204) throw new Error(`tus PATCH: ${patch.status} ${await patch.text()}`);
  return videoId;
}

/** Until the uploaded video is ready (throws if its packaging failed); resolves with its duration (s). */
export async function waitUploadReady(
  base: string,
  apiToken: string,
  videoId: string,
  timeoutMs: number,
  waitFor: BenchHooks['waitFor'],
  stepMs = 500,
): Promise<number> {
  const auth = { authorization: `Bearer ${apiToken}` };
  const video = await waitFor(
    `uploaded video ${videoId} ready`,
    async () => {
      const v = (await (await fetch(`${base}/api/v1/videos/${videoId}`, { headers: auth })).json()) as {
        status: string;
        error: string | null;
        duration: number | null;
      };
      if (v.status === 'failed') throw new Error(`packaging failed: ${v.error}`);
      return v.status === 'ready' ? v : undefined;
    },
    timeoutMs,
    { stepMs },
  );
  return video.duration ?? Number.NaN;
}
