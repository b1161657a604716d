/**
 * Keyframe interval bench: `npm run bench:keyframes -- [--clip 20]` (seconds of picture per encode).
 *
 * What more frequent keyframes cost a transcoded rung. A stock player starts on an independent part, so a
 * keyframe in every part would let it start anywhere; each keyframe costs bits. This encodes the same
 * picture as the default ladder's 480p rung is encoded (libx264 veryfast zerolatency, no B-frames, 1400 kb/s
 * with maxrate = bitrate and a 2× buffer: src/livetranscode/args.ts) with keyframes every 2 s, 1 s, 0.5 s
 * and 0.2 s (one per 200 ms part), and prints for each:
 * - at the rung's fixed bitrate, the quality it buys (SSIM and PSNR against the unencoded picture);
 * - at constant quality (CRF 23), the bits it needs, against the 2 s interval.
 * Three sources: testsrc2 (a moving graphic), testsrc2 with temporal grain (a camera's noise), and a
 * Mandelbrot zoom (every pixel changes). Writes bench/results/keyframes-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchCli } from './lib/run.js';
import { gitCommit, resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = parseBenchCli('npm run bench:keyframes -- [--clip N seconds (default 20)]', {}, { clip: { default: 20, min: 5, max: 120 } });
const seconds = cli.integers.clip;
const startedAt = new Date();
const FPS = 30;
const KBPS = 1400;
const SOURCES = {
  graphic: `testsrc2=size=854x480:rate=${FPS}`,
  grain: `testsrc2=size=854x480:rate=${FPS},noise=alls=4:allf=t`,
  zoom: `mandelbrot=size=854x480:rate=${FPS}`,
} as const;
const INTERVALS_S = [2, 1, 0.5, 0.2] as const;

function ffmpeg(args: string[]): string {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-nostdin', '-y', ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr.slice(-800)}`);
  return r.stderr;
}

function encode(source: string, gop: number, mode: 'bitrate' | 'crf', out: string): number {
  const rate = mode === 'bitrate' ? ['-b:v', `${KBPS}k`, '-maxrate', `${KBPS}k`, '-bufsize', `${2 * KBPS}k`] : ['-crf', '23'];
  ffmpeg([
    ...['-f', 'lavfi', '-i', source, '-t', String(seconds), '-an'],
    ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', ...rate, '-bf', '0', '-sc_threshold', '0', '-g', String(gop)],
    ...['-pix_fmt', 'yuv420p', '-f', 'mp4', out],
  ]);
  return (statSync(out).size * 8) / seconds / 1000;
}

function quality(source: string, file: string): { ssimDb: number; psnrDb: number } {
  const log = ffmpeg([
    ...['-i', file, '-f', 'lavfi', '-i', `${source},format=yuv420p`, '-t', String(seconds)],
    ...['-lavfi', '[0:v]split[a][b];[1:v]split[c][d];[a][c]ssim;[b][d]psnr', '-f', 'null', '-'],
  ]);
  const ssim = /SSIM .* All:[\d.]+ \(([\d.]+|inf)\)/.exec(log)?.[1];
  const psnr = /PSNR .* average:([\d.]+|inf)/.exec(log)?.[1];
  if (!ssim || !psnr) throw new Error(`no SSIM/PSNR in: ${log.slice(-500)}`);
  return { ssimDb: Number(ssim), psnrDb: Number(psnr) };
}

const dir = mkdtempSync(join(tmpdir(), 'livepack-keyframes-'));
type Row = { source: string; intervalS: number; kbps: number; ssimDb: number; psnrDb: number; crfKbps: number; crfBitsVs2s: number };
const rows: Row[] = [];
try {
  for (const [name, source] of Object.entries(SOURCES)) {
    let crfAt2s = 0;
    for (const s of INTERVALS_S) {
      const gop = Math.round(s * FPS);
      const fixed = join(dir, `${name}-${gop}-b.mp4`);
      const kbps = encode(source, gop, 'bitrate', fixed);
      const q = quality(source, fixed);
      const crfKbps = encode(source, gop, 'crf', join(dir, `${name}-${gop}-q.mp4`));
      if (s === 2) crfAt2s = crfKbps;
      rows.push({ source: name, intervalS: s, kbps, ...q, crfKbps, crfBitsVs2s: crfKbps / crfAt2s });
      const r = rows.at(-1)!;
      console.log(
        `${name.padEnd(8)} keyframe every ${String(s).padEnd(4)} s  ${KBPS} kb/s target: ${r.kbps.toFixed(0).padStart(5)} kb/s, ` +
          `SSIM ${r.ssimDb.toFixed(2)} dB, PSNR ${r.psnrDb.toFixed(2)} dB | CRF 23: ${r.crfKbps.toFixed(0).padStart(5)} kb/s (${(100 * (r.crfBitsVs2s - 1)).toFixed(1)} % vs 2 s)`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
writeResults(resultsDir(ROOT), 'keyframes', startedAt, {
  date: startedAt.toISOString(),
  commit: gitCommit(ROOT),
  setup: { seconds, fps: FPS, rung: `854x480 libx264 veryfast zerolatency -bf 0, ${KBPS} kb/s (maxrate = bitrate, bufsize 2x) or CRF 23` },
  rows,
});
