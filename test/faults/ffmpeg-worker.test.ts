/**
 * Fault: FFmpeg stops running on a node that packages uploads but runs no live ladder (NODE_ROLES
 * origin,worker), so only the upload worker can notice. FFMPEG_PATH is a script that exits 1 at once, or
 * hands over to the real FFmpeg. With VOD_JOB_ATTEMPTS=1, an upload that meets the outage is not failed:
 * its attempts are not counted, its video says it waits for FFmpeg, /healthz says FFmpeg is down; once
 * FFmpeg runs again the upload is packaged and /healthz says ok. Nothing is restarted.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFfmpeg } from '../../src/process/index.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';
import { health, makeClip, metric, settledVideo, upload } from './helpers.js';

describe('fault: FFmpeg stops running on an upload worker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'livepack-faults-ffmpeg-worker-'));
  const script = join(dir, 'ffmpeg');
  const realFfmpeg = findFfmpeg({ PATH: process.env.PATH });
  const mode = (m: 'exit1' | 'ok') => writeFileSync(join(dir, 'mode'), m);
  let srv: TestServer;
  let clip: Buffer;

  beforeAll(async () => {
    writeFileSync(
      script,
      ['#!/bin/sh', `[ "$(cat '${join(dir, 'mode')}' 2>/dev/null)" = ok ] && exec '${realFfmpeg}' "$@"`, 'exit 1', ''].join('\n'),
    );
    chmodSync(script, 0o755);
    mode('ok');
    clip = await makeClip(join(dir, 'clip.mp4'), 3);
    srv = await startTestServer({ NODE_ROLES: 'origin,worker', FFMPEG_PATH: script, VOD_JOB_ATTEMPTS: '1' });
  });
  afterAll(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for FFmpeg without using up the attempts, says so in /healthz, and packages once it runs', async () => {
    expect((await health(srv)).dependencies.ffmpeg).toBe('ok');
    mode('exit1');
    const up = await upload(srv, clip, 'clip.mp4');
    expect(up.patch?.status, up.patch?.body).toBe(204);
    const videoId: string = up.initiate.json.videoId;
    const waiting = await until(async () => {
      const { json: v } = await srv.api('GET', `/api/v1/videos/${videoId}`);
      return v?.error?.includes('waits for FFmpeg') ? v : undefined;
    }, 20_000);
    expect(waiting.status).toBe('queued');
    expect((await health(srv)).dependencies.ffmpeg).toBe('down');
    // Past a few probes (2 s, 4 s): still waiting, not failed, though only one attempt is allowed.
    await new Promise((r) => setTimeout(r, 7000));
    const still = (await srv.api('GET', `/api/v1/videos/${videoId}`)).json;
    expect(still.status, JSON.stringify(still)).not.toBe('failed');
    expect(await metric(srv, 'livepack_vod_jobs_failed_total')).toBe(0);

    mode('ok');
    // The worker probes at most 30 s apart; then one attempt packages the clip.
    const packaged = await settledVideo(srv, videoId, 60_000);
    expect(packaged.status, JSON.stringify(packaged)).toBe('ready');
    expect(packaged.error).toBeNull();
    expect((await health(srv)).dependencies.ffmpeg).toBe('ok');
  });
});
