import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../src/core/index.js';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('FailureLimiter', () => {
  it('refuses a source at its max-th failure until its window ends, and says so once', () => {
    const c = clock();
    const l = new FailureLimiter({ max: 3, windowMs: 60_000, clock: c });
    expect(l.fail('a')).toMatchObject({ refused: false, justRefused: false });
    expect(l.fail('a').refused).toBe(false);
    const third = l.fail('a');
    expect(third).toMatchObject({ refused: true, justRefused: true, retryAfterSeconds: 60 });
    expect(l.fail('a').justRefused).toBe(false);
    c.t += 30_500;
    expect(l.check('a')).toMatchObject({ refused: true, retryAfterSeconds: 30 });
    expect(l.check('b').refused).toBe(false);
    c.t += 30_000;
    expect(l.check('a').refused).toBe(false);
    expect(l.counters).toEqual({ failures: 4, refused: 1 });
  });

  it('tracks at most maxSources, forgetting the oldest first', () => {
    const c = clock();
    const l = new FailureLimiter({ max: 2, windowMs: 60_000, maxSources: 100, clock: c });
    l.fail('first');
    for (let i = 0; i < 1000; i++) l.fail(`addr-${i}`);
    expect(l.size).toBeLessThanOrEqual(100);
    l.fail('first');
    // Its first failure was forgotten: this is its first again.
    expect(l.check('first').refused).toBe(false);
  });

  it('refuses a nonsensical configuration', () => {
    expect(() => new FailureLimiter({ max: 0, windowMs: 1000 })).toThrow(RangeError);
  });
});
