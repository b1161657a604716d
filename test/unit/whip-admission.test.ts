import { describe, expect, it } from 'vitest';
import { AppError, FailureLimiter, type Clock, type Logger } from '../../src/core/index.js';
import { WhipAdmission } from '../../src/ingest/webrtc/admission.js';
import { newWebRtcCounters } from '../../src/ingest/webrtc/types.js';

/** A logger that keeps its warn lines, to count them. */
function recordingLogger(): Logger & { warns: string[] } {
  const warns: string[] = [];
  const log: Logger & { warns: string[] } = {
    warns,
    child: () => log,
    trace: () => {},
    debug: () => {},
    info: () => {},
    warn: (_obj, msg) => warns.push(msg ?? ''),
    error: () => {},
  };
  return log;
}

/** The catalog's key lookup, reduced to one known key. */
const authorize = async (key: string) => {
  if (key === 'sk_right') return { streamId: 'stream-1' };
  throw new AppError('E_STREAM_KEY_INVALID', 'unknown stream key');
};

function admission(opts: { max?: number; offersPerMinute?: number; clock?: Clock } = {}) {
  const logger = recordingLogger();
  const counters = newWebRtcCounters();
  const clock = opts.clock ?? { now: () => 1_000_000 };
  const a = new WhipAdmission({
    authorize,
    offersPerMinute: opts.offersPerMinute ?? 30,
    authFailures: new FailureLimiter({ max: opts.max ?? 10, windowMs: 60_000, clock }),
    counters,
    logger,
  });
  return { a, logger, counters };
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'admitted',
    (e: AppError & { retryAfterSeconds?: number }) => e.code,
  );

describe('WHIP admission', () => {
  it('holds an address after 10 wrong keys, logging the hold once and not every attempt after it', async () => {
    const { a, logger, counters } = admission();
    const codes: string[] = [];
    for (let i = 0; i < 50; i++) codes.push(await codeOf(a.admit(`sk_wrong_${i}`, '198.51.100.7')));
    expect(codes.slice(0, 10)).toEqual(Array(10).fill('E_UNAUTHORIZED'));
    expect(codes.slice(10)).toEqual(Array(40).fill('E_RATE_LIMITED'));
    // Nine lines for the wrong keys below the limit, one when the hold starts; none for the 40 refused.
    expect(logger.warns.filter((m) => /invalid stream key/.test(m))).toHaveLength(9);
    expect(logger.warns.filter((m) => /refusing it until the window ends/.test(m))).toHaveLength(1);
    expect(logger.warns).toHaveLength(10);
    expect(counters.authFailures).toBe(10);
    expect(counters.authRefused).toBe(40);
    expect(a.authFailures.counters).toEqual({ failures: 10, refused: 40 });
    // Held means held, a right key included; another address is not.
    await expect(a.admit('sk_right', '198.51.100.7')).rejects.toMatchObject({ code: 'E_RATE_LIMITED', retryAfterSeconds: 60 });
    await expect(a.admit('sk_right', '198.51.100.8')).resolves.toMatchObject({ streamId: 'stream-1' });
  });

  it('lets the address try again when the window ends', async () => {
    let now = 0;
    const { a } = admission({ max: 2, clock: { now: () => now } });
    await codeOf(a.admit('x', '203.0.113.1'));
    await codeOf(a.admit('y', '203.0.113.1'));
    now = 30_000;
    await expect(a.admit('sk_right', '203.0.113.1')).rejects.toMatchObject({ retryAfterSeconds: 30 });
    now = 60_000;
    await expect(a.admit('sk_right', '203.0.113.1')).resolves.toMatchObject({ streamId: 'stream-1' });
  });

  it('takes offersPerMinute offers of a stream, then 429 with Retry-After, logged once', async () => {
    const { a, logger, counters } = admission({ offersPerMinute: 30 });
    const codes: string[] = [];
    for (let i = 0; i < 40; i++) codes.push(await codeOf(a.admit('sk_right', `192.0.2.${i}`)));
    expect(codes.filter((c) => c === 'admitted')).toHaveLength(30);
    expect(codes.slice(30)).toEqual(Array(10).fill('E_RATE_LIMITED'));
    expect(counters.offersRateLimited).toBe(10);
    expect(logger.warns.filter((m) => /offer rate/.test(m))).toHaveLength(1);
    await expect(a.admit('sk_right', '192.0.2.99')).rejects.toMatchObject({
      status: 429,
      retryAfterSeconds: expect.any(Number),
      message: expect.stringMatching(/30 a minute/),
    });
  });

  it('passes other lookup errors through, uncounted (a catalog that is away is not a wrong key)', async () => {
    const a = new WhipAdmission({
      authorize: async () => {
        throw new AppError('E_CLOSED', 'catalog closed');
      },
      offersPerMinute: 30,
      authFailures: undefined,
      counters: newWebRtcCounters(),
      logger: recordingLogger(),
    });
    for (let i = 0; i < 20; i++) await expect(a.admit('k', '192.0.2.1')).rejects.toMatchObject({ code: 'E_CLOSED' });
    expect(a.authFailures.counters.failures).toBe(0);
  });
});
