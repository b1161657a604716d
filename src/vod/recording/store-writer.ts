/**
 * How the recorder writes a segment's objects while storage fails: each write is tried again with capped
 * exponential backoff (250 ms doubling to 5 s) for as long as its run's writes have been failing for less
 * than `retryMs`, and, once the run has ended, for at most `retryMs` after its end (the run's finalizing
 * waits for its writes). What cannot wait longer is given up: the caller makes it a counted gap. The
 * memory that waiting holds is bounded by the caller (the recorder's pending bytes per run; past them new
 * segments are gaps at once).
 */
import { AppError, isAppError, monotonicNow, type Logger } from '../../core/index.js';
import type { ObjectStore } from '../../storage/index.js';
import { CACHE_MEDIA } from '../assets.js';

/** First wait before a write is tried again, doubled after each failure up to MAX_RETRY_DELAY_MS. */
export const FIRST_RETRY_DELAY_MS = 250;
export const MAX_RETRY_DELAY_MS = 5000;
/** Default of RECORDING_STORE_RETRY_MS. */
export const DEFAULT_STORE_RETRY_MS = 300_000;

/** Failures that waiting does not mend: a bad key, a store closed under us, a key that clashes. */
const FINAL_CODES = new Set(['E_VALIDATION', 'E_CLOSED', 'E_CONFLICT']);

/** What the writer keeps per run (the recorder's Run carries these fields). */
export interface WriteRun {
  readonly streamId: string;
  /** When the run's writes began failing (monotonic ms); undefined while the last one succeeded. */
  failingSince: number | undefined;
  /** When the run ended (monotonic ms); its writes then wait at most retryMs longer. */
  endedAt: number | undefined;
}

export interface StoreWriterOptions {
  readonly store: Pick<ObjectStore, 'put'>;
  /** How long a run's writes are tried again while storage fails (ms). */
  readonly retryMs: number;
  readonly logger: Logger;
}

export class StoreWriter {
  readonly #o: StoreWriterOptions;
  readonly #closing = new AbortController();

  constructor(opts: StoreWriterOptions) {
    this.#o = opts;
  }

  /**
   * Stores one object, trying again while storage fails and the run may still wait; rejects with the last
   * failure when it gives up. A run whose end is more than retryMs ago and whose storage still fails is
   * not tried at all (its finalizing must not wait a request per remaining segment).
   */
  async put(run: WriteRun, key: string, body: Buffer, contentType: string): Promise<void> {
    if (run.failingSince !== undefined && run.endedAt !== undefined && !this.#mayWait(run, monotonicNow())) {
      throw new AppError('E_UNAVAILABLE', `recording: storage has failed since the run's end; ${key} is given up`);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#o.store.put(key, body, { contentType, cacheControl: CACHE_MEDIA });
        if (run.failingSince !== undefined) {
          this.#o.logger.info(
            { stream: run.streamId, failedForMs: monotonicNow() - run.failingSince },
            'recording: storage is back; the segments that waited are being stored',
          );
          run.failingSince = undefined;
        }
        return;
      } catch (err) {
        if (isAppError(err) && FINAL_CODES.has(err.code)) throw err;
        const now = monotonicNow();
        if (run.failingSince === undefined) {
          run.failingSince = now;
          this.#o.logger.warn(
            { err, stream: run.streamId, retryMs: this.#o.retryMs },
            'recording: storage failed; segments wait in memory and are tried again',
          );
        }
        if (this.#closing.signal.aborted || !this.#mayWait(run, now)) throw err;
        await this.#sleep(Math.min(MAX_RETRY_DELAY_MS, FIRST_RETRY_DELAY_MS * 2 ** attempt));
      }
    }
  }

  /** Writes waiting for their next try give up (as a recorder closing must not wait out an outage). */
  close(): void {
    this.#closing.abort();
  }

  #mayWait(run: WriteRun, now: number): boolean {
    if (run.failingSince !== undefined && now - run.failingSince >= this.#o.retryMs) return false;
    return run.endedAt === undefined || now - run.endedAt < this.#o.retryMs;
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#closing.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
