/**
 * Who may make a WHIP offer, decided from the request's headers alone (signaling asks before it reads the
 * SDP body): the source address must not be held for wrong stream keys, the key must name a stream, and that
 * stream must not be making offers faster than a publisher that reconnects ever does.
 */
import { AppError, FailureLimiter, isAppError, monotonicNow, type Logger } from '../../core/index.js';
import type { WebRtcCounters, WebRtcIngestOptions } from './types.js';

/** A 429 that says when to come back; the HTTP side puts `retryAfterSeconds` in Retry-After. */
export class RetryLaterError extends AppError {
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds: number) {
    super('E_RATE_LIMITED', message);
    this.name = 'RetryLaterError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A stream key that was accepted, and when: what `WebRtcIngest.create` needs to make the session. */
export interface Admission {
  readonly streamId: string;
  readonly authorizedAt: number;
}

/** Wrong stream keys one address may send in a window when no limiter is given (AUTH_FAILURE_LIMIT's default). */
export const DEFAULT_AUTH_FAILURES = Object.freeze({ max: 10, windowMs: 60_000 });

const OFFER_WINDOW_MS = 60_000;

export interface WhipAdmissionOptions {
  readonly authorize: WebRtcIngestOptions['authorize'];
  /** Offers one stream may make per minute. */
  readonly offersPerMinute: number;
  /** Wrong keys per source address; may be shared with the other surfaces (API token, RTMP keys). */
  readonly authFailures: FailureLimiter | undefined;
  readonly counters: WebRtcCounters;
  readonly logger: Logger;
}

export class WhipAdmission {
  /** Wrong stream keys per source address. */
  readonly authFailures: FailureLimiter;
  /**
   * Offers per stream. A FailureLimiter counts events per source in a fixed window and refuses at `max`;
   * here every offer is such an event (a publisher that reconnects makes a few a minute, not dozens).
   */
  readonly #offers: FailureLimiter;
  readonly #o: WhipAdmissionOptions;

  constructor(opts: WhipAdmissionOptions) {
    this.#o = opts;
    this.authFailures = opts.authFailures ?? new FailureLimiter(DEFAULT_AUTH_FAILURES);
    this.#offers = new FailureLimiter({ max: opts.offersPerMinute, windowMs: OFFER_WINDOW_MS });
  }

  /**
   * Throws RetryLaterError (429) for an address held for wrong keys or a stream over its offer rate,
   * E_UNAUTHORIZED for a wrong key. Each refusal is counted; each hold is logged once, when it starts.
   */
  async admit(streamKey: string, remoteAddress: string): Promise<Admission> {
    const { counters, logger } = this.#o;
    const held = this.authFailures.check(remoteAddress);
    if (held.refused) {
      counters.authRefused++;
      throw new RetryLaterError(
        `too many wrong stream keys from this address: retry in ${held.retryAfterSeconds} s`,
        held.retryAfterSeconds,
      );
    }
    const authorizedAt = monotonicNow();
    let streamId: string;
    try {
      streamId = (await this.#o.authorize(streamKey, remoteAddress)).streamId;
    } catch (err) {
      if (!(isAppError(err) && err.code === 'E_STREAM_KEY_INVALID')) throw err;
      counters.authFailures++;
      const v = this.authFailures.fail(remoteAddress);
      if (v.justRefused) {
        logger.warn(
          { remote: remoteAddress, retryAfterSeconds: v.retryAfterSeconds },
          'whip: too many wrong stream keys from one address; refusing it until the window ends',
        );
      } else if (!v.refused) {
        logger.warn({ remote: remoteAddress, reason: err.message }, 'whip publish refused: invalid stream key');
      }
      throw new AppError('E_UNAUTHORIZED', 'invalid stream key', { cause: err });
    }
    const rate = this.#offers.check(streamId);
    if (rate.refused) {
      counters.offersRateLimited++;
      throw new RetryLaterError(
        `too many WHIP offers for this stream (${this.#o.offersPerMinute} a minute): retry in ${rate.retryAfterSeconds} s`,
        rate.retryAfterSeconds,
      );
    }
    if (this.#offers.fail(streamId).justRefused) {
      logger.warn(
        { stream: streamId, offersPerMinute: this.#o.offersPerMinute },
        'whip: offer rate of a stream reached; refusing more this minute',
      );
    }
    return { streamId, authorizedAt };
  }
}
