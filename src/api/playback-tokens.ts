import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { AppError, systemClock, type Clock } from '../core/index.js';
import { ID_RE } from './schemas.js';

/** What a token opens: one VOD asset ('v') or one live stream ('s'), by id. */
export interface TokenSubject {
  readonly kind: 'v' | 's';
  readonly id: string;
}

/** The most a token may live: a month. */
export const MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600;

/**
 * Signed playback tokens for private content: `<kind>.<id>.<expiry seconds>.<HMAC-SHA256, base64url>`.
 * Only URL-path characters, so a token sits in the path (`/t/<token>/vod/<id>/...`) and every relative
 * URI of the playlists carries it without rewriting, through any CDN that keys on the path.
 *
 * A token has one spelling only: a CDN keys its cache on the raw path, so a second spelling that opens the
 * same content would be a second cache entry (and a way round a CDN's own block list). check() refuses a
 * signature whose unused low bits are set; `refuseEncodedTokens` refuses a percent-encoded path.
 */
export class PlaybackTokens {
  readonly #key: Buffer;
  readonly #clock: Clock;

  /** Expiry is a date: judged by the wall clock `clock` (a jump of it ages or rejuvenates every token). */
  constructor(secret: string, clock: Clock = systemClock) {
    if (secret.length < 32) throw new AppError('E_CONFIG_INVALID', 'the playback token secret must be at least 32 characters');
    this.#key = Buffer.from(secret, 'utf8');
    this.#clock = clock;
  }

  /** The wall clock tokens are minted and judged by (ms since epoch). */
  now(): number {
    return this.#clock.now();
  }

  #mac(body: string): Buffer {
    return createHmac('sha256', this.#key).update(body, 'utf8').digest();
  }

  /** A token for `subject` valid until `expiresAt` (ms since epoch, whole seconds kept). */
  sign(subject: TokenSubject, expiresAt: number): string {
    if (!ID_RE.test(subject.id)) throw new AppError('E_VALIDATION', 'token subject id is not an id');
    const body = `${subject.kind}.${subject.id}.${Math.floor(expiresAt / 1000)}`;
    return `${body}.${this.#mac(body).toString('base64url')}`;
  }

  /**
   * Why `token` does not open `subject` at `now` ('malformed', 'bad-signature', 'wrong-subject',
   * 'expired'), or undefined when it does. The signature is checked before anything it covers is believed.
   */
  check(
    token: string,
    subject: TokenSubject,
    now = this.#clock.now(),
  ): 'malformed' | 'bad-signature' | 'wrong-subject' | 'expired' | undefined {
    if (token.length > 256) return 'malformed';
    const parts = token.split('.');
    if (parts.length !== 4) return 'malformed';
    const [kind, id, exp, sig] = parts;
    if ((kind !== 'v' && kind !== 's') || !ID_RE.test(id) || !/^\d{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig))
      return 'malformed';
    const expected = this.#mac(`${kind}.${id}.${exp}`);
    const given = Buffer.from(sig, 'base64url');
    // 43 base64url characters carry 258 bits for 256: the last one's two low bits are dropped on decoding,
    // so four spellings decode alike. Only the one the encoder writes (those bits zero) is the token.
    if (given.toString('base64url') !== sig) return 'malformed';
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad-signature';
    if (kind !== subject.kind || id !== subject.id) return 'wrong-subject';
    if (Number(exp) * 1000 <= now) return 'expired';
    return undefined;
  }

  /** Expiry (ms since epoch) written in a token; meaningful only after check() accepted it. */
  expiryOf(token: string): number {
    return Number(token.split('.')[2]) * 1000;
  }
}

/** The tokenised routes (`/t/:token/live/...`, `/t/:token/vod/...`): their pattern as fastify names it. */
const TOKEN_ROUTE = '/t/:token/';

/**
 * onRequest hook: a tokenised URL must spell `/t/<token>/` literally. The router decodes the path
 * (`/t/v%2Eid...` and `/%74/...` reach the same route with the same token), so the raw URL is compared
 * with the decoded token: any percent-encoding there is a second spelling, refused like a bad token (403).
 */
export async function refuseEncodedTokens(req: FastifyRequest): Promise<void> {
  if (!req.routeOptions.url?.startsWith(TOKEN_ROUTE)) return;
  const { token } = req.params as { token?: string };
  const raw = req.raw.url ?? '';
  if (token === undefined || !raw.startsWith(`/t/${token}/`))
    throw new AppError('E_FORBIDDEN', 'playback token refused: malformed (a token URL is never percent-encoded)');
}
