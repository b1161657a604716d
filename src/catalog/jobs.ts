/**
 * A durable job queue in the catalog's `jobs` table (migration 3). Workers on any number of servers claim
 * jobs with a lease they renew while they work; a job whose worker died is taken again once its lease ran
 * out. Claiming is one UPDATE over a `SELECT ... FOR UPDATE SKIP LOCKED` (the pattern PostgreSQL documents
 * for queue tables), so two claimers never get the same job and never wait on each other.
 *
 * Times are the database's clock (now()), the one clock every server sharing the queue reads, as for the
 * recorder's heartbeats: a worker whose host clock is off does not take live leases or wait out backoffs
 * that others see due. Tests inject a clock (JobQueueOptions.now), which then stands in for now().
 *
 * A job's video says what the job is up to ('queued', 'processing', 'failed'...). Where the two must change
 * together (an upload is 'queued' exactly when its job exists; a failed attempt re-queues or fails both),
 * both rows change in one statement (data-modifying WITH), so no crash or dropped connection in between
 * can leave a video waiting for a job that will never run.
 */
import { AppError, newId } from '../core/index.js';
import type { Queryable } from './db.js';
import { toDate } from './types.js';
import type { VideoSource, VideoStatus } from './videos.js';

export const JOB_STATES = ['queued', 'running', 'done', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface JobRecord {
  id: string;
  kind: string;
  videoId: string | null;
  payload: Record<string, unknown>;
  state: JobState;
  /** Claims so far, this one included while running (a worker that died counts). */
  attempts: number;
  maxAttempts: number;
  /** A queued job is not claimed before this. */
  runAt: Date;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewJob {
  /** Give one to make enqueue idempotent: a second enqueue with the same id returns the existing job. */
  id?: string;
  kind: string;
  videoId?: string | null;
  payload?: Record<string, unknown>;
  /** Default 3. */
  maxAttempts?: number;
  /** Default now. */
  runAt?: Date;
}

/** A video status change made with the job's own (see enqueue). */
export interface VideoTransition {
  /** Only a video in one of these statuses changes. */
  readonly from: readonly VideoStatus[];
  /** Set with progress 0 and no error. */
  readonly to: VideoStatus;
}

/** What fail() writes on the job's video, in the same statement: its `error` for either outcome. */
export interface FailedVideo {
  /** The job is queued again: the video goes to 'queued' with this error. */
  readonly retrying: string;
  /** The job failed for good: the video goes to 'failed' with this error. */
  readonly failed: string;
}

export interface JobQueueOptions {
  /**
   * Milliseconds since the epoch, in place of the database's now(); tests move it to expire leases and
   * backoffs without sleeping.
   */
  now?: () => number;
  /** First retry after this long, doubling with each attempt. Default 2000. */
  backoffBaseMs?: number;
  /** Longest wait before a retry. Default 300000 (5 min). */
  backoffMaxMs?: number;
}

/** The SQL of "now" for a query whose parameter $n is the injected clock's date, or null for now(). */
const NOW = (n: number) => `COALESCE($${n}::timestamptz, now())`;

interface JobRow {
  id: string;
  kind: string;
  video_id: string | null;
  payload: Record<string, unknown> | string;
  state: JobState;
  attempts: number;
  max_attempts: number;
  run_at: Date | string;
  lease_owner: string | null;
  lease_until: Date | string | null;
  last_error: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS =
  'id, kind, video_id, payload, state, attempts, max_attempts, run_at, lease_owner, lease_until, last_error, created_at, updated_at';
/** last_error is for people reading it; a stack trace or FFmpeg's whole stderr does not belong there. */
const MAX_ERROR_LENGTH = 2000;

function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    kind: r.kind,
    videoId: r.video_id,
    payload: typeof r.payload === 'string' ? (JSON.parse(r.payload) as Record<string, unknown>) : r.payload,
    state: r.state,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    runAt: toDate(r.run_at),
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until === null ? null : toDate(r.lease_until),
    lastError: r.last_error,
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
  };
}

function checkLease(leaseMs: number): void {
  if (!Number.isInteger(leaseMs) || leaseMs < 1)
    throw new AppError('E_VALIDATION', `jobs: lease must be a whole number of ms >= 1, got ${leaseMs}`);
}

export class JobQueue {
  readonly #q: Queryable;
  readonly #now: (() => number) | undefined;
  readonly #baseMs: number;
  readonly #maxMs: number;

  constructor(q: Queryable, opts: JobQueueOptions = {}) {
    this.#q = q;
    this.#now = opts.now;
    this.#baseMs = opts.backoffBaseMs ?? 2000;
    this.#maxMs = opts.backoffMaxMs ?? 300_000;
  }

  /** The injected clock's date, or null: the query then reads the database's now(). */
  #at(): Date | null {
    return this.#now ? new Date(this.#now()) : null;
  }

  /**
   * Adds a queued job. With an `id` that exists already, nothing changes and the existing job is returned.
   * With `video`, the job's video makes that transition in the same statement, whether the job was new or
   * not (so a retried call finishes what a failed one started).
   */
  async enqueue(job: NewJob, opts: { video?: VideoTransition } = {}): Promise<JobRecord> {
    const maxAttempts = job.maxAttempts ?? 3;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new AppError('E_VALIDATION', 'jobs: maxAttempts must be a whole number >= 1');
    if (opts.video && !job.videoId) throw new AppError('E_VALIDATION', 'jobs: a video transition needs the job to name its video');
    const now = this.#at();
    const id = job.id ?? newId();
    // Every part of a WITH runs to completion once, whether or not the outer SELECT reads it.
    const { rows } = await this.#q.query<JobRow>(
      `WITH job AS (
         INSERT INTO jobs (id, kind, video_id, payload, state, attempts, max_attempts, run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4::jsonb, 'queued', 0, $5, COALESCE($6::timestamptz, ${NOW(7)}), ${NOW(7)}, ${NOW(7)})
         ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}
       ), video AS (
         UPDATE videos SET status = $9, progress = 0, error = NULL, updated_at = ${NOW(7)}
          WHERE $9::text IS NOT NULL AND id = $3 AND status = ANY($8::text[])
       )
       SELECT ${COLUMNS} FROM job`,
      [
        id,
        job.kind,
        job.videoId ?? null,
        JSON.stringify(job.payload ?? {}),
        maxAttempts,
        job.runAt ?? null,
        now,
        opts.video ? [...opts.video.from] : [],
        opts.video?.to ?? null,
      ],
    );
    if (rows.length > 0) return toJob(rows[0]);
    const existing = await this.get(id);
    if (!existing) throw new AppError('E_CONFLICT', `jobs: job ${id} was deleted while it was enqueued again`);
    return existing;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const { rows } = await this.#q.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE id = $1`, [id]);
    return rows.length > 0 ? toJob(rows[0]) : undefined;
  }

  /** A video's jobs, oldest first. */
  async forVideo(videoId: string): Promise<JobRecord[]> {
    const { rows } = await this.#q.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE video_id = $1 ORDER BY created_at, id`, [videoId]);
    return rows.map(toJob);
  }

  /**
   * Takes the job that has waited longest among those due: queued ones whose run_at has come, and running
   * ones whose lease ran out (their worker died). The claim counts as an attempt, so a job that keeps
   * killing its worker shows `attempts > maxAttempts`; the worker then fails it rather than run it again.
   * `kinds` limits it to jobs this worker can run.
   */
  async claim(owner: string, leaseMs: number, kinds?: readonly string[]): Promise<JobRecord | undefined> {
    checkLease(leaseMs);
    // SKIP LOCKED: a row another transaction is claiming is passed over, not waited for. Should that other
    // claim commit first, PostgreSQL rechecks the row against the WHERE clause (READ COMMITTED re-evaluation)
    // and, being 'running' with a fresh lease now, it no longer qualifies.
    const { rows } = await this.#q.query<JobRow>(
      `UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1,
              lease_until = ${NOW(3)} + $2::double precision * interval '1 millisecond', updated_at = ${NOW(3)}
        WHERE id = (
          SELECT id FROM jobs
           WHERE ((state = 'queued' AND run_at <= ${NOW(3)}) OR (state = 'running' AND lease_until < ${NOW(3)}))
             AND ($4::text[] IS NULL OR kind = ANY($4::text[]))
           ORDER BY run_at, id
           LIMIT 1
           FOR UPDATE SKIP LOCKED
        )
        RETURNING ${COLUMNS}`,
      [owner, leaseMs, this.#at(), kinds ? [...kinds] : null],
    );
    return rows.length > 0 ? toJob(rows[0]) : undefined;
  }

  /** Extends the lease of a job `owner` still holds; false when it lost it (expired and retaken, or deleted). */
  async heartbeat(id: string, owner: string, leaseMs: number): Promise<boolean> {
    checkLease(leaseMs);
    const { rows } = await this.#q.query<{ id: string }>(
      `UPDATE jobs SET lease_until = ${NOW(4)} + $3::double precision * interval '1 millisecond', updated_at = ${NOW(4)}
        WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id`,
      [id, owner, leaseMs, this.#at()],
    );
    return rows.length > 0;
  }

  /** The job is done; false when `owner` no longer held it (someone else may be running it). */
  async complete(id: string, owner: string): Promise<boolean> {
    const { rows } = await this.#q.query<{ id: string }>(
      `UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = ${NOW(3)}
        WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id`,
      [id, owner, this.#at()],
    );
    return rows.length > 0;
  }

  /**
   * The attempt failed. With `retry` and attempts left, the job is queued again after a backoff of
   * base x 2^(attempts-1), capped; otherwise it is 'failed' for good. With `retry` and `counted: false` (a
   * dependency of the worker was down, not the job's fault), the attempt is given back and the job is due
   * again at once, whatever its attempts: the worker holds back until its dependency works. `error` is the job's last_error (for
   * operators). With `video`, the job's video goes in the same statement to 'queued' or 'failed' (progress
   * 0) with the matching error. Resolves with the job as it is now, or undefined when `owner` no longer held
   * it (then nothing changed, the video neither).
   */
  async fail(
    id: string,
    owner: string,
    error: string,
    opts: { retry: boolean; counted?: boolean; video?: FailedVideo },
  ): Promise<JobRecord | undefined> {
    const { rows } = await this.#q.query<JobRow>(
      `WITH job AS (
         UPDATE jobs SET
            state = CASE WHEN $4::boolean AND (NOT $11::boolean OR attempts < max_attempts) THEN 'queued' ELSE 'failed' END,
            attempts = CASE WHEN $4::boolean AND NOT $11::boolean THEN GREATEST(attempts - 1, 0) ELSE attempts END,
            run_at = CASE WHEN $4::boolean AND NOT $11::boolean THEN ${NOW(5)}
                          WHEN $4::boolean AND attempts < max_attempts
                          THEN ${NOW(5)} + LEAST($6::double precision * power(2, GREATEST(attempts - 1, 0)), $7::double precision) * interval '1 millisecond'
                          ELSE run_at END,
            lease_owner = NULL, lease_until = NULL, last_error = $3, updated_at = ${NOW(5)}
          WHERE id = $1 AND lease_owner = $2 AND state = 'running'
          RETURNING ${COLUMNS}
       ), video AS (
         UPDATE videos SET
            status = CASE WHEN job.state = 'queued' THEN 'queued' ELSE 'failed' END,
            error = CASE WHEN job.state = 'queued' THEN $8::text ELSE $9::text END,
            progress = 0, updated_at = ${NOW(5)}
           FROM job
          WHERE $10::boolean AND videos.id = job.video_id
       )
       SELECT ${COLUMNS} FROM job`,
      [
        id,
        owner,
        error.slice(0, MAX_ERROR_LENGTH),
        opts.retry,
        this.#at(),
        this.#baseMs,
        this.#maxMs,
        opts.video?.retrying.slice(0, MAX_ERROR_LENGTH) ?? null,
        opts.video?.failed.slice(0, MAX_ERROR_LENGTH) ?? null,
        opts.video !== undefined,
        opts.counted ?? true,
      ],
    );
    return rows.length > 0 ? toJob(rows[0]) : undefined;
  }

  /**
   * Gives a job back without counting the attempt (its worker is shutting down): queued again, due at once,
   * so another server can take it without waiting for the lease. False when `owner` no longer held it.
   */
  async release(id: string, owner: string): Promise<boolean> {
    const { rows } = await this.#q.query<{ id: string }>(
      `UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), run_at = ${NOW(3)}, lease_owner = NULL, lease_until = NULL, updated_at = ${NOW(3)}
        WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id`,
      [id, owner, this.#at()],
    );
    return rows.length > 0;
  }

  /**
   * Start-up recovery of videos a job's bookkeeping left behind (a server died, or the database failed,
   * between a job's outcome and its video's). Jobs of `kind` that are 'done' or 'failed' while their video
   * still waits for them (status in `videoStatuses`) are queued again from scratch (attempts 0, due now),
   * and their videos go to 'queued' (progress 0, no error), in one statement: a video whose job just
   * finished properly is not in those statuses any more and is left alone. Resolves with the revived jobs.
   */
  async revive(kind: string, videoStatuses: readonly VideoStatus[]): Promise<JobRecord[]> {
    const { rows } = await this.#q.query<JobRow>(
      `WITH job AS (
         UPDATE jobs SET state = 'queued', attempts = 0, run_at = ${NOW(3)}, lease_owner = NULL, lease_until = NULL, updated_at = ${NOW(3)}
          WHERE kind = $1 AND state IN ('done', 'failed')
            AND video_id IN (SELECT id FROM videos WHERE status = ANY($2::text[]))
          RETURNING ${COLUMNS}
       ), video AS (
         UPDATE videos SET status = 'queued', progress = 0, error = NULL, updated_at = ${NOW(3)}
          WHERE id IN (SELECT video_id FROM job)
       )
       SELECT ${COLUMNS} FROM job ORDER BY created_at, id`,
      [kind, [...videoStatuses], this.#at()],
    );
    return rows.map(toJob);
  }

  /** Ids of videos of `source` in one of `statuses` that have no job of `kind` at all (oldest first). */
  async videosWithoutJob(kind: string, source: VideoSource, statuses: readonly VideoStatus[]): Promise<string[]> {
    const { rows } = await this.#q.query<{ id: string }>(
      `SELECT v.id FROM videos v
        WHERE v.source = $2 AND v.status = ANY($3::text[])
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.video_id = v.id AND j.kind = $1)
        ORDER BY v.created_at, v.id`,
      [kind, source, [...statuses]],
    );
    return rows.map((r) => r.id);
  }
}
