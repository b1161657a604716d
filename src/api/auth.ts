import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, monotonicNow, safeEqual, type FailureLimiter } from '../core/index.js';

/*
 * The operator token (API_TOKEN) and the limit on wrong guesses of it.
 *
 * Where to check: in an `onRequest` hook, before any body is read, so a caller without the token gets 401 at
 * once and never makes the server read (or refuse as too large) a body it will not use. `requireToken` is
 * that hook for routes only operators use; `identifyOperator` for routes viewers use too (a present but
 * wrong token is refused there, before the body; `isOperator` in the handler then reuses the verdict).
 *
 * Failed attempts are counted per source address (FailureLimiter, AUTH_FAILURE_LIMIT failures in
 * AUTH_FAILURE_WINDOW_SECONDS). A refused address gets 429 E_RATE_LIMITED with Retry-After for the rest of
 * its window whatever it sends, the right token included: trying the token of a refused caller would let a
 * guesser learn from the answers, which is what the limit is there to stop.
 */

/** 429 E_RATE_LIMITED; the app's error handler sends `retryAfterSeconds` as Retry-After. */
export class RateLimitedError extends AppError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('E_RATE_LIMITED', `too many failed token attempts from this address: try again in ${retryAfterSeconds} s`);
    this.name = 'RateLimitedError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Refused sources remembered for quiet(); past it the oldest go (addresses from outside must not grow it). */
const QUIET_MAX = 10_000;

/**
 * What limits wrong tokens on the HTTP API: the limiter, where to say (once per window and address) that it
 * refuses, and which addresses are being refused now, so their requests are not logged one by one.
 */
export class ApiAuthGuard {
  readonly limiter: FailureLimiter;
  readonly #onRefused: (source: string, retryAfterSeconds: number) => void;
  readonly #quietUntil = new Map<string, number>();

  constructor(limiter: FailureLimiter, onRefused: (source: string, retryAfterSeconds: number) => void) {
    this.limiter = limiter;
    this.#onRefused = onRefused;
  }

  /** Whether `source` is being refused now (its requests go unlogged); counts nothing. */
  quiet(source: string | undefined): boolean {
    const until = source === undefined ? undefined : this.#quietUntil.get(source);
    if (until === undefined) return false;
    if (until > monotonicNow()) return true;
    this.#quietUntil.delete(source!);
    return false;
  }

  /** Throws E_RATE_LIMITED when `source` is refused, without trying its token. */
  checkBefore(source: string): void {
    const v = this.limiter.check(source);
    if (v.refused) throw new RateLimitedError(v.retryAfterSeconds);
  }

  /** Records a wrong token; throws E_RATE_LIMITED when this failure reached the limit. */
  failed(source: string): void {
    const v = this.limiter.fail(source);
    if (!v.refused) return;
    if (v.justRefused) this.#onRefused(source, v.retryAfterSeconds);
    this.#quietUntil.delete(source);
    this.#quietUntil.set(source, monotonicNow() + v.retryAfterSeconds * 1000);
    if (this.#quietUntil.size > QUIET_MAX) this.#quietUntil.delete(this.#quietUntil.keys().next().value!);
    throw new RateLimitedError(v.retryAfterSeconds);
  }
}

/** The guard of each request's app (set by installAuthGuard), and each request's verdict once checked. */
const guards = new WeakMap<FastifyRequest['raw'], ApiAuthGuard>();
const verdicts = new WeakMap<FastifyRequest['raw'], boolean>();

/** Makes every route of `app` count wrong operator tokens in `guard` (a root-level hook, so it runs first). */
export function installAuthGuard(app: FastifyInstance, guard: ApiAuthGuard): void {
  app.addHook('onRequest', async (req) => {
    guards.set(req.raw, guard);
  });
}

/**
 * Whether the request carries the operator token (`Authorization: Bearer <token>`, compared in constant
 * time). No Authorization header: false (a viewer). A wrong one throws E_UNAUTHORIZED rather than quietly
 * making the caller a viewer; from an address over the failure limit, any token throws E_RATE_LIMITED.
 */
export function isOperator(req: FastifyRequest, expected: string): boolean {
  const header = req.headers.authorization;
  if (header === undefined) return false;
  const known = verdicts.get(req.raw);
  if (known !== undefined) return known;
  const guard = guards.get(req.raw);
  guard?.checkBefore(req.ip);
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m || !safeEqual(m[1], expected)) {
    guard?.failed(req.ip);
    throw new AppError('E_UNAUTHORIZED', 'wrong operator token (Authorization: Bearer <API_TOKEN>)');
  }
  verdicts.set(req.raw, true);
  return true;
}

/** Throws E_UNAUTHORIZED unless the request carries the operator token. */
export function requireOperator(req: FastifyRequest, expected: string): void {
  if (!isOperator(req, expected)) throw new AppError('E_UNAUTHORIZED', 'missing operator token (Authorization: Bearer <API_TOKEN>)');
}

/** An onRequest hook doing requireOperator: for routes only the operator uses. */
export function requireToken(expected: string) {
  return async (req: FastifyRequest): Promise<void> => requireOperator(req, expected);
}

/**
 * An onRequest hook for routes viewers use too: a present but wrong token is refused here, before the body
 * is read; no token passes (the handler's `isOperator` says false, a right one true, without counting twice).
 */
export function identifyOperator(expected: string) {
  return async (req: FastifyRequest): Promise<void> => {
    isOperator(req, expected);
  };
}
