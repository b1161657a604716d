/**
 * Fault: the disk under DATA_DIR/media fills up while a stream is recorded. DATA_DIR/media and
 * DATA_DIR/uploads are each a small tmpfs (the catalog stays on the real disk); a file fills both for 9 s,
 * then is removed; nothing is restarted. Live viewers keep watching (live media is served from memory);
 * what the recorder could not store is a counted EXT-X-GAP and the rest of the recording is whole; an
 * upload meanwhile is refused clearly (initiate: 503 E_UNAVAILABLE + Retry-After; a PATCH: tus 507) and
 * resumes from its offset once there is room. Needs root for mount(8): skipped otherwise.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { kill, waitExit } from '../../harness/processes.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';
import {
  health,
  liveNextMsn,
  makeClip,
  metric,
  readyVideo,
  settledVideo,
  upload,
  uploadUrlOf,
  vodSegments,
  watchLive,
  expectKeptWatching,
} from './helpers.js';

const PUBLISH_SECONDS = 24;
const OUTAGE_MS = 9000;
const TUS = { 'tus-resumable': '1.0.0' };

function mount(dir: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
}
function umount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); // something still holds a file open
  }
}

/** Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN). */
function canMount(): boolean {
  const probe = mkdtempSync(join(tmpdir(), 'livepack-faults-mount-'));
  try {
    mount(probe);
    umount(probe);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Appends to `path` until the filesystem says ENOSPC (64 KiB writes, then page-sized ones). */
function fillUp(path: string): void {
  const fd = openSync(path, 'a');
  try {
    for (const chunk of [Buffer.alloc(1 << 16), Buffer.alloc(4096), Buffer.alloc(512)]) {
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

const MOUNTABLE = canMount();
if (!MOUNTABLE) console.warn('[fault disk] skipped: mounting a tmpfs is not permitted here (needs root)');

describe.skipIf(!MOUNTABLE)('fault: the disk under DATA_DIR/media fills up', () => {
  let dataDir = '';
  let media = '';
  let uploads = '';
  const mounted: string[] = [];
  let srv: TestServer;
  let clip: Buffer;
  const cleanups: Array<() => unknown> = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'livepack-faults-disk-'));
    media = join(dataDir, 'media');
    uploads = join(dataDir, 'uploads');
    for (const d of [media, uploads]) {
      mkdirSync(d);
      mount(d);
      mounted.push(d);
    }
    clip = await makeClip(join(dataDir, 'clip.mp4'), 2);
    srv = await startTestServer({ DATA_DIR: dataDir, RECONNECT_GRACE_MS: '500' });
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await srv?.stop();
    for (const d of mounted) umount(d);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('viewers keep watching, uploads are refused clearly; afterwards the recording is whole but for counted gaps', async () => {
    const { json: live } = await srv.api('POST', '/api/v1/streams', { name: 'live-through', profile: 'passthrough' });
    const pub = ffmpegPublish(srv.rtmpUrl(live.streamKey), { seconds: PUBLISH_SECONDS });
    cleanups.push(() => kill(pub));
    await until(async () => (await liveNextMsn(srv, live.id)) >= 2, 25_000, 200);
    // An upload begun before the disk fills, to be sent while it is full.
    const init = await fetch(`${srv.base}/api/v1/videos/upload/initiate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'during', size: clip.length, filename: 'during.mp4' }),
    });
    expect(init.status).toBe(201);
    const answer = (await init.json()) as { videoId: string; uploadUrl: string };
    const { videoId } = answer;
    const uploadUrl = uploadUrlOf(srv, answer.uploadUrl);
    const patch = (offset: number, bytes: Buffer) =>
      fetch(uploadUrl, {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${srv.apiToken}`,
          ...TUS,
          'upload-offset': String(offset),
          'content-type': 'application/offset+octet-stream',
        },
        body: new Uint8Array(bytes),
        signal: AbortSignal.timeout(10_000),
      });

    const fills = [join(media, 'fill'), join(uploads, 'fill')];
    for (const f of fills) fillUp(f);
    // Writes the recorder gives up free their temporary files: keep the disk full for the whole outage.
    const topUp = setInterval(() => fills.forEach(fillUp), 200);
    cleanups.push(() => clearInterval(topUp));
    const watching = watchLive(srv, live.id, OUTAGE_MS);

    // A new upload is refused at once with a code and when to come back; one under way gets 507.
    const t0 = Date.now();
    const refused = await upload(srv, clip, 'while-full.mp4');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(refused.initiate.status, JSON.stringify(refused.initiate.json)).toBe(503);
    expect(refused.initiate.json.error.code).toBe('E_UNAVAILABLE');
    expect(refused.initiate.json.error.message).toMatch(/no storage space/);
    expect(Number(refused.initiate.retryAfter)).toBeGreaterThan(0);
    const full = await patch(0, clip);
    const fullBody = await full.text();
    expect(full.status, fullBody).toBe(507);
    expect(fullBody).toMatch(/no storage space/);
    // /healthz names the full disk (its storage probe looks at the free space).
    expect((await health(srv)).dependencies.storage).toBe('down');

    const seen = await watching;
    expectKeptWatching(seen, 3);

    clearInterval(topUp);
    for (const f of fills) rmSync(f);
    await until(async () => (await health(srv)).dependencies.storage === 'ok', 5000, 200);

    // The upload resumes from where it stopped and is packaged.
    const head = await fetch(uploadUrl, { method: 'HEAD', headers: { authorization: `Bearer ${srv.apiToken}`, ...TUS } });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get('upload-offset'));
    expect((await patch(offset, clip.subarray(offset))).status).toBe(204);

    expect(await waitExit(pub, (PUBLISH_SECONDS + 15) * 1000)).toBe(0);
    const video = await readyVideo(srv, live.id, 40_000);
    const { segments, gaps } = await vodSegments(srv, video.id);
    const failed = await metric(srv, 'livepack_recorder_failed_segments_total');
    console.log(`[fault disk] recording ${video.duration} s in ${segments.length} segments, ${gaps} gaps, ${failed} failed segments`);
    // Every segment that could not be stored is a counted gap in the asset's playlist; nothing else is missing.
    expect(gaps).toBe(failed);
    // ...and in the video's metadata.
    expect(video.renditions.find((r: { name: string }) => r.name === 'source')?.gaps ?? 0).toBe(gaps);
    const gapSeconds = segments.filter((s) => s.gap).reduce((n, s) => n + s.duration, 0);
    expect(video.duration + gapSeconds).toBeGreaterThan(PUBLISH_SECONDS - 2.5);
    // Segments after the outage were stored: the recording did not stop at the full disk.
    expect(segments.at(-1)?.gap).toBe(false);

    const packaged = await settledVideo(srv, videoId, 30_000);
    expect(packaged.status, JSON.stringify(packaged)).toBe('ready');
  }, 120_000);
});
