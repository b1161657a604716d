import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { newTotals, type ViewerTotals } from '../../harness/llhls-viewer.js';
import { keysWithPrefix } from '../../harness/redis.js';
import { summarize, type Summary } from './stats.js';

/**
 * The figures of bench/cluster.ts that come from outside the viewers: nginx's access log (cache status and
 * whether a request reached an origin), the machine's Redis (INFO deltas, memory of the keys under the
 * bench's prefix), and per-viewer part arrival times around a handover.
 */

// ---- nginx's access log ----

/**
 * One line per request: when it ended, status, cache status, the origin(s) it went to ("-" when none) and
 * the URI. `|` separates the fields: $upstream_addr holds ", " when nginx tried a second origin, and
 * $request_uri never holds a bare `|` (a client would have to send it unencoded).
 */
export const ACCESS_LOG_FORMAT = '$msec|$status|$upstream_cache_status|$upstream_addr|$request_uri';

export type RequestKind = 'part' | 'segment' | 'init' | 'blocking playlist' | 'plain playlist' | 'other';

/** Parts are `<prefix>_p<n>.m4s`, segments `<prefix>_<msn>.m4s`, inits `.mp4` (src/packager). */
export function kindOf(uri: string): RequestKind {
  const [path, query = ''] = uri.split('?', 2);
  if (/_p\d+\.m4s$/.test(path)) return 'part';
  if (path.endsWith('.m4s')) return 'segment';
  if (path.endsWith('.mp4')) return 'init';
  if (path.endsWith('.m3u8')) return /(^|&)_HLS_msn=/.test(query) ? 'blocking playlist' : 'plain playlist';
  return 'other';
}

export interface KindCount {
  requests: number;
  /** $upstream_cache_status HIT: answered from nginx's cache. */
  hits: number;
  /** Requests nginx passed to an origin ($upstream_addr set): MISS, EXPIRED, BYPASS, or a lock timeout. */
  toOrigin: number;
  /** Every cache status seen, with its count. */
  statuses: Record<string, number>;
}

export interface AccessLogCounts {
  readonly byKind: Record<RequestKind, KindCount>;
  readonly requests: number;
  readonly toOrigin: number;
  /** Non-2xx answers. */
  readonly failed: number;
}

/** Count the lines of `file` whose end time ($msec) lies in [fromMs, toMs). */
export function countAccessLog(file: string, fromMs: number, toMs: number): AccessLogCounts {
  const kinds: RequestKind[] = ['part', 'segment', 'init', 'blocking playlist', 'plain playlist', 'other'];
  const byKind = Object.fromEntries(kinds.map((k) => [k, { requests: 0, hits: 0, toOrigin: 0, statuses: {} }])) as Record<
    RequestKind,
    KindCount
  >;
  let requests = 0;
  let toOrigin = 0;
  let failed = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split('|');
    if (f.length < 5) continue;
    const at = Number(f[0]) * 1000;
    if (!(at >= fromMs && at < toMs)) continue;
    const [, status, cache, upstream] = f;
    const c = byKind[kindOf(f.slice(4).join('|'))];
    const origin = upstream !== '-' && upstream !== '';
    c.requests++;
    if (cache === 'HIT') c.hits++;
    if (origin) c.toOrigin++;
    c.statuses[cache] = (c.statuses[cache] ?? 0) + 1;
    requests++;
    if (origin) toOrigin++;
    if (!status.startsWith('2')) failed++;
  }
  return { byKind, requests, toOrigin, failed };
}

// ---- Redis ----

export interface RedisInfo {
  readonly at: number;
  /** used_cpu_sys + used_cpu_user, s. */
  readonly cpuS: number;
  readonly usedMemory: number;
  readonly netIn: number;
  readonly netOut: number;
  readonly connectedClients: number;
  readonly commands: number;
}

export async function redisInfo(redis: Redis): Promise<RedisInfo> {
  const text = await redis.info();
  const v = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    at: Date.now(),
    cpuS: v('used_cpu_sys') + v('used_cpu_user'),
    usedMemory: v('used_memory'),
    netIn: v('total_net_input_bytes'),
    netOut: v('total_net_output_bytes'),
    connectedClients: v('connected_clients'),
    commands: v('total_commands_processed'),
  };
}

/** Keys under `prefix` and the sum of their MEMORY USAGE, bytes. */
export async function prefixMemory(redis: Redis, url: string, prefix: string): Promise<{ keys: number; bytes: number }> {
  const keys = await keysWithPrefix(url, prefix);
  let bytes = 0;
  for (const k of keys) bytes += Number((await redis.memory('USAGE', k)) ?? 0);
  return { keys: keys.length, bytes };
}

// ---- viewers around a handover ----

/**
 * Totals for one viewer that also note when each part arrived (runViewer counts `partsFetched` once per
 * part answered 200), while `recording` is on.
 */
export interface RecordedViewer {
  readonly totals: ViewerTotals;
  readonly partTimes: number[];
  recording: boolean;
}

export function recordedViewer(): RecordedViewer {
  const totals = newTotals();
  const r: RecordedViewer = { totals, partTimes: [], recording: false };
  let parts = 0;
  Object.defineProperty(totals, 'partsFetched', {
    enumerable: true,
    get: () => parts,
    set: (n: number) => {
      parts = n;
      if (r.recording) r.partTimes.push(Date.now());
    },
  });
  return r;
}

export interface HandoverCost {
  readonly viewers: number;
  /** Viewers that got no part after the move within the window. */
  readonly neverResumed: number;
  /** Each viewer's longest time between two part arrivals in the window, ms. */
  readonly longestGapMs: Summary;
  /** The same less the usual time between parts (the median over all viewers before the move): the stall, ms. */
  readonly stallMs: Summary;
  /** The usual time between part arrivals before the move, ms. */
  readonly usualGapMs: number;
  /** From the move to each viewer's first part after it, ms. */
  readonly firstPartAfterMs: Summary;
}

/** `recorded` parts from before the move (movedAt) to `endAt`: each viewer's longest gap. */
export function handoverCost(viewers: readonly RecordedViewer[], movedAt: number, endAt: number): HandoverCost {
  const before: number[] = [];
  const longest: number[] = [];
  const first: number[] = [];
  let neverResumed = 0;
  for (const v of viewers) {
    const t = v.partTimes.filter((x) => x <= endAt);
    for (let i = 1; i < t.length && t[i] < movedAt; i++) before.push(t[i] - t[i - 1]);
    const after = t.find((x) => x > movedAt);
    if (after === undefined) neverResumed++;
    else first.push(after - movedAt);
    // A viewer that never resumed stalled until the end of the window.
    let gap = after === undefined ? endAt - (t.at(-1) ?? movedAt) : 0;
    for (let i = 1; i < t.length; i++) gap = Math.max(gap, t[i] - t[i - 1]);
    longest.push(gap);
  }
  const usual = summarize(before).p50;
  return {
    viewers: viewers.length,
    neverResumed,
    longestGapMs: summarize(longest),
    stallMs: summarize(longest.map((g) => Math.max(0, g - (Number.isFinite(usual) ? usual : 0)))),
    usualGapMs: usual,
    firstPartAfterMs: summarize(first),
  };
}
