import { describe, expect, it } from 'vitest';
import { addressKey, BeaconLimits } from '../../src/api/beacon-limits.js';

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

const opts = { burst: 5, perSecond: 1, sessionsPerAddress: 3, sessionsPerVideo: 5, windowMs: 60_000, maxEntries: 100 };

describe('BeaconLimits', () => {
  it('an address gets its burst, then one beacon per 1/perSecond, with Retry-After until the next', () => {
    const c = clock();
    const l = new BeaconLimits({ ...opts, clock: c });
    for (let i = 0; i < 5; i++) expect(l.take('10.0.0.1').ok).toBe(true);
    const refused = l.take('10.0.0.1');
    expect(refused).toEqual({ ok: false, reason: 'too many watch beacons from this address', retryAfterSeconds: 1 });
    expect(l.take('10.0.0.2').ok).toBe(true);
    c.t += 1000;
    expect(l.take('10.0.0.1').ok).toBe(true);
    expect(l.take('10.0.0.1').ok).toBe(false);
    c.t += 60_000;
    for (let i = 0; i < 5; i++) expect(l.take('10.0.0.1').ok).toBe(true);
    expect(l.take('10.0.0.1').ok).toBe(false);
    expect(l.counters.rateRefused).toBe(3);
  });

  it('sessions: a known viewer always passes; new ones up to the per-address and per-video counts of the window', () => {
    const c = clock();
    const l = new BeaconLimits({ ...opts, clock: c });
    for (const v of ['a', 'b', 'c']) expect(l.admitSession('vid', '10.0.0.1', v).ok).toBe(true);
    const full = l.admitSession('vid', '10.0.0.1', 'd');
    expect(full).toMatchObject({ ok: false, retryAfterSeconds: 60 });
    expect(l.admitSession('vid', '10.0.0.1', 'a').ok).toBe(true);
    // Another video from the same address has its own count.
    expect(l.admitSession('other', '10.0.0.1', 'd').ok).toBe(true);
    // Other addresses fill the video's count for the window (5): 2 more, then refused.
    expect(l.admitSession('vid', '10.0.0.2', 'e').ok).toBe(true);
    expect(l.admitSession('vid', '10.0.0.3', 'f').ok).toBe(true);
    const video = l.admitSession('vid', '10.0.0.4', 'g');
    expect(video).toMatchObject({ ok: false, reason: 'too many new viewing sessions of this video' });
    c.t += 30_000;
    expect(l.admitSession('vid', '10.0.0.4', 'g')).toMatchObject({ ok: false, retryAfterSeconds: 30 });
    c.t += 30_000;
    expect(l.admitSession('vid', '10.0.0.4', 'g').ok).toBe(true);
    expect(l.admitSession('vid', '10.0.0.1', 'd').ok).toBe(true);
    expect(l.counters.sessionsRefused).toBe(3);
  });

  it('tracks at most maxEntries of each kind, whatever a flood of addresses and ids sends', () => {
    const l = new BeaconLimits({ ...opts, maxEntries: 50, clock: clock() });
    for (let i = 0; i < 10_000; i++) {
      l.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
      l.admitSession(`video-${i % 200}`, `10.0.${i >> 8}.${i & 255}`, `viewer-${i}`);
    }
    const { addresses, pairs, videos } = l.sizes;
    expect(Math.max(addresses, pairs, videos)).toBeLessThanOrEqual(50);
  });

  it('rejects a limit that is not positive', () => {
    expect(() => new BeaconLimits({ burst: 0 })).toThrow(RangeError);
  });
});

describe('addressKey', () => {
  it('IPv4 as it is (also mapped into IPv6); IPv6 by its /64', () => {
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});
