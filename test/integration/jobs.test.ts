/**
 * The catalog's job queue on embedded PGlite and on a real PostgreSQL (its own random schema): claim,
 * leases and their expiry, heartbeats, retry backoff, attempts, release, and (PostgreSQL) two servers'
 * claimers racing without ever getting the same job. Time is a hand-moved clock: leases and backoffs
 * expire by moving it, not by sleeping.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/core/index.js';
import { JobQueue, VideoStore } from '../../src/catalog/index.js';
import { toDate } from '../../src/catalog/types.js';
import { openPglite, openPostgres } from '../../src/catalog/db.js';
import type { Db } from '../../src/catalog/db.js';
import { migrate } from '../../src/catalog/migrations.js';
import { dropSchemas, PG_URL, skipPostgres } from '../helpers/catalog.js';

interface Backend {
  open(): Promise<Db>;
  teardown(): Promise<void>;
}

function pgliteBackend(): Backend {
  let dir: string | undefined;
  return {
    open: async () => {
      dir ??= await mkdtemp(join(tmpdir(), 'livepack-jobs-'));
      return openPglite(join(dir, 'catalog'), silentLogger);
    },
    teardown: async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  const schema = `jobs_test_${randomBytes(6).toString('hex')}`;
  return {
    open: () => openPostgres({ url: PG_URL, schema, logger: silentLogger }),
    teardown: () => dropSchemas([schema]),
  };
}

const LEASE = 30_000;

function queueSuite(kind: 'pglite' | 'postgres', backend: Backend): void {
  let db: Db;
  let t = Date.parse('2031-05-01T12:00:00.000Z');
  const clock = () => t;
  let jobs: JobQueue;
  let videos: VideoStore;

  beforeAll(async () => {
    db = await backend.open();
    await migrate(db, silentLogger);
    jobs = new JobQueue(db, { now: clock, backoffBaseMs: 2000, backoffMaxMs: 10_000 });
    videos = new VideoStore(db);
  });

  afterAll(async () => {
    await db?.close();
    await backend.teardown();
  });

  /** Each test starts on an empty queue and no videos, with its clock well past anything earlier tests left due. */
  const fresh = async () => {
    await db.query('DELETE FROM jobs');
    await db.query('DELETE FROM videos');
    t += 24 * 3600_000;
  };

  it(`claims a due job once, with a lease (${kind})`, async () => {
    await fresh();
    expect(await jobs.claim('w1', LEASE)).toBeUndefined();
    const job = await jobs.enqueue({ kind: 'package-upload', payload: { a: 1 } });
    expect(job).toMatchObject({ state: 'queued', attempts: 0, maxAttempts: 3, payload: { a: 1 }, leaseOwner: null });

    const claimed = await jobs.claim('w1', LEASE);
    expect(claimed).toMatchObject({ id: job.id, state: 'running', attempts: 1, leaseOwner: 'w1' });
    expect(claimed!.leaseUntil!.getTime()).toBe(t + LEASE);
    expect(await jobs.claim('w2', LEASE)).toBeUndefined();

    expect(await jobs.complete(job.id, 'w2')).toBe(false);
    expect(await jobs.complete(job.id, 'w1')).toBe(true);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'done', leaseOwner: null, leaseUntil: null });
    expect(await jobs.claim('w2', LEASE)).toBeUndefined();
  });

  it(`does not hand out a job before its run_at, and takes the longest-waiting first (${kind})`, async () => {
    await fresh();
    const later = await jobs.enqueue({ kind: 'k', runAt: new Date(t + 5000) });
    const first = await jobs.enqueue({ kind: 'k', runAt: new Date(t - 2000) });
    const second = await jobs.enqueue({ kind: 'k', runAt: new Date(t - 1000) });
    expect((await jobs.claim('w', LEASE))?.id).toBe(first.id);
    expect((await jobs.claim('w', LEASE))?.id).toBe(second.id);
    expect(await jobs.claim('w', LEASE)).toBeUndefined();
    t += 5000;
    expect((await jobs.claim('w', LEASE))?.id).toBe(later.id);
  });

  it(`keeps a heartbeating job, and lets another worker take one whose lease ran out (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k' });
    await jobs.claim('w1', LEASE);
    t += LEASE - 1;
    expect(await jobs.heartbeat(job.id, 'w1', LEASE)).toBe(true);
    t += LEASE - 1;
    expect(await jobs.claim('w2', LEASE)).toBeUndefined(); // renewed: still w1's
    t += 2; // now past the renewed lease: w1 is presumed dead
    const retaken = await jobs.claim('w2', LEASE);
    expect(retaken).toMatchObject({ id: job.id, state: 'running', attempts: 2, leaseOwner: 'w2' });
    // The first worker has lost it: it can neither renew, complete nor fail it.
    expect(await jobs.heartbeat(job.id, 'w1', LEASE)).toBe(false);
    expect(await jobs.complete(job.id, 'w1')).toBe(false);
    expect(await jobs.fail(job.id, 'w1', 'late', { retry: true })).toBeUndefined();
    expect(await jobs.heartbeat(job.id, 'w2', LEASE)).toBe(true);
  });

  it(`retries with exponential backoff until maxAttempts, then fails for good (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k', maxAttempts: 4 });
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const c = await jobs.claim('w', LEASE);
      expect(c).toMatchObject({ id: job.id, attempts: attempt });
      const after = await jobs.fail(job.id, 'w', `boom ${attempt}`, { retry: true });
      expect(after).toMatchObject({ state: 'queued', lastError: `boom ${attempt}`, leaseOwner: null });
      const wait = after!.runAt.getTime() - t;
      waits.push(wait);
      t += wait - 1;
      expect(await jobs.claim('w', LEASE)).toBeUndefined();
      t += 1;
    }
    // 2 s, 4 s, 8 s: base x 2^(attempts-1); the next would be 16 s, capped at 10 s, but attempts run out.
    expect(waits).toEqual([2000, 4000, 8000]);
    await jobs.claim('w', LEASE);
    const last = await jobs.fail(job.id, 'w', 'boom 4', { retry: true });
    expect(last).toMatchObject({ state: 'failed', attempts: 4, lastError: 'boom 4' });
    t += 3600_000;
    expect(await jobs.claim('w', LEASE)).toBeUndefined();
  });

  it(`caps the backoff (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k', maxAttempts: 10 });
    let wait = 0;
    for (let attempt = 1; attempt <= 5; attempt++) {
      await jobs.claim('w', LEASE);
      const after = await jobs.fail(job.id, 'w', 'x', { retry: true });
      wait = after!.runAt.getTime() - t;
      t += wait;
    }
    expect(wait).toBe(10_000);
  });

  it(`fails at once without retry, and truncates a huge error (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k' });
    await jobs.claim('w', LEASE);
    const after = await jobs.fail(job.id, 'w', `not a media file ${'x'.repeat(5000)}`, { retry: false });
    expect(after).toMatchObject({ state: 'failed', attempts: 1 });
    expect(after!.lastError!.length).toBe(2000);
  });

  it(`a worker that kills itself every time ends with attempts > maxAttempts (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k', maxAttempts: 2 });
    for (let i = 1; i <= 3; i++) {
      expect(await jobs.claim(`w${i}`, LEASE)).toMatchObject({ id: job.id, attempts: i });
      t += LEASE + 1; // the worker died with it
    }
  });

  it(`gives an attempt back when a dependency was down, queued again at once even on its last attempt (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k', maxAttempts: 1 });
    // Ten attempts in an FFmpeg outage, on a job allowed one: none is counted, none fails it.
    for (let i = 0; i < 10; i++) {
      expect(await jobs.claim('w', LEASE)).toMatchObject({ id: job.id, attempts: 1 });
      const after = await jobs.fail(job.id, 'w', 'ffmpeg does not run', { retry: true, counted: false });
      expect(after).toMatchObject({ state: 'queued', attempts: 0, leaseOwner: null, lastError: 'ffmpeg does not run' });
      expect(after!.runAt.getTime()).toBe(t);
    }
    // The dependency is back and the job's own attempt fails: that one counts.
    await jobs.claim('w', LEASE);
    expect(await jobs.fail(job.id, 'w', 'boom', { retry: true })).toMatchObject({ state: 'failed', attempts: 1 });
  });

  it(`reads the database's clock when none is injected: a host clock an hour fast takes no lease early (${kind})`, async () => {
    await fresh();
    const real = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() + 3600_000);
    try {
      const queue = new JobQueue(db);
      const job = await queue.enqueue({ kind: 'k' });
      const claimed = await queue.claim('w', LEASE);
      const dbNow = toDate((await db.query<{ now: Date | string }>('SELECT now() AS now')).rows[0].now).getTime();
      expect(claimed).toMatchObject({ id: job.id, attempts: 1 });
      expect(Math.abs(job.runAt.getTime() - dbNow)).toBeLessThan(5000);
      expect(Math.abs(claimed!.leaseUntil!.getTime() - (dbNow + LEASE))).toBeLessThan(5000);
      // By the database's clock the lease is live: nobody else takes the job.
      expect(await queue.claim('w2', LEASE)).toBeUndefined();
      expect(await queue.heartbeat(job.id, 'w', LEASE)).toBe(true);
      const failed = await queue.fail(job.id, 'w', 'boom', { retry: true });
      expect(failed!.runAt.getTime() - failed!.updatedAt.getTime()).toBe(2000);
    } finally {
      spy.mockRestore();
    }
  });

  it(`releases a job without counting the attempt (${kind})`, async () => {
    await fresh();
    const job = await jobs.enqueue({ kind: 'k' });
    await jobs.claim('w1', LEASE);
    expect(await jobs.release(job.id, 'w2')).toBe(false);
    expect(await jobs.release(job.id, 'w1')).toBe(true);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'queued', attempts: 0, leaseOwner: null });
    expect(await jobs.claim('w2', LEASE)).toMatchObject({ id: job.id, attempts: 1 });
  });

  it(`enqueues idempotently by id, filters by kind, and goes with its video (${kind})`, async () => {
    await fresh();
    const video = await videos.create({ type: 'vod', source: 'upload', status: 'queued', title: 'jobs test' });
    const a = await jobs.enqueue({ id: `pkg-${video.id}`, kind: 'package-upload', videoId: video.id, payload: { n: 1 } });
    const again = await jobs.enqueue({ id: `pkg-${video.id}`, kind: 'package-upload', videoId: video.id, payload: { n: 2 } });
    expect(again).toEqual(a);
    expect(await jobs.forVideo(video.id)).toEqual([a]);

    await jobs.enqueue({ kind: 'other' });
    expect(await jobs.claim('w', LEASE, ['nothing-of-that-kind'])).toBeUndefined();
    expect((await jobs.claim('w', LEASE, ['package-upload']))?.id).toBe(a.id);

    await videos.delete(video.id);
    expect(await jobs.get(a.id)).toBeUndefined();
    expect(await jobs.heartbeat(a.id, 'w', LEASE)).toBe(false);
  });

  it(`enqueues a video's job and moves the video in the same statement, or neither (${kind})`, async () => {
    await fresh();
    const video = await videos.create({ type: 'vod', source: 'upload', status: 'uploading', title: 'atomic enqueue' });
    const move = { video: { from: ['uploading'] as const, to: 'queued' as const } };
    const job = await jobs.enqueue({ id: `package-${video.id}`, kind: 'package-upload', videoId: video.id }, move);
    expect(job).toMatchObject({ state: 'queued', videoId: video.id });
    expect(await videos.get(video.id)).toMatchObject({ status: 'queued', progress: 0, error: null });
    // Again (a client retrying its last PATCH): the same job, and a video already past 'uploading' stays.
    await videos.update(video.id, { status: 'processing', progress: 30 });
    expect(await jobs.enqueue({ id: `package-${video.id}`, kind: 'package-upload', videoId: video.id }, move)).toEqual(job);
    expect(await videos.get(video.id)).toMatchObject({ status: 'processing', progress: 30 });

    // When the job cannot be inserted (here: no kind, a NOT NULL column), the video does not move either.
    const other = await videos.create({ type: 'vod', source: 'upload', status: 'uploading', title: 'no job' });
    await expect(jobs.enqueue({ id: `package-${other.id}`, kind: null as unknown as string, videoId: other.id }, move)).rejects.toThrow();
    expect(await jobs.forVideo(other.id)).toEqual([]);
    expect((await videos.get(other.id))?.status).toBe('uploading');
  });

  it(`fails a job and its video together: queued with the retry text, then failed with the final one (${kind})`, async () => {
    await fresh();
    const video = await videos.create({ type: 'vod', source: 'upload', status: 'processing', title: 'fails' });
    await videos.update(video.id, { progress: 57 });
    const job = await jobs.enqueue({ id: `package-${video.id}`, kind: 'package-upload', videoId: video.id, maxAttempts: 2 });
    const texts = {
      retrying: 'packaging failed; retrying (attempt 2 of 2)',
      failed: 'packaging failed after 2 attempts; see the server log',
    };
    await jobs.claim('w', LEASE);
    const first = await jobs.fail(job.id, 'w', '/abs/data/uploads/x is gone', { retry: true, video: texts });
    expect(first).toMatchObject({ state: 'queued', lastError: '/abs/data/uploads/x is gone' });
    expect(await videos.get(video.id)).toMatchObject({ status: 'queued', progress: 0, error: texts.retrying });

    t += 10_000;
    await jobs.claim('w', LEASE);
    await videos.update(video.id, { status: 'processing', error: null });
    // Not the owner: neither row changes.
    expect(await jobs.fail(job.id, 'someone-else', 'x', { retry: true, video: texts })).toBeUndefined();
    expect((await videos.get(video.id))?.status).toBe('processing');
    expect(await jobs.fail(job.id, 'w', 'ffmpeg: /abs/path', { retry: true, video: texts })).toMatchObject({
      state: 'failed',
      attempts: 2,
    });
    expect(await videos.get(video.id)).toMatchObject({ status: 'failed', progress: 0, error: texts.failed });
  });

  it(`revives the ended job of a video still waiting for it, and finds videos with no job (${kind})`, async () => {
    await fresh();
    const make = (status: 'queued' | 'processing' | 'ready' | 'failed', title: string) =>
      videos.create({ type: 'vod', source: 'upload', status, title });
    const stuckFailed = await make('processing', 'failed job, video processing');
    const stuckDone = await make('queued', 'done job, video queued');
    const fine = await make('ready', 'done job, video ready');
    const failedForGood = await make('failed', 'failed job, video failed');
    const running = await make('processing', 'running job');
    const orphan = await make('queued', 'no job at all');
    const recording = await videos.create({ type: 'vod', source: 'recording', status: 'processing', title: 'a recording' });
    const ended = async (videoId: string, how: 'done' | 'failed') => {
      const job = await jobs.enqueue({ id: `package-${videoId}`, kind: 'package-upload', videoId, maxAttempts: 1 });
      await jobs.claim('w', LEASE);
      if (how === 'done') await jobs.complete(job.id, 'w');
      else await jobs.fail(job.id, 'w', 'boom', { retry: false });
    };
    await ended(stuckFailed.id, 'failed');
    await ended(stuckDone.id, 'done');
    await ended(fine.id, 'done');
    await ended(failedForGood.id, 'failed');
    await jobs.enqueue({ id: `package-${running.id}`, kind: 'package-upload', videoId: running.id });
    await jobs.claim('w', LEASE);

    const revived = await jobs.revive('package-upload', ['queued', 'processing']);
    expect(revived.map((j) => j.videoId).sort()).toEqual([stuckFailed.id, stuckDone.id].sort());
    for (const j of revived) expect(j).toMatchObject({ state: 'queued', attempts: 0, leaseOwner: null, runAt: new Date(t) });
    expect(await videos.get(stuckFailed.id)).toMatchObject({ status: 'queued', progress: 0 });
    expect((await jobs.get(`package-${fine.id}`))?.state).toBe('done');
    expect((await jobs.get(`package-${failedForGood.id}`))?.state).toBe('failed');
    expect((await jobs.get(`package-${running.id}`))?.state).toBe('running');
    // Revived ones run again, once.
    expect(await jobs.revive('package-upload', ['queued', 'processing'])).toEqual([]);

    expect(await jobs.videosWithoutJob('package-upload', 'upload', ['queued', 'processing'])).toEqual([orphan.id]);
    expect(await jobs.videosWithoutJob('package-upload', 'recording', ['processing'])).toEqual([recording.id]);
  });
}

describe('job queue on PGlite', () => {
  queueSuite('pglite', pgliteBackend());
});

describe.skipIf(skipPostgres)('job queue on PostgreSQL', () => {
  queueSuite('postgres', postgresBackend());

  it('never gives one job to two claimers racing on two servers (SKIP LOCKED)', async () => {
    const backend = postgresBackend();
    // Two pools: two servers sharing one database, each claiming with several connections at once.
    const [a, b] = [await backend.open(), await backend.open()];
    try {
      await migrate(a, silentLogger);
      const qa = new JobQueue(a);
      const qb = new JobQueue(b);
      const total = 60;
      for (let i = 0; i < total; i++) await qa.enqueue({ kind: 'race' });
      const claimed: string[] = [];
      const claimer = async (q: JobQueue, owner: string) => {
        for (;;) {
          const job = await q.claim(owner, LEASE);
          if (!job) return;
          claimed.push(job.id);
        }
      };
      const started = Date.now();
      await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => claimer(qa, `a${i}`)),
        ...Array.from({ length: 6 }, (_, i) => claimer(qb, `b${i}`)),
      ]);
      expect(claimed).toHaveLength(total);
      expect(new Set(claimed).size).toBe(total);
      const { rows } = await a.query<{ n: string }>(`SELECT count(*) AS n FROM jobs WHERE state = 'running' AND attempts = 1`);
      expect(Number(rows[0].n)).toBe(total);
      // No claimer waited on another's lock (SKIP LOCKED): sixty claims are quick.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await a.close();
      await b.close();
      await backend.teardown();
    }
  });
});
