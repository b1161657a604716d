/**
 * Bounds on viewer watch beacons (POST /api/v1/videos/<id>/watch), which anyone may send: how often one
 * address may send them, and how many viewing sessions (catalog rows) one address, and all addresses
 * together, may open on one video. Everything is in memory, per node, and bounded in entries: a flood of
 * distinct addresses or ids forgets old records, it does not grow memory.
 */
import { monotonicClock, type Clock } from '../core/index.js';

export interface BeaconLimitOptions {
  /** Beacons one address may send at once (the bucket's size). */
  readonly burst: number;
  /** Beacons per second one address earns back. */
  readonly perSecond: number;
  /** Viewing sessions (distinct viewer ids) one address may open on one video per window. */
  readonly sessionsPerAddress: number;
  /** Viewing sessions all addresses together may open on one video per window. */
  readonly sessionsPerVideo: number;
  readonly windowMs: number;
  /** Addresses, (video, address) pairs and videos tracked at once, each. */
  readonly maxEntries: number;
  /** Measures windows and refills; default monotonicClock. */
  readonly clock?: Clock;
}

/**
 * A watch page sends one beacon every 10 s and one on leaving; 60 at once and 2 a second leave room for
 * about 20 viewers behind one NAT. 32 sessions per video per address per 10 minutes covers a household or
 * a small office reloading the page; 2,000 new sessions per video per 10 minutes bounds what many
 * addresses together add to the table (about 290,000 rows a day per video at most).
 */
export const DEFAULT_BEACON_LIMITS: BeaconLimitOptions = {
  burst: 60,
  perSecond: 2,
  sessionsPerAddress: 32,
  sessionsPerVideo: 2000,
  windowMs: 10 * 60_000,
  maxEntries: 10_000,
};

export type BeaconVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly retryAfterSeconds: number };

const OK: BeaconVerdict = { ok: true };

/**
 * The key of a client address: IPv4 as it is, IPv6 by its /64 (one subscriber usually holds a whole /64,
 * so counting single addresses there would bound nothing).
 */
export function addressKey(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4) return v4[1];
  if (!ip.includes(':')) return ip;
  const [head, tail = ''] = ip.toLowerCase().split('::');
  const groups = head === '' ? [] : head.split(':');
  // "a:b::c": the groups before "::" are the first ones; pad with zeros when fewer than four are given.
  const missing = 8 - groups.length - (tail === '' ? 0 : tail.split(':').length);
  const full = [...groups, ...Array<string>(Math.max(0, missing)).fill('0'), ...(tail === '' ? [] : tail.split(':'))];
  return `${full.slice(0, 4).join(':')}::/64`;
}

/** 32-bit FNV-1a: viewer ids are kept as numbers (a collision only lets one id count as another). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Deletes the oldest entries of an insertion-ordered map until it has room for one more. */
function makeRoom<V>(map: Map<string, V>, max: number, expired: (v: V) => boolean): void {
  if (map.size < max) return;
  for (const [k, v] of map) if (expired(v)) map.delete(k);
  for (const k of map.keys()) {
    if (map.size < max) break;
    map.delete(k);
  }
}

interface Bucket {
  tokens: number;
  at: number;
}

interface SessionWindow {
  readonly startedAt: number;
  readonly viewers: Set<number>;
}

interface CountWindow {
  readonly startedAt: number;
  count: number;
}

export class BeaconLimits {
  readonly #opts: Required<BeaconLimitOptions>;
  readonly #buckets = new Map<string, Bucket>();
  readonly #sessions = new Map<string, SessionWindow>();
  readonly #videos = new Map<string, CountWindow>();
  /** Beacons refused for rate, and new sessions refused, since start (for tests and /metrics). */
  readonly counters = { rateRefused: 0, sessionsRefused: 0 };

  constructor(opts: Partial<BeaconLimitOptions> = {}) {
    this.#opts = { clock: monotonicClock, ...DEFAULT_BEACON_LIMITS, ...opts };
    const o = this.#opts;
    if (!(o.burst >= 1 && o.perSecond > 0 && o.sessionsPerAddress >= 1 && o.sessionsPerVideo >= 1 && o.windowMs >= 1 && o.maxEntries >= 1))
      throw new RangeError('BeaconLimits: every limit must be positive');
  }

  /** Takes one beacon from the address's bucket; refused when it is empty. */
  take(address: string): BeaconVerdict {
    const now = this.#opts.clock.now();
    let b = this.#buckets.get(address);
    if (b) {
      b.tokens = Math.min(this.#opts.burst, b.tokens + ((now - b.at) / 1000) * this.#opts.perSecond);
      b.at = now;
      // Most recently used last, so the oldest-first eviction drops idle addresses.
      this.#buckets.delete(address);
    } else {
      makeRoom(this.#buckets, this.#opts.maxEntries, () => false);
      b = { tokens: this.#opts.burst, at: now };
    }
    this.#buckets.set(address, b);
    if (b.tokens < 1) {
      this.counters.rateRefused++;
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - b.tokens) / this.#opts.perSecond));
      return { ok: false, reason: 'too many watch beacons from this address', retryAfterSeconds };
    }
    b.tokens -= 1;
    return OK;
  }

  /**
   * Whether `viewerId` may be a viewing session of `videoId` from `address`: one already seen in this
   * window is; a new one is while neither the address's nor the video's count for the window is reached.
   */
  admitSession(videoId: string, address: string, viewerId: string): BeaconVerdict {
    const now = this.#opts.clock.now();
    const key = `${videoId}\n${address}`;
    const expired = (w: { startedAt: number }) => now - w.startedAt >= this.#opts.windowMs;
    let s = this.#sessions.get(key);
    if (s && expired(s)) s = undefined;
    const id = hash32(viewerId);
    if (s?.viewers.has(id)) return OK;
    if (s && s.viewers.size >= this.#opts.sessionsPerAddress)
      return this.#refuseSession(s, 'too many viewing sessions of this video from this address', now);
    let v = this.#videos.get(videoId);
    if (v && expired(v)) v = undefined;
    if (v && v.count >= this.#opts.sessionsPerVideo) return this.#refuseSession(v, 'too many new viewing sessions of this video', now);
    if (!v) {
      this.#videos.delete(videoId);
      makeRoom(this.#videos, this.#opts.maxEntries, expired);
      v = { startedAt: now, count: 0 };
      this.#videos.set(videoId, v);
    }
    if (!s) {
      this.#sessions.delete(key);
      makeRoom(this.#sessions, this.#opts.maxEntries, expired);
      s = { startedAt: now, viewers: new Set() };
      this.#sessions.set(key, s);
    }
    v.count++;
    s.viewers.add(id);
    return OK;
  }

  /** Entries tracked now, each kind (for tests: they stay under maxEntries). */
  get sizes(): { addresses: number; pairs: number; videos: number } {
    return { addresses: this.#buckets.size, pairs: this.#sessions.size, videos: this.#videos.size };
  }

  #refuseSession(w: { startedAt: number }, reason: string, now: number): BeaconVerdict {
    this.counters.sessionsRefused++;
    const retryAfterSeconds = Math.max(1, Math.ceil((w.startedAt + this.#opts.windowMs - now) / 1000));
    return { ok: false, reason, retryAfterSeconds };
  }
}
