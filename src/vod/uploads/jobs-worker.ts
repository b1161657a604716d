/**
 * The VOD worker: takes 'package-upload' jobs from the catalog's queue and packages each upload into a
 * VOD asset (package-file.ts), up to `workers` at once. It polls (and is nudged when this process enqueues
 * a job), renews each job's lease every third of it, and survives a restart: a job whose server was killed
 * is taken again, here or elsewhere, once its lease ran out. close() stops the FFmpeg of running jobs and
 * gives them back to the queue at once.
 *
 * Failures: media that cannot become a video (BadMediaError) fails the video and the job at once, with the
 * reason for the uploader; anything else (FFmpeg killed, storage or database down) is retried with backoff
 * until the job's attempts run out. When a failed attempt finds FFmpeg or the object store itself not working
 * (FFmpeg does not run `-version`, the store's ping fails), the attempt is not counted: the job is queued
 * again and this worker claims nothing until the dependency works, probing it with backoff (2 s to 30 s),
 * so an outage of any length fails no upload, and another node whose FFmpeg works may take the job
 * meanwhile. A video's error can be read by anyone who can see the video, so only a
 * BadMediaError's reason goes there; other reasons (paths, FFmpeg's stderr, storage errors) go to the log
 * and the job's last_error, and the video says "packaging failed; retrying (attempt 2 of 3)". The job's
 * outcome and its video's status change in one statement (JobQueue.fail).
 *
 * start() first sweeps for upload videos left waiting with no job that will run them (JobQueue.revive).
 */
import { hostname } from 'node:os';
import { AppError, monotonicNow, newId, type Logger } from '../../core/index.js';
import type { Catalog, JobRecord } from '../../catalog/index.js';
import { ffmpegRuns } from '../../process/index.js';
import type { ObjectStore } from '../../storage/index.js';
import { videoPrefix } from '../assets.js';
import { packageFile, type PackageFileOptions } from './package-file.js';
import { isBadMedia } from './probe.js';
import { PACKAGE_UPLOAD, type PackageUploadPayload, type Uploads, type UploadSource } from './intake.js';

export interface VodWorkerOptions {
  readonly catalog: Catalog;
  readonly store: ObjectStore;
  readonly uploads: Pick<Uploads, 'open' | 'remove' | 'queuePackaging'>;
  readonly ffmpegPath: string;
  readonly logger: Logger;
  /** Jobs run at once (VOD_WORKERS); 0 runs none. */
  readonly workers: number;
  /** VOD_JOB_LEASE_MS. */
  readonly leaseMs: number;
  /** Default 'veryfast'. */
  readonly x264Preset?: string;
  /**
   * How often the queue is looked at without a nudge (jobs enqueued by other origins sharing the database,
   * leases of dead workers). Default 2000 ms.
   */
  readonly pollMs?: number;
  /** Names this worker in leases. Default host/pid/random. */
  readonly owner?: string;
  /** Limits and ladder handed to packageFile. */
  readonly packaging?: Pick<PackageFileOptions, 'segmentTargetMs' | 'maxDurationSeconds' | 'timeoutFactor' | 'stallTimeoutMs' | 'ladder'>;
}

export interface VodWorkerCounters {
  /** Videos made ready. */
  ready: number;
  /** Videos failed for good (bad media, or out of attempts). */
  failed: number;
  /** Attempts that failed and were queued again. */
  retried: number;
  /** Jobs given back on close(). */
  released: number;
}

/** The job's lease was lost (expired and retaken, or the job was deleted with its video). */
class LeaseLost extends Error {}
/** The worker is closing; the job goes back to the queue. */
class Shutdown extends Error {}
/** Not worth another try whatever the cause (out of attempts, malformed job). */
class GiveUp extends Error {}

interface Running {
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

/** Video statuses that wait for a packaging job. */
const WAITING = ['queued', 'processing'] as const;
/** Progress goes to the catalog at most this often. */
const PROGRESS_INTERVAL_MS = 1000;
/** While a dependency is down, it is probed again after this long, doubling up to OUTAGE_PROBE_MAX_MS. */
const OUTAGE_PROBE_MIN_MS = 2000;
const OUTAGE_PROBE_MAX_MS = 30_000;
/** Share of the progress bar for encoding; publishing and the poster take the rest. */
const ENCODE_SHARE = 95;

function parsePayload(job: JobRecord): PackageUploadPayload {
  const p = job.payload as Partial<PackageUploadPayload>;
  const s = p.source as Partial<UploadSource> | undefined;
  const ok =
    s &&
    ((s.kind === 'file' && typeof s.path === 'string') || (s.kind === 's3' && typeof s.bucket === 'string' && typeof s.key === 'string'));
  if (!ok || typeof p.size !== 'number') throw new GiveUp(`job ${job.id} has a malformed payload`);
  return { source: s as UploadSource, filename: typeof p.filename === 'string' ? p.filename : '', size: p.size };
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class VodWorker {
  readonly counters: VodWorkerCounters = { ready: 0, failed: 0, retried: 0, released: 0 };
  readonly owner: string;
  readonly #o: VodWorkerOptions;
  readonly #log: Logger;
  readonly #running = new Map<string, Running>();
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #again = false;
  #closing: Promise<void> | undefined;

  constructor(opts: VodWorkerOptions) {
    if (!Number.isInteger(opts.workers) || opts.workers < 0)
      throw new AppError('E_CONFIG_INVALID', 'vod worker: workers must be a whole number >= 0');
    if (!Number.isInteger(opts.leaseMs) || opts.leaseMs < 300)
      throw new AppError('E_CONFIG_INVALID', 'vod worker: leaseMs must be a whole number >= 300');
    this.#o = opts;
    this.owner = opts.owner ?? `${hostname()}/${process.pid}/${newId().slice(0, 6)}`;
    this.#log = opts.logger.child({ module: 'vod-worker' });
  }

  /** False while packaging waits for FFmpeg (a failed attempt found it not running): read by /healthz. */
  ffmpegWorks(): boolean {
    return this.#outage?.what !== 'FFmpeg';
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Sweeps for videos left waiting (#sweep), then takes jobs. Resolves when the sweep is done; never
   * rejects (a failed sweep is logged, and done again at the next start).
   */
  start(): Promise<void> {
    if (this.#closing || this.#timer || this.#o.workers === 0) return Promise.resolve();
    this.#timer = setInterval(() => this.nudge(), this.#o.pollMs ?? 2000);
    this.#log.info({ workers: this.#o.workers, owner: this.owner }, 'vod worker started');
    const sweep = this.#sweep();
    this.#tick = sweep.finally(() => {
      this.#tick = undefined;
      this.nudge();
    });
    return sweep;
  }

  /** Look at the queue now (a job was enqueued in this process, or one finished). */
  nudge(): void {
    if (this.#closing || !this.#timer) return;
    if (this.#tick) {
      this.#again = true;
      return;
    }
    this.#tick = this.#fill().finally(() => (this.#tick = undefined));
  }

  /** Stops claiming, ends the FFmpeg of running jobs and gives those back to the queue. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      await this.#tick;
      for (const r of this.#running.values()) r.controller.abort(new Shutdown('the server is shutting down'));
      await Promise.allSettled([...this.#running.values()].map((r) => r.done));
      this.#log.info({ counters: this.counters }, 'vod worker closed');
    })();
    return this.#closing;
  }

  /**
   * Upload videos that say they wait ('queued', 'processing') while no job will ever run them: left by a
   * server that died or lost its database between a job's outcome and its video's, or by an older server
   * that queued a video before enqueuing its job. A done or failed job of such a video is queued again from
   * scratch (JobQueue.revive; its upload is still there, as it is removed only once the video is 'ready' or
   * 'failed'); a video with no job at all gets one. A job that failed for good this way gets its attempts
   * again: it is run once more rather than leave its video waiting for ever.
   */
  async #sweep(): Promise<void> {
    const { catalog } = this.#o;
    try {
      for (const job of await catalog.jobs.revive(PACKAGE_UPLOAD, WAITING)) {
        this.#log.warn(
          { job: job.id, video: job.videoId, lastError: job.lastError },
          'video was left waiting on an ended job; job queued again',
        );
      }
      for (const id of await catalog.jobs.videosWithoutJob(PACKAGE_UPLOAD, 'upload', WAITING)) {
        const video = await catalog.videos.get(id);
        if (!video) continue;
        await this.#o.uploads.queuePackaging(video, video.upload?.size ?? 0, WAITING);
        this.#log.warn({ video: id }, 'video was left waiting without a job; packaging queued');
      }
    } catch (err) {
      this.#log.warn({ err }, 'start-up sweep failed; videos left waiting are looked for again at the next start');
    }
  }

  /** The last claim failed (the catalog is away): the next failure is not logged again. */
  #queueDown = false;
  /** A dependency packaging needs is down (found by a failed attempt): nothing is claimed until it works. */
  #outage: { what: string; delayMs: number; probeAt: number } | undefined;

  /** Claims jobs while there is room, then again if nudged meanwhile. */
  async #fill(): Promise<void> {
    do {
      this.#again = false;
      while (!this.#closing && this.#running.size < this.#o.workers) {
        if (!(await this.#dependenciesWork())) return;
        let job: JobRecord | undefined;
        try {
          job = await this.#o.catalog.jobs.claim(this.owner, this.#o.leaseMs, [PACKAGE_UPLOAD]);
        } catch (err) {
          // Once per outage, not at every poll: a catalog down for an hour would otherwise fill the log.
          if (!this.#queueDown)
            this.#log.warn({ err }, 'could not look at the job queue; trying again at every poll (logged once until it answers)');
          this.#queueDown = true;
          return;
        }
        if (this.#queueDown) this.#log.info('the job queue answers again');
        this.#queueDown = false;
        if (!job) break;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while claiming
        if (this.#closing) {
          await this.#o.catalog.jobs.release(job.id, this.owner).catch(() => {});
          break;
        }
        this.#launch(job);
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- nudge() and close() set these while claiming
    } while (this.#again && !this.#closing);
  }

  #launch(job: JobRecord): void {
    const controller = new AbortController();
    const log = this.#log.child({ job: job.id, video: job.videoId, attempt: job.attempts });
    const done = this.#run(job, controller, log)
      .catch((err: unknown) => log.error({ err }, 'job bookkeeping failed; the job is retaken when its lease runs out'))
      .finally(() => {
        this.#running.delete(job.id);
        this.nudge();
      });
    this.#running.set(job.id, { controller, done });
  }

  async #run(job: JobRecord, controller: AbortController, log: Logger): Promise<void> {
    const { jobs } = this.#o.catalog;
    const beat = setInterval(
      () => {
        jobs.heartbeat(job.id, this.owner, this.#o.leaseMs).then(
          (held) => held || controller.abort(new LeaseLost('the job lease was lost')),
          (err: unknown) => log.warn({ err }, 'could not renew the job lease'),
        );
      },
      Math.floor(this.#o.leaseMs / 3),
    );
    try {
      await this.#package(job, controller.signal, log);
    } catch (err) {
      await this.#failed(job, err, controller.signal, log);
    } finally {
      clearInterval(beat);
    }
  }

  async #package(job: JobRecord, signal: AbortSignal, log: Logger): Promise<void> {
    const { catalog, store } = this.#o;
    const videoId = job.videoId;
    if (!videoId) throw new GiveUp('the job names no video');
    const video = await catalog.videos.get(videoId);
    if (!video || video.status === 'ready') {
      // Deleted meanwhile, or made ready by a run whose completion did not reach the queue.
      log.info({ status: video?.status ?? 'deleted' }, 'nothing to package');
      await catalog.jobs.complete(job.id, this.owner);
      if (!video) await this.#o.uploads.remove(videoId);
      return;
    }
    if (job.attempts > job.maxAttempts) {
      throw new GiveUp(`gave up after ${job.maxAttempts} attempts: ${job.lastError ?? 'the server packaging it stopped each time'}`);
    }
    const payload = parsePayload(job);
    await catalog.videos.update(videoId, { status: 'processing', progress: 0, error: null });
    // What an earlier attempt left (its objects carry another tag and would never be listed).
    await store.deletePrefix(videoPrefix(videoId));
    const local = await this.#o.uploads.open(payload.source, signal);
    const progress = this.#progress(videoId, log);
    // Still ours? Another worker that took over would be deleting, or overwriting, what this one publishes.
    const stillOurs = async () => {
      if (!(await catalog.jobs.heartbeat(job.id, this.owner, this.#o.leaseMs))) throw new LeaseLost('the job lease was lost');
    };
    try {
      const result = await packageFile({
        ...this.#o.packaging,
        input: local.path,
        videoId,
        store,
        ffmpegPath: this.#o.ffmpegPath,
        x264Preset: this.#o.x264Preset,
        logger: log,
        signal,
        onProgress: progress.report,
        beforePublish: stillOurs,
      });
      await progress.stop();
      await stillOurs();
      await catalog.videos.update(videoId, {
        status: 'ready',
        progress: 100,
        duration: result.duration,
        renditions: result.renditions,
        thumbnail: result.thumbnail,
        error: null,
      });
    } finally {
      // No progress write may land after what comes next: 'ready', or a failure's 'queued'/'failed'.
      await progress.stop();
      await local.release();
    }
    await catalog.jobs.complete(job.id, this.owner);
    await this.#o.uploads.remove(videoId);
    this.counters.ready++;
    log.info('video ready');
  }

  /** Progress to the catalog, at most once a second and in order; stop() ends it and waits for the last. */
  #progress(videoId: string, log: Logger): { report: (fraction: number) => void; stop: () => Promise<void> } {
    let chain = Promise.resolve();
    let last = -Infinity;
    let shown = -1;
    let stopped = false;
    return {
      report: (fraction) => {
        const pct = Math.floor(fraction * ENCODE_SHARE);
        const now = performance.now();
        if (stopped || pct === shown || now - last < PROGRESS_INTERVAL_MS) return;
        last = now;
        shown = pct;
        chain = chain
          .then(() => this.#o.catalog.videos.update(videoId, { progress: pct }))
          .then(
            () => {},
            (err: unknown) => log.debug({ err }, 'progress not recorded'),
          );
      },
      stop: () => {
        stopped = true;
        return chain;
      },
    };
  }

  /** A run ended with an error: give the job back, retry it later, or fail it and its video for good. */
  async #failed(job: JobRecord, err: unknown, signal: AbortSignal, log: Logger): Promise<void> {
    const { catalog, store } = this.#o;
    const videoId = job.videoId;
    const reason: unknown = signal.aborted ? signal.reason : undefined;
    if (reason instanceof Shutdown) {
      log.info('packaging stopped by shutdown; job given back to the queue');
      if (await catalog.jobs.release(job.id, this.owner)) {
        this.counters.released++;
        if (videoId) await catalog.videos.update(videoId, { status: 'queued', progress: 0 });
      }
      return;
    }
    if (reason instanceof LeaseLost || err instanceof LeaseLost) {
      log.warn('lost the job (lease expired or job deleted); stopped packaging');
      if (videoId && !(await catalog.videos.get(videoId))) {
        // Deleted while we packaged: whatever we wrote after its files were removed goes too.
        await store.deletePrefix(videoPrefix(videoId)).catch(() => 0);
        await this.#o.uploads.remove(videoId);
      }
      return;
    }
    const permanent = isBadMedia(err) || err instanceof GiveUp;
    const down = permanent ? undefined : await this.#dependencyDown();
    if (down) return this.#waitFor(down, job, err, log);
    // Anyone who can see the video can read its error: only a BadMediaError's reason is written for them.
    const tries = Math.min(job.attempts, job.maxAttempts);
    const video = {
      retrying: `packaging failed; retrying (attempt ${job.attempts + 1} of ${job.maxAttempts})`,
      failed: isBadMedia(err) ? err.message : `packaging failed after ${tries} attempt${tries === 1 ? '' : 's'}; see the server log`,
    };
    // The job and its video in one statement: never a failed job beside a video still 'processing'.
    const after = await catalog.jobs.fail(job.id, this.owner, messageOf(err), { retry: !permanent, video: videoId ? video : undefined });
    if (!after || !videoId) return;
    if (after.state === 'queued') {
      this.counters.retried++;
      log.warn({ err, retryAt: after.runAt, error: video.retrying }, 'packaging failed; will retry');
      // Look at the queue when the backoff ends rather than at a later poll (both times are the database's).
      setTimeout(() => this.nudge(), Math.max(0, after.runAt.getTime() - after.updatedAt.getTime()) + 50).unref();
      return;
    }
    this.counters.failed++;
    log.warn({ err, error: video.failed }, 'video failed');
    await store.deletePrefix(videoPrefix(videoId)).catch((e: unknown) => log.warn({ err: e }, 'could not remove partial files'));
    await this.#o.uploads.remove(videoId);
  }

  /** 'FFmpeg' or 'storage' when that dependency of packaging does not work now, else undefined. */
  async #dependencyDown(): Promise<string | undefined> {
    if (!(await ffmpegRuns(this.#o.ffmpegPath))) return 'FFmpeg';
    if (!(await this.#o.store.ping(5000).catch(() => false))) return 'storage';
    return undefined;
  }

  /** An attempt failed because `what` is down: given back uncounted, and this worker waits for `what`. */
  async #waitFor(what: string, job: JobRecord, err: unknown, log: Logger): Promise<void> {
    const waiting = `packaging waits for ${what}, which is not working on the server; retrying by itself once it works`;
    const video = job.videoId ? { retrying: waiting, failed: waiting } : undefined;
    if (!(await this.#o.catalog.jobs.fail(job.id, this.owner, messageOf(err), { retry: true, counted: false, video }))) return;
    this.counters.retried++;
    if (this.#outage) return;
    log.warn(
      { err, dependency: what },
      `packaging paused: ${what} is not working; the attempt is not counted (logged once until it works)`,
    );
    this.#outage = { what, delayMs: OUTAGE_PROBE_MIN_MS, probeAt: monotonicNow() + OUTAGE_PROBE_MIN_MS };
    setTimeout(() => this.nudge(), OUTAGE_PROBE_MIN_MS).unref();
  }

  /** True unless an outage goes on: once its delay is up, the dependencies are probed again. */
  async #dependenciesWork(): Promise<boolean> {
    const o = this.#outage;
    if (!o) return true;
    if (monotonicNow() < o.probeAt) return false;
    const down = await this.#dependencyDown();
    if (down) {
      o.what = down;
      o.delayMs = Math.min(o.delayMs * 2, OUTAGE_PROBE_MAX_MS);
      o.probeAt = monotonicNow() + o.delayMs;
      setTimeout(() => this.nudge(), o.delayMs).unref();
      return false;
    }
    this.#log.info({ dependency: o.what }, 'packaging resumes: its dependency works again');
    this.#outage = undefined;
    return true;
  }
}
