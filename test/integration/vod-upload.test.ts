/**
 * Uploads end to end with real parts: a Fastify app on 127.0.0.1 with the upload routes, tus on files,
 * the catalog on PGlite (and PostgreSQL for the crash test), FsStorage, real FFmpeg packaging. Media is
 * generated with lavfi. What a user would check: the upload resumes after an interruption, the video
 * becomes ready, its master playlist plays in ffprobe for the right duration; bad files fail with a
 * reason that says why, without disturbing a good upload next to them; a server that dies or shuts down
 * mid-job does not lose the job.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAppError, silentLogger } from '../../src/core/index.js';
import { openCatalog, type Catalog, type VideoRecord } from '../../src/catalog/index.js';
import { FsStorage, type ObjectStore } from '../../src/storage/index.js';
import { findFfmpeg, runFfmpeg } from '../../src/process/index.js';
import { registerUploadRoutes } from '../../src/api/uploads.js';
import { Uploads } from '../../src/vod/uploads/intake.js';
import { VodWorker } from '../../src/vod/uploads/jobs-worker.js';
import { buildFileArgs, planFileRungs } from '../../src/vod/uploads/file-ladder.js';
import { packageFile } from '../../src/vod/uploads/package-file.js';
import { BadMediaError, probeFile } from '../../src/vod/uploads/probe.js';
import { dropSchemas, PG_URL, skipPostgres } from '../helpers/catalog.js';

const TOKEN = 'test-token-0123456789abcdef';
const ffmpeg = findFfmpeg();

/** Deterministic pseudo-random bytes (SHA-256 in counter mode over a seed). */
function noise(seed: string, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < length; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} failed: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/** An H.264/AAC MP4 of test pattern and tone. */
async function makeVideo(path: string, seconds: number, size: string, extra: string[] = []): Promise<Buffer> {
  await run(ffmpeg, [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc=size=${size}:rate=30`,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    ...extra,
    path,
  ]);
  return readFile(path);
}

/** A WebM written to a pipe, as a browser's MediaRecorder writes one: the muxer cannot seek back to put the duration in. */
async function makeUnseekableWebm(path: string, seconds: number, size: string): Promise<void> {
  const out = await open(path, 'w');
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        ffmpeg,
        [
          '-hide_banner',
          '-loglevel',
          'error',
          // The length comes from the sources: an output -t would be written into the header as its duration.
          '-f',
          'lavfi',
          '-i',
          `testsrc=size=${size}:rate=30:duration=${seconds}`,
          '-f',
          'lavfi',
          '-i',
          `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
          '-c:v',
          'libvpx',
          '-deadline',
          'realtime',
          '-cpu-used',
          '8',
          '-b:v',
          '1M',
          '-c:a',
          'libopus',
          '-f',
          'webm',
          'pipe:1',
        ],
        { stdio: ['ignore', out.fd, 'ignore'] },
      );
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg (webm) exited with ${code}`))));
    });
  } finally {
    await out.close();
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `target` with some members replaced; every other method still runs on `target` itself (private fields). */
function override<T extends object>(target: T, members: Partial<T>): T {
  return new Proxy(target, {
    get: (t, prop) => {
      if (prop in members) return (members as Record<string | symbol, unknown>)[prop];
      const v = Reflect.get(t, prop) as unknown;
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

/** Polls until `done` holds (the catalog has no change feed to wait on). */
async function waitFor<T>(what: string, get: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 50_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Harness {
  catalog: Catalog;
  store: FsStorage;
  uploads: Uploads;
  worker: VodWorker;
  app: FastifyInstance;
  base: string;
  dataDir: string;
  newWorker(owner?: string): VodWorker;
  close(): Promise<void>;
}

async function startHarness(opts: { postgres?: boolean; workers?: number } = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'livepack-upload-'));
  const schema = `upload_test_${randomBytes(6).toString('hex')}`;
  const catalog = await openCatalog(
    opts.postgres ? { databaseUrl: PG_URL, schema, dataDir, logger: silentLogger } : { dataDir, logger: silentLogger },
  );
  const store = new FsStorage(join(dataDir, 'media'));
  const h = { catalog, store, dataDir } as Harness;
  const uploads = new Uploads({
    catalog,
    logger: silentLogger,
    dataDir,
    maxBytes: 64 * 1024 * 1024,
    jobAttempts: 3,
    onQueued: () => h.worker?.nudge(),
  });
  await uploads.start();
  const newWorker = (owner?: string) =>
    new VodWorker({
      catalog,
      store,
      uploads,
      ffmpegPath: ffmpeg,
      logger: silentLogger,
      workers: opts.workers ?? 2,
      leaseMs: 3000,
      pollMs: 200,
      owner,
    });
  const app = Fastify({ logger: false });
  // As in api/app.ts: AppErrors become { error: { code, message } } with their status.
  app.setErrorHandler((err, _req, reply) => {
    if (isAppError(err)) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    if (e.validation) return reply.code(400).send({ error: { code: 'E_VALIDATION', message: e.message } });
    return reply.code(e.statusCode ?? 500).send({ error: { code: 'E_INTERNAL', message: e.message } });
  });
  const deps = { uploads, apiToken: TOKEN, publicBaseUrl: '' };
  registerUploadRoutes(app, deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  deps.publicBaseUrl = base;
  Object.assign(h, { uploads, app, base, newWorker, worker: newWorker() });
  // Not awaited, as in src/main.ts: start() resolves once its sweep is done and never rejects (a failed sweep
  // is logged); the worker runs on from there.
  void h.worker.start();
  h.close = async () => {
    await h.worker.close();
    await app.close();
    await catalog.close();
    if (opts.postgres) await dropSchemas([schema]);
    await rm(dataDir, { recursive: true, force: true });
  };
  return h;
}

const auth = { authorization: `Bearer ${TOKEN}` };
const tusHeaders = (offset: number) => ({
  ...auth,
  'tus-resumable': '1.0.0',
  'upload-offset': String(offset),
  'content-type': 'application/offset+octet-stream',
});

async function initiate(h: Harness, body: Record<string, unknown>, headers: Record<string, string> = auth) {
  const res = await fetch(`${h.base}/api/v1/videos/upload/initiate`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function patch(url: string, offset: number, bytes: Buffer): Promise<Response> {
  return fetch(url, { method: 'PATCH', headers: tusHeaders(offset), body: new Uint8Array(bytes) });
}

async function headOffset(url: string): Promise<number> {
  const res = await fetch(url, { method: 'HEAD', headers: { ...auth, 'tus-resumable': '1.0.0' } });
  expect(res.status).toBe(200);
  return Number(res.headers.get('upload-offset'));
}

/** Initiates an upload of `file` and sends it in one PATCH. */
async function uploadWhole(h: Harness, file: Buffer, filename: string, title = filename): Promise<string> {
  const init = await initiate(h, { title, size: file.length, filename });
  expect(init.status).toBe(201);
  const res = await patch(init.json.uploadUrl, 0, file);
  expect(res.status).toBe(204);
  return init.json.videoId;
}

const settled = (h: Harness, id: string) =>
  waitFor(
    `video ${id} to be ready or failed`,
    () => h.catalog.videos.get(id),
    (v) => v?.status === 'ready' || v?.status === 'failed',
  ) as Promise<VideoRecord>;

async function probeDuration(path: string): Promise<number> {
  return Number((await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path])).trim());
}

describe('VOD uploads (tus) to packaged video', () => {
  let h: Harness;
  let media: string;
  let good30: Buffer;

  beforeAll(async () => {
    media = await mkdtemp(join(tmpdir(), 'livepack-upload-media-'));
    [good30, h] = await Promise.all([makeVideo(join(media, 'good30.mp4'), 30, '854x480'), startHarness()]);
  });

  afterAll(async () => {
    await h?.close();
    await rm(media, { recursive: true, force: true });
  });

  it('checks initiate: token, title, size limit (413), file type (415)', async () => {
    const ok = { title: 'Talk', size: 1000, filename: 'talk.mp4' };
    expect((await initiate(h, ok, {})).status).toBe(401);
    const noTitle = await initiate(h, { ...ok, title: '' });
    expect(noTitle).toMatchObject({ status: 400, json: { error: { code: 'E_VALIDATION' } } });
    expect((await initiate(h, { ...ok, title: 'x'.repeat(201) })).status).toBe(400);
    expect((await initiate(h, { ...ok, size: 0 })).status).toBe(400);
    const big = await initiate(h, { ...ok, size: 64 * 1024 * 1024 + 1 });
    expect(big).toMatchObject({ status: 413, json: { error: { code: 'E_LIMIT_EXCEEDED' } } });
    expect(big.json.error.message).toMatch(/upload limit of 67108864 bytes/);
    const pdf = await initiate(h, { ...ok, filename: 'slides.pdf' });
    expect(pdf).toMatchObject({ status: 415, json: { error: { code: 'E_UNSUPPORTED_CODEC' } } });
    expect(pdf.json.error.message).toMatch(/mp4, m4v, mov/);

    const res = await initiate(h, { ...ok, filename: 'C:\\clips\\talk.MOV', visibility: 'unlisted', description: 'd' });
    expect(res.status).toBe(201);
    expect(res.json.uploadUrl).toBe(`${h.base}/api/v1/uploads/${res.json.videoId}`);
    const v = await h.catalog.videos.get(res.json.videoId);
    expect(v).toMatchObject({
      type: 'vod',
      source: 'upload',
      status: 'uploading',
      title: 'Talk',
      visibility: 'unlisted',
      upload: { filename: 'talk.MOV', size: 1000 },
    });
  });

  it('speaks tus: OPTIONS, HEAD, wrong offset (409), past the declared size (413), no token (401)', async () => {
    const init = await initiate(h, { title: 'small', size: 1000, filename: 'small.mp4' });
    const url: string = init.json.uploadUrl;
    const options = await fetch(url, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('tus-version')).toBe('1.0.0');
    expect(options.headers.get('tus-max-size')).toBe(String(64 * 1024 * 1024));

    const head = await fetch(url, { method: 'HEAD', headers: { ...auth, 'tus-resumable': '1.0.0' } });
    expect(head.headers.get('upload-length')).toBe('1000');
    expect(head.headers.get('upload-offset')).toBe('0');
    expect((await fetch(url, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } })).status).toBe(401);
    expect(
      (await fetch(`${h.base}/api/v1/uploads/nosuchupload`, { method: 'HEAD', headers: { ...auth, 'tus-resumable': '1.0.0' } })).status,
    ).toBe(404);

    expect((await patch(url, 0, Buffer.alloc(1500))).status).toBe(413);
    expect((await patch(url, 10, Buffer.alloc(10))).status).toBe(409);
    const noToken = await fetch(url, {
      method: 'PATCH',
      headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      body: new Uint8Array(10),
    });
    expect(noToken.status).toBe(401);
    expect(await headOffset(url)).toBe(0);
    const first = await patch(url, 0, Buffer.alloc(600));
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-offset')).toBe('600');
    expect((await patch(url, 600, Buffer.alloc(500))).status).toBe(413);
    expect(await headOffset(url)).toBe(600);
    // No tus creation or termination here: uploads are created by initiate only.
    expect(
      (await fetch(`${h.base}/api/v1/uploads`, { method: 'POST', headers: { ...auth, 'tus-resumable': '1.0.0', 'upload-length': '10' } }))
        .status,
    ).toBe(404);
  });

  it('resumes an interrupted upload, packages it, and the master playlist plays for 30 s', async () => {
    const started = Date.now();
    const init = await initiate(h, { title: 'Keynote', size: good30.length, filename: 'keynote.mp4' });
    expect(init.status).toBe(201);
    const { videoId, uploadUrl } = init.json as { videoId: string; uploadUrl: string };
    const third = Math.floor(good30.length / 3);

    const r1 = await patch(uploadUrl, 0, good30.subarray(0, third));
    expect(r1.status).toBe(204);
    expect(Number(r1.headers.get('upload-offset'))).toBe(third);

    // The second PATCH announces a whole third but the connection dies halfway through it.
    const half = Math.floor(third / 2);
    const onDisk = join(h.dataDir, 'uploads', videoId);
    await new Promise<void>((resolve, reject) => {
      const req = http.request(uploadUrl, { method: 'PATCH', headers: { ...tusHeaders(third), 'content-length': String(third) } });
      req.on('error', () => resolve()); // the reset we cause
      req.on('response', (res) => reject(new Error(`the interrupted PATCH got an answer: ${res.statusCode}`)));
      req.write(good30.subarray(third, third + half));
      // Cut the connection once the server has those bytes on disk.
      waitFor(
        'the first half of chunk 2 on disk',
        () => stat(onDisk).then((s) => s.size),
        (n) => n >= third + half,
        10_000,
      ).then(() => req.destroy(), reject);
    });
    const offset = await waitFor(
      'the interrupted PATCH to end',
      () => headOffset(uploadUrl),
      (n) => n === third + half,
      10_000,
    );
    expect(offset).toBe(third + half);
    expect((await h.catalog.videos.get(videoId))?.status).toBe('uploading');

    const r2 = await patch(uploadUrl, offset, good30.subarray(offset, 2 * third));
    expect(Number(r2.headers.get('upload-offset'))).toBe(2 * third);
    const r3 = await patch(uploadUrl, 2 * third, good30.subarray(2 * third));
    expect(r3.status).toBe(204);
    expect(Number(r3.headers.get('upload-offset'))).toBe(good30.length);
    expect((await h.catalog.videos.get(videoId))?.status).toMatch(/^(queued|processing)$/);

    const v = await settled(h, videoId);
    expect(v.error).toBeNull();
    expect(v).toMatchObject({ status: 'ready', progress: 100, thumbnail: true });
    expect(v.duration).toBeCloseTo(30, 0);
    expect(v.renditions.map((r) => [r.name, r.width, r.height])).toEqual([
      ['480p', 854, 480],
      ['360p', 640, 360],
    ]);
    expect(v.renditions[0].codecs).toMatch(/^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/);

    const master = join(h.store.root, 'videos', videoId, 'master.m3u8');
    const duration = await probeDuration(master);
    expect(Math.abs(duration - 30)).toBeLessThan(0.5);
    // Segments of every rung are cut at the same instants (forced keyframes), so ABR switches are seamless.
    const extinf = async (rung: string) =>
      (await readFile(join(h.store.root, 'videos', videoId, rung, 'index.m3u8'), 'utf8')).match(/#EXTINF:[\d.]+/g);
    expect(await extinf('360p')).toEqual(await extinf('480p'));
    expect((await stat(join(h.store.root, 'videos', videoId, 'poster.jpg'))).size).toBeGreaterThan(1000);

    const jobs = await h.catalog.jobs.forVideo(videoId);
    expect(jobs).toMatchObject([{ kind: 'package-upload', state: 'done', attempts: 1 }]);
    await expect(stat(onDisk)).rejects.toThrow(); // the upload is deleted once packaged
    expect(Date.now() - started).toBeLessThan(55_000);
  });

  it('fails bad uploads with their reason while a good one next to them becomes ready', async () => {
    const good = await makeVideo(join(media, 'good8.mp4'), 8, '640x360');
    const trunc = await makeVideo(join(media, 'faststart.mp4'), 12, '640x360', ['-movflags', '+faststart']);
    await run(ffmpeg, [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=300',
      '-t',
      '3',
      '-c:a',
      'aac',
      join(media, 'audio.mp4'),
    ]);
    const cases = [
      // Noise from a fixed seed: fresh random bytes now and then probe as a raw stream (h263, mp3), which is refused
      // with a different reason, so the test would not be about one thing.
      {
        name: 'noise.mp4',
        bytes: noise('livepack-upload-noise', 200_000),
        error: /^not a media file: ffprobe: Invalid data found when processing input/,
      },
      // moov at the end and the end missing: not readable at all.
      { name: 'cut.mp4', bytes: good30.subarray(0, Math.floor(good30.length / 2)), error: /^not a media file: .*moov atom not found/ },
      // moov first: readable, but half of the media it declares is missing.
      { name: 'half.mp4', bytes: trunc.subarray(0, Math.floor(trunc.length / 2)), error: /^truncated: only [\d.]+ s of the 12\.0 s/ },
      { name: 'song.mp4', bytes: await readFile(join(media, 'audio.mp4')), error: /^no video stream/ },
    ];
    const ids = await Promise.all([uploadWhole(h, good, 'good.mp4'), ...cases.map((c) => uploadWhole(h, c.bytes, c.name))]);
    const [goodVideo, ...bad] = await Promise.all(ids.map((id) => settled(h, id)));

    expect(goodVideo).toMatchObject({ status: 'ready', error: null });
    expect(Math.abs((await probeDuration(join(h.store.root, 'videos', goodVideo.id, 'master.m3u8'))) - 8)).toBeLessThan(0.5);
    for (const [i, v] of bad.entries()) {
      expect(v.status, cases[i].name).toBe('failed');
      expect(v.error, cases[i].name).toMatch(cases[i].error);
      const [job] = await h.catalog.jobs.forVideo(v.id);
      expect(job, cases[i].name).toMatchObject({ state: 'failed', attempts: 1 }); // bad media is not retried
      expect(await h.store.list(`videos/${v.id}/`), cases[i].name).toEqual([]);
      await expect(stat(join(h.dataDir, 'uploads', v.id))).rejects.toThrow();
    }
  });

  it('refuses an upload that is an HLS playlist of local files, and packages nothing of them', async () => {
    // What it lists: any file FFmpeg can read (another video's media under DATA_DIR, a file of the host).
    const secret = join(media, 'secret.ts');
    await run(ffmpeg, [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=320x240:rate=30:duration=4',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-f',
      'mpegts',
      secret,
    ]);
    const playlist = Buffer.from(
      ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:4', '#EXTINF:4.0,', secret, '#EXT-X-ENDLIST', ''].join('\n'),
    );
    const asMp4 = join(media, 'holiday.mp4');
    await writeFile(asMp4, playlist);
    // Unguarded, FFmpeg reads it by its content as a video: the file it names.
    const unguarded = JSON.parse(
      await run('ffprobe', ['-v', 'error', '-show_entries', 'format=format_name:stream=codec_type', '-of', 'json', asMp4]),
    );
    expect(unguarded).toMatchObject({ format: { format_name: 'hls' }, streams: [{ codec_type: 'video' }] });

    const id = await uploadWhole(h, playlist, 'holiday.mp4');
    const v = await settled(h, id);
    expect(v).toMatchObject({
      status: 'failed',
      error: 'not a media file: ffprobe: its format (hls) is not a video container this server accepts',
    });
    expect(await h.catalog.jobs.forVideo(id)).toMatchObject([{ state: 'failed', attempts: 1 }]);
    expect(await h.store.list(`videos/${id}/`)).toEqual([]);

    // FFmpeg itself is guarded too, should a file get past the probe.
    const probe = {
      duration: 4,
      videoDuration: 4,
      video: { index: 0, codec: 'h264', width: 320, height: 240, frameRate: 30 },
      audio: undefined,
    };
    const rungs = planFileRungs(probe.video);
    const ffmpegRun = runFfmpeg({
      ffmpegPath: ffmpeg,
      args: buildFileArgs({ input: asMp4, probe, rungs, x264Preset: 'ultrafast' }),
      extraFds: 1 + rungs.length,
      logger: silentLogger,
      timeoutMs: 30_000,
      stallTimeoutMs: 30_000,
      onPipes: (pipes) => pipes.forEach((p) => p.resume()),
    });
    await expect(ffmpegRun).rejects.toMatchObject({
      exitCode: 1,
      stderrTail: expect.arrayContaining([expect.stringMatching(/\[hls @ 0x[0-9a-f]+\] (\[error\] )?Format not on whitelist/)]),
    });
  });

  it('packages a WebM that does not say how long it is, with progress, and holds it to the longest duration', async () => {
    const webm = join(media, 'recorder.webm');
    await makeUnseekableWebm(webm, 20, '854x480');
    expect(await probeFile(webm, ffmpeg)).toMatchObject({ duration: 0, videoDuration: 0, video: { codec: 'vp8' } });

    const fractions: number[] = [];
    const packaged = await packageFile({
      input: webm,
      videoId: 'webm-no-duration',
      store: h.store,
      ffmpegPath: ffmpeg,
      logger: silentLogger,
      onProgress: (f) => fractions.push(f),
    });
    expect(Math.abs(packaged.duration - 20)).toBeLessThan(0.5);
    expect(Math.abs((await probeDuration(join(h.store.root, 'videos', 'webm-no-duration', 'master.m3u8'))) - 20)).toBeLessThan(0.5);
    // Progress by the share of the file read: some, rising, never claiming the end before it is reached.
    expect(fractions.length).toBeGreaterThan(0);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    for (const f of fractions) expect(f > 0 && f <= 0.99, String(f)).toBe(true);

    // The longest duration holds on the time decoded, as the file declares none.
    const tooLong = packageFile({
      input: webm,
      videoId: 'webm-too-long',
      store: h.store,
      ffmpegPath: ffmpeg,
      logger: silentLogger,
      maxDurationSeconds: 5,
    });
    await expect(tooLong).rejects.toThrow(BadMediaError);
    await expect(tooLong).rejects.toThrow('the video lasts longer than the limit of 5 s');
    await h.store.deletePrefix('videos/webm-no-duration/');
    await h.store.deletePrefix('videos/webm-too-long/');
  });

  it('packages a clip whose audio runs on after the picture ends (not "truncated")', async () => {
    const path = join(media, 'long-audio.mp4');
    await run(ffmpeg, [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=640x360:rate=30:duration=4',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000:duration=12',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      path,
    ]);
    expect(await probeFile(path, ffmpeg)).toMatchObject({ duration: 12, videoDuration: 4 });
    const id = await uploadWhole(h, await readFile(path), 'long-audio.mp4');
    const v = await settled(h, id);
    expect(v).toMatchObject({ status: 'ready', error: null });
    expect(v.duration).toBeGreaterThanOrEqual(3.5);
  });

  it('keeps a video uploading when its job cannot be enqueued; the client retries the last PATCH', async () => {
    const file = await makeVideo(join(media, 'enqueue.mp4'), 3, '640x360');
    const init = await initiate(h, { title: 'enqueue', size: file.length, filename: 'enqueue.mp4' });
    const { videoId, uploadUrl } = init.json as { videoId: string; uploadUrl: string };
    const jobs = h.catalog.jobs;
    jobs.enqueue = async () => {
      throw new Error('the database went away');
    };
    let last: Response;
    try {
      last = await patch(uploadUrl, 0, file);
    } finally {
      delete (jobs as { enqueue?: unknown }).enqueue; // the class's own again
    }
    expect(last.status).toBe(500);
    // Not 'queued' without a job: the client knows it is not done, and nothing waits for a job that never comes.
    expect((await h.catalog.videos.get(videoId))?.status).toBe('uploading');
    expect(await jobs.forVideo(videoId)).toEqual([]);

    const again = await patch(uploadUrl, file.length, Buffer.alloc(0));
    expect(again.status).toBe(204);
    expect(await settled(h, videoId)).toMatchObject({ status: 'ready', error: null });
    expect(await jobs.forVideo(videoId)).toMatchObject([{ state: 'done', attempts: 1 }]);
  });

  it('start-up sweep: a video left waiting on a failed job, or with no job at all, is packaged', async () => {
    await h.worker.close();
    const file = await makeVideo(join(media, 'sweep.mp4'), 3, '640x360');
    // The job failed for good, but its video's update never happened (an older server; the database lost).
    const stranded = await uploadWhole(h, file, 'stranded.mp4');
    const claimed = await h.catalog.jobs.claim('crashed-server', 30_000);
    expect(claimed?.videoId).toBe(stranded);
    await h.catalog.jobs.fail(claimed!.id, 'crashed-server', 'connection reset', { retry: false });
    await h.catalog.videos.update(stranded, { status: 'processing', progress: 40 });
    // Queued without a job (an older server set the status, then could not enqueue).
    const orphan = await h.catalog.videos.create({
      type: 'vod',
      source: 'upload',
      status: 'queued',
      title: 'orphan',
      upload: { filename: 'orphan.mp4', size: file.length },
    });
    const source = h.uploads.sourceOf(orphan.id);
    expect(source.kind).toBe('file');
    if (source.kind === 'file') await writeFile(source.path, file); // where its finished upload would be

    h.worker = h.newWorker();
    await h.worker.start();
    // Swept before any job is taken: both have a job that will run.
    for (const id of [stranded, orphan.id]) {
      const [job] = await h.catalog.jobs.forVideo(id);
      expect(job, id).toMatchObject({ id: `package-${id}`, kind: 'package-upload' });
      expect(['queued', 'running'], id).toContain(job.state);
    }
    const [a, b] = await Promise.all([settled(h, stranded), settled(h, orphan.id)]);
    expect(a).toMatchObject({ status: 'ready', error: null });
    expect(b).toMatchObject({ status: 'ready', error: null });
    expect(await h.catalog.jobs.forVideo(stranded)).toMatchObject([{ state: 'done', attempts: 1 }]);
    expect(await h.catalog.jobs.forVideo(orphan.id)).toMatchObject([{ state: 'done', attempts: 1 }]);
  });

  it('a failed attempt tells viewers only that it failed, and no late progress write overwrites that', async () => {
    await h.worker.close();
    const file = await makeVideo(join(media, 'flaky.mp4'), 20, '640x360');
    const id = await uploadWhole(h, file, 'flaky.mp4');
    // Progress reaches the catalog late (a slow database)...
    const progressWrites: Promise<unknown>[] = [];
    const videos = override(h.catalog.videos, {
      update: (videoId, p) => {
        if (Object.keys(p).join() !== 'progress') return h.catalog.videos.update(videoId, p);
        const write = delay(300).then(() => h.catalog.videos.update(videoId, p));
        progressWrites.push(write);
        return write;
      },
    });
    // ...and storage fails once progress was reported, saying where on this server.
    const where = join(h.store.root, 'videos', id);
    const store = override<ObjectStore>(h.store, {
      put: (key, body, opts) =>
        progressWrites.length > 0 ? Promise.reject(new Error(`EIO: i/o error, open '${where}/360p/x.m4s'`)) : h.store.put(key, body, opts),
    });
    const worker = new VodWorker({
      catalog: override(h.catalog, { videos }),
      store,
      uploads: h.uploads,
      ffmpegPath: ffmpeg,
      logger: silentLogger,
      workers: 1,
      leaseMs: 3000,
      pollMs: 200,
    });
    void worker.start();
    await waitFor(
      'the first attempt to fail',
      () => h.catalog.videos.get(id),
      (v) => v?.status === 'queued' && v.error !== null,
    );
    await worker.close();
    await Promise.all(progressWrites);
    expect(progressWrites.length).toBeGreaterThan(0);
    expect(await h.catalog.videos.get(id)).toMatchObject({
      status: 'queued',
      progress: 0,
      error: 'packaging failed; retrying (attempt 2 of 3)',
    });
    // The detail is for operators: in the job (and the log), not on the video.
    expect((await h.catalog.jobs.forVideo(id))[0].lastError).toContain('EIO');

    h.worker = h.newWorker();
    void h.worker.start();
    expect(await settled(h, id)).toMatchObject({ status: 'ready', progress: 100, error: null });
    expect(await h.catalog.jobs.forVideo(id)).toMatchObject([{ state: 'done', attempts: 2 }]);
  });

  it('packageFile: a failed run waits for the segment writes it started, and publishes nothing unconfirmed', async () => {
    const input = join(media, 'good30.mp4');
    // A run stopped while a slow write is under way rejects only once that write has ended.
    const controller = new AbortController();
    let started = 0;
    let inFlight = 0;
    const slow = override<ObjectStore>(h.store, {
      put: async (key, body, opts) => {
        started++;
        inFlight++;
        controller.abort(new Error('stopped'));
        try {
          await delay(1500);
          return await h.store.put(key, body, opts);
        } finally {
          inFlight--;
        }
      },
    });
    await expect(
      packageFile({ input, videoId: 'drain-test', store: slow, ffmpegPath: ffmpeg, logger: silentLogger, signal: controller.signal }),
    ).rejects.toThrow('stopped');
    expect(started).toBeGreaterThan(0);
    expect(inFlight).toBe(0);

    // Publishing waits for beforePublish (the worker's lease check): when it throws, no playlist and no poster.
    const small = join(media, 'publish.mp4');
    await makeVideo(small, 4, '640x360');
    const lost = packageFile({
      input: small,
      videoId: 'publish-test',
      store: h.store,
      ffmpegPath: ffmpeg,
      logger: silentLogger,
      beforePublish: async () => Promise.reject(new Error('lease lost')),
    });
    await expect(lost).rejects.toThrow('lease lost');
    const keys = await h.store.list('videos/publish-test/');
    expect(keys.some((k) => k.endsWith('.m4s'))).toBe(true);
    expect(keys.filter((k) => /\.m3u8$|poster\.jpg$/.test(k))).toEqual([]);
    await h.store.deletePrefix('videos/drain-test/');
    await h.store.deletePrefix('videos/publish-test/');
  });

  it('runFfmpeg ends on abort even while an output pipe is paused and never read again', async () => {
    const controller = new AbortController();
    const ended = runFfmpeg({
      ffmpegPath: ffmpeg,
      args: [
        '-hide_banner',
        '-nostdin',
        '-loglevel',
        'error',
        '-progress',
        'pipe:3',
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=640x360:rate=30',
        '-t',
        '600',
        '-f',
        'rawvideo',
        'pipe:4',
      ],
      extraFds: 2,
      logger: silentLogger,
      signal: controller.signal,
      timeoutMs: 60_000,
      stallTimeoutMs: 60_000,
      // As a rung whose storage hangs: still listened to, paused for backpressure, then never resumed.
      onPipes: ([out]) =>
        out.on('data', () => {
          if (out.isPaused()) return;
          out.pause();
          controller.abort(new Error('shutting down'));
        }),
    });
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('runFfmpeg did not end')), 15_000)));
    await expect(Promise.race([ended, hung])).rejects.toThrow('shutting down');
    clearTimeout(timer);
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  it('probes with `ffmpeg -i` where no ffprobe sits beside FFmpeg (the npm-bundled binary has none)', async () => {
    const bin = join(media, 'bin');
    await mkdir(bin);
    await symlink(ffmpeg, join(bin, 'ffmpeg'));
    const viaBanner = await probeFile(join(media, 'good30.mp4'), join(bin, 'ffmpeg'));
    const viaProbe = await probeFile(join(media, 'good30.mp4'), ffmpeg);
    expect(viaBanner.video).toEqual({ ...viaProbe.video, codec: 'h264' });
    expect(viaBanner.audio).toMatchObject({ index: 1, codec: 'aac', sampleRate: 48000 });
    expect(Math.abs(viaBanner.duration - viaProbe.duration)).toBeLessThan(0.05);
    await expect(probeFile(join(media, 'good30.mp4') + '.missing', join(bin, 'ffmpeg'))).rejects.toThrow(
      /^not a media file: ffmpeg: No such file or directory/,
    );
  });

  it('close() stops FFmpeg and gives the job back; the next worker finishes it', async () => {
    const file = await makeVideo(join(media, 'long.mp4'), 60, '854x480');
    const id = await uploadWhole(h, file, 'long.mp4');
    await waitFor(
      'packaging to be under way',
      () => h.catalog.videos.get(id),
      (v) => v?.status === 'processing' && v.progress > 0,
      30_000,
    );
    const t0 = Date.now();
    await h.worker.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await h.catalog.jobs.forVideo(id)).toMatchObject([{ state: 'queued', attempts: 0, leaseOwner: null }]);
    expect(await h.catalog.videos.get(id)).toMatchObject({ status: 'queued', progress: 0 });
    expect(h.worker.counters.released).toBe(1);

    h.worker = h.newWorker();
    void h.worker.start();
    const v = await settled(h, id);
    expect(v).toMatchObject({ status: 'ready', error: null });
    expect(Math.abs((v.duration ?? 0) - 60)).toBeLessThan(0.5);
    // Only the finished run's objects are listed (the stopped run's were cleared before it).
    const objects = await h.store.list(`videos/${id}/480p/`);
    expect(new Set(objects.filter((k) => k.endsWith('.m4s')).map((k) => k.split('/').pop()!.split('-')[0])).size).toBe(1);
  });
});

describe.skipIf(skipPostgres)('VOD upload jobs on PostgreSQL', () => {
  let h: Harness;
  let media: string;

  beforeAll(async () => {
    media = await mkdtemp(join(tmpdir(), 'livepack-upload-pg-'));
    h = await startHarness({ postgres: true });
  });

  afterAll(async () => {
    await h?.close();
    await rm(media, { recursive: true, force: true });
  });

  it('a job whose server died mid-run is taken again once its lease runs out', async () => {
    await h.worker.close(); // no worker until the "dead" server holds the job
    const file = await makeVideo(join(media, 'clip.mp4'), 6, '640x360');
    const id = await uploadWhole(h, file, 'clip.mp4');
    const dead = await h.catalog.jobs.claim('dead-server', 1500);
    expect(dead).toMatchObject({ videoId: id, attempts: 1 });
    await h.catalog.videos.update(id, { status: 'processing', progress: 40 });

    h.worker = h.newWorker('survivor');
    void h.worker.start();
    const claimedAt = Date.now();
    const v = await settled(h, id);
    expect(v).toMatchObject({ status: 'ready', error: null });
    expect(Math.abs((await probeDuration(join(h.store.root, 'videos', id, 'master.m3u8'))) - 6)).toBeLessThan(0.5);
    expect(Date.now() - claimedAt).toBeGreaterThanOrEqual(1000); // not before the dead server's lease ran out
    expect(await h.catalog.jobs.forVideo(id)).toMatchObject([{ state: 'done', attempts: 2 }]);
  });

  it('a job that kills its server every time fails once its attempts are used up', async () => {
    const file = await makeVideo(join(media, 'cursed.mp4'), 2, '640x360');
    await h.worker.close();
    const id = await uploadWhole(h, file, 'cursed.mp4');
    for (let i = 1; i <= 3; i++) {
      const j = await waitFor(
        'the lease to run out',
        () => h.catalog.jobs.claim(`crasher-${i}`, 300),
        (x) => x !== undefined,
        5000,
      );
      expect(j).toMatchObject({ videoId: id, attempts: i });
    }
    h.worker = h.newWorker();
    void h.worker.start();
    const v = await settled(h, id);
    expect(v.status).toBe('failed');
    expect(v.error).toBe('packaging failed after 3 attempts; see the server log');
  });
});
