/**
 * VOD bench: `npm run bench:vod -- [--minutes 10] [--pace fast|realtime] [--upload-seconds 60]`.
 *
 * 1. Recording to VOD: the server runs as `npm start` runs it (its own process, files under a fresh
 *    DATA_DIR, RECONNECT_GRACE_MS=0 so the stream ends when its publisher leaves). A synthetic 360p30
 *    stream is published for 1 minute and for `--minutes` of media time, and for each the time from the end
 *    of the stream to the VOD asset being ready is measured twice: inside the server (the recorder's
 *    `livepack_recorder_last_finalize_seconds`) and from outside (publisher exit to `status: ready` on the
 *    API, polled every 20 ms). With `--pace fast` (the default) the publisher pushes as fast as the server
 *    takes it (`ffmpeg -c copy` without -re): same segments and same playlists as a real-time run, in a
 *    fraction of the wall time; `--pace realtime` publishes in real time.
 * 2. Upload packaging: a generated `--upload-seconds` 720p30 H.264/AAC MP4 is uploaded over tus and packaged
 *    (FFmpeg ladder -> packager -> storage); the time from the end of the upload to `ready` is compared with
 *    FFmpeg alone running the same command on the same file, each rung written to an FLV file.
 * Prints a table and writes bench/results/vod-<date>.json. Bounded in time; kills its children on exit.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../harness/http.js';
import { track } from '../harness/processes.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { gitCommit, resultsDir, writeResults } from './lib/results.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import { describeSynthetic, SYNTHETIC, syntheticFlv } from './lib/synthetic.js';
import { benchUpload, type UploadFigures } from './lib/vod-upload.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const API_TOKEN = 'bench-token-0123456789abcdef';

const cli = parseBenchCli(
  'npm run bench:vod -- [--minutes N (default 10)] [--pace fast|realtime] [--upload-seconds N (default 60)]',
  { pace: ['fast', 'realtime'] },
  { minutes: { default: 10, min: 1, max: 120 }, 'upload-seconds': { default: 60, min: 5, max: 600 } },
);
const minutes = cli.integers.minutes;
const pace = cli.options.pace;
const uploadSeconds = cli.integers['upload-seconds'];

const publishBudgetS = pace === 'realtime' ? (minutes + 1) * 60 : (minutes + 1) * 15;
const bench = startBenchRun({ budgetS: 120 + publishBudgetS + uploadSeconds * 8, forceExitMs: 15_000 });
const { cleanups, shutdown, waitFor } = bench;

interface RecordingFigures {
  mediaSeconds: number;
  publishWallSeconds: number;
  segments: number;
  /** Inside the server: stream end to ready. */
  finalizeMs: number;
  /** Of that, the finalizing itself (the rest is segments still being stored when the stream ended). */
  finalizeWorkMs: number;
  /** From outside: publisher exit to status ready on the API. */
  observedMs: number;
  durationS: number;
}

async function api(srv: ServerProcess, method: string, path: string, body?: unknown): Promise<any> {
  const res = await request(method, srv.base + path, {
    headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    timeoutMs: 10_000,
  });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.body.toString()}`);
  return res.body.length ? JSON.parse(res.body.toString()) : undefined;
}

/** Publish `seconds` of the synthetic source (looped, copied) and wait for the run's VOD asset. */
async function recordOnce(srv: ServerProcess, file: string, seconds: number): Promise<RecordingFigures> {
  const stream = await api(srv, 'POST', '/api/v1/streams', { name: `bench ${seconds} s`, profile: 'passthrough' });
  const loops = Math.ceil(seconds / SYNTHETIC.seconds);
  const args = ['-hide_banner', '-loglevel', 'error', ...(pace === 'realtime' ? ['-re'] : []), '-stream_loop', String(loops), '-i', file];
  args.push('-t', String(seconds), '-c', 'copy', '-f', 'flv', `rtmp://127.0.0.1:${srv.rtmpPort}/live/${stream.streamKey}`);
  const t0 = performance.now();
  const pub = track(spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  pub.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const code = await new Promise<number | null>((resolve) => pub.once('exit', resolve));
  const exited = performance.now();
  if (code !== 0) throw new Error(`publisher exited with ${code}: ${stderr}`);
  const video = await waitFor(
    `VOD asset of the ${seconds} s recording`,
    async () => {
      const list = await api(srv, 'GET', `/api/v1/videos?streamId=${stream.id}&type=vod`);
      return list.items[0]?.status === 'ready' ? list.items[0] : undefined;
    },
    60_000,
    { stepMs: 20 },
  );
  const observedMs = performance.now() - exited;
  const metrics = (await request('GET', `${srv.base}/metrics`, { timeoutMs: 5000 })).body.toString();
  const finalizeS = Number(/^livepack_recorder_last_finalize_seconds (\S+)$/m.exec(metrics)?.[1]);
  const workS = Number(/^livepack_recorder_last_finalize_work_seconds (\S+)$/m.exec(metrics)?.[1]);
  const media = (await request('GET', `${srv.base}/vod/${video.id}/source/index.m3u8`, { timeoutMs: 5000 })).body.toString();
  return {
    mediaSeconds: seconds,
    publishWallSeconds: Math.round((exited - t0) / 100) / 10,
    segments: (media.match(/#EXTINF/g) ?? []).length,
    finalizeMs: Math.round(finalizeS * 1000),
    finalizeWorkMs: Math.round(workS * 1000),
    observedMs: Math.round(observedMs),
    durationS: video.duration,
  };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-vod-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const file = await syntheticFlv();
  const srv = await startServerProcess(ROOT, dataDir, API_TOKEN, bench.signal, { RECONNECT_GRACE_MS: '0' });
  cleanups.push(() => srv.stop());

  const recordings: RecordingFigures[] = [];
  for (const seconds of [...new Set([60, minutes * 60])]) {
    console.log(`recording ${seconds} s of media (${pace})...`);
    recordings.push(await recordOnce(srv, file, seconds));
  }
  await srv.stop();

  console.log(`packaging a ${uploadSeconds} s upload...`);
  const upload: UploadFigures = await benchUpload({
    repoRoot: ROOT,
    apiToken: API_TOKEN,
    seconds: uploadSeconds,
    signal: bench.signal,
    cleanups,
    waitFor,
  });

  const results = {
    bench: 'vod',
    date: startedAt.toISOString(),
    commit: gitCommit(ROOT),
    environment: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version },
    setup: { source: describeSynthetic(), pace, storage: 'files under DATA_DIR', graceMs: 0 },
    recordings,
    upload,
  };
  const out = writeResults(resultsDir(ROOT), 'vod', startedAt, results);

  console.log(
    `\nlivepack VOD bench  ${results.date}  (${results.environment.cpus} CPUs, ${results.environment.cpuModel}, node ${process.version})`,
  );
  console.log(
    `  recording -> VOD (${SYNTHETIC.width}x${SYNTHETIC.height} ${SYNTHETIC.fps} fps H.264 ${SYNTHETIC.videoKbps} kbit/s + AAC, looped with -c copy; publish pace ${pace})`,
  );
  console.log(
    `  ${'media'.padStart(8)} ${'segments'.padStart(9)} ${'publish wall'.padStart(13)} ${'end->ready (server)'.padStart(20)} ${'(observed)'.padStart(11)} ${'finalizing'.padStart(11)} ${'duration'.padStart(9)}`,
  );
  for (const r of recordings) {
    console.log(
      `  ${`${r.mediaSeconds} s`.padStart(8)} ${String(r.segments).padStart(9)} ${`${r.publishWallSeconds} s`.padStart(13)} ${`${r.finalizeMs} ms`.padStart(20)} ${`${r.observedMs} ms`.padStart(11)} ${`${r.finalizeWorkMs} ms`.padStart(11)} ${`${r.durationS} s`.padStart(9)}`,
    );
  }
  const u = upload;
  console.log(`  upload packaging (${u.source})`);
  console.log(`    ladder ${u.ladder.join(', ')}`);
  console.log(`    upload ${u.uploadMs} ms; end of upload -> ready ${u.packageMs} ms (${u.speed.toFixed(2)}x real time)`);
  console.log(
    `    FFmpeg alone, the same command writing FLV files: ${u.ffmpegAloneMs} ms (${u.ffmpegSpeed.toFixed(2)}x); ours / FFmpeg alone = ${(u.packageMs / u.ffmpegAloneMs).toFixed(2)}`,
  );
  console.log(`  results: ${out}`);
}

main().then(
  () => shutdown(0),
  (err) => {
    console.error(err);
    return shutdown(1);
  },
);
