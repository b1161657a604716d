import { RawHttpConnection, type RawAnswer } from './raw-http.js';
import { sleepUnless } from './sleep.js';

/**
 * A simulated LL-HLS viewer that asks the origin for what hls.js in low-latency mode asks for, without
 * decoding anything:
 *
 *   1. a plain playlist request to join, then the newest part (hls.js starts at the live edge);
 *   2. a loop of blocking playlist reloads for the part after the last one listed
 *      (`_HLS_msn=M&_HLS_part=P`, with `_HLS_skip=YES` delta updates once the server offers them),
 *      and, at the same time, the part the playlist's EXT-X-PRELOAD-HINT names, which the server also holds;
 *   3. every listed part it has not fetched yet (normally none: the hinted one is already here).
 *
 * It measures the part delivery delay: the time from a part being complete to the held request that
 * announces it being answered,
 *
 *   delay = (time the whole answer arrived) - (PROGRAM-DATE-TIME of the part's segment + the part's offset
 *           in it + its duration),
 *
 * PDT being the server's ingest wall clock of the segment's first sample (client and server share the
 * host's clock). Only answers the server actually held count (the request went out before the part was
 * complete); a late request measures the client, not the server.
 *
 * It counts as a gap every hole it sees: after each answer the parts it knows must follow the last one it
 * consumed, by number and in media time (PDT), except across EXT-X-DISCONTINUITY (a new publish session)
 * or a restart of the media sequence. Segments marked EXT-X-GAP count too. Errors are non-200 answers and failed requests.
 */

export interface ViewerTotals {
  /** Delivery delays of held playlist answers, ms (drained by the reporter). */
  playlistDelaysMs: number[];
  /** Delivery delays of held preload-hint part answers (whole body), ms. */
  hintDelaysMs: number[];
  requests: number;
  errors: number;
  /** Parts skipped over (never listed to this viewer) and EXT-X-GAP segments seen. */
  gaps: number;
  /**
   * Parts listed again with a PROGRAM-DATE-TIME more than TIME_HOLE_MS off the one first listed (the server
   * corrects a session's first segment when its PDT anchor moves): not a gap, no media is missing, but
   * counted, since a player that maps by PDT sees the move.
   */
  pdtCorrections: number;
  /** The largest such correction, ms. */
  pdtCorrectionMaxMs: number;
  partsFetched: number;
  bytes: number;
  /** A short description of the last few errors, for the report. */
  lastErrors: string[];
}

export function newTotals(): ViewerTotals {
  return {
    playlistDelaysMs: [],
    hintDelaysMs: [],
    requests: 0,
    errors: 0,
    gaps: 0,
    pdtCorrections: 0,
    pdtCorrectionMaxMs: 0,
    partsFetched: 0,
    bytes: 0,
    lastErrors: [],
  };
}

export interface ListedPart {
  readonly msn: number;
  readonly index: number;
  readonly uri: string;
  /** Wall clock (ms) when the part's last sample was ingested: PDT + offset + duration; NaN without PDT. */
  readonly availableAt: number;
  readonly durationMs: number;
  /** The first part after EXT-X-DISCONTINUITY (a new publish session): its time need not follow. */
  readonly discontinuity: boolean;
}

export interface ParsedPlaylist {
  readonly parts: ListedPart[];
  readonly preloadHint: string | undefined;
  readonly canSkip: boolean;
  /** Media sequence numbers of the segments marked EXT-X-GAP. */
  readonly gapMsns: number[];
  readonly ended: boolean;
}

/** The parts (with their segment's MSN and index), the preload hint and the GAP segments of a media playlist. */
export function parseLivePlaylist(text: string): ParsedPlaylist {
  const parts: ListedPart[] = [];
  const gapMsns: number[] = [];
  let msn = 0;
  let pdt = Number.NaN;
  let offsetMs = 0;
  let index = 0;
  let gap = false;
  let discontinuity = false;
  let preloadHint: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-SKIP:')) msn += Number(/SKIPPED-SEGMENTS=(\d+)/.exec(line)?.[1] ?? 0);
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      pdt = Date.parse(line.slice(25));
      offsetMs = 0;
      index = 0;
    } else if (line.startsWith('#EXT-X-GAP')) gap = true;
    else if (line.startsWith('#EXT-X-DISCONTINUITY') && !line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE')) discontinuity = true;
    else if (line.startsWith('#EXT-X-PART:')) {
      const duration = Number(/DURATION=([\d.]+)/.exec(line)?.[1]) * 1000;
      const uri = /URI="([^"]+)"/.exec(line)?.[1] ?? '';
      offsetMs += duration;
      parts.push({ msn, index: index++, uri, availableAt: pdt + offsetMs, durationMs: duration, discontinuity });
      discontinuity = false;
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) preloadHint = /URI="([^"]+)"/.exec(line)?.[1];
    else if (line.length > 0 && !line.startsWith('#')) {
      if (gap) gapMsns.push(msn);
      gap = false;
      msn++;
      index = 0;
      // The next segment's parts take their time from the next segment's PDT; until then offsets continue.
      pdt += offsetMs;
      offsetMs = 0;
    }
  }
  return { parts, preloadHint, canSkip: text.includes('CAN-SKIP-UNTIL='), gapMsns, ended: text.includes('#EXT-X-ENDLIST') };
}

const sleep = sleepUnless;

/** Media time between two parts beyond this (ms) is a hole; PDT and durations are rounded to the ms. */
const TIME_HOLE_MS = 20;

/**
 * Whether part `p` comes right after `prev`: the next index in its segment or part 0 of the next, and
 * starting where `prev` ended (unless a discontinuity separates them). The time check catches a part
 * missing from the media while the numbering stays contiguous.
 */
function follows(prev: ListedPart, p: ListedPart): boolean {
  const next = (p.msn === prev.msn && p.index === prev.index + 1) || (p.msn === prev.msn + 1 && p.index === 0);
  if (!next) return false;
  const hole = p.availableAt - p.durationMs - prev.availableAt;
  return p.discontinuity || !Number.isFinite(hole) || Math.abs(hole) <= TIME_HOLE_MS;
}

export interface ViewerOptions {
  /** Longest wait for any answer; the server holds at most HLS_HOLD_MS (6 s). */
  readonly timeoutMs?: number;
  /** Fetch parts (preload hints and listed parts); false makes a playlist-only viewer. */
  readonly fetchParts?: boolean;
}

/**
 * One viewer on `playlistUrl` (a media playlist) until `signal` aborts or the playlist ends. Adds to
 * `totals`, which many viewers share.
 */
export async function runViewer(playlistUrl: string, signal: AbortSignal, totals: ViewerTotals, opts: ViewerOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const fetchParts = opts.fetchParts ?? true;
  // Two keep-alive connections, as a browser keeps for this: one for the held playlist (and any listed part
  // it lacks), one for the held hinted part.
  const base = new URL(playlistUrl);
  const main = new RawHttpConnection(base);
  const side = new RawHttpConnection(base);
  /** Set once this viewer is done (an ended playlist): what it then cuts off is not an error. */
  let done = false;
  const closeAll = () => {
    done = true;
    main.close();
    side.close();
  };
  signal.addEventListener('abort', closeAll, { once: true });
  const pathOf = (uri: string) => {
    const u = new URL(uri, base);
    if (u.host !== base.host) throw new Error(`part on another origin: ${uri}`);
    return u.pathname + u.search;
  };
  const fail = (what: string) => {
    totals.errors++;
    totals.lastErrors.push(`${new Date().toISOString()} ${what}`);
    if (totals.lastErrors.length > 10) totals.lastErrors.shift();
  };
  /** Parts fetched or in flight, by URI (bounded), so the hinted part is not fetched twice. */
  const fetched = new Set<string>();
  /** Hinted parts that arrived, by URI: their delay is known once a playlist lists their end time. */
  const hinted = new Map<string, { sentAt: number; arrivedAt: number }>();
  const gapsSeen = new Set<number>();
  /** Parts some playlist listed, by URI (bounded): a hinted part that is listed by the time its 404 comes is missing. */
  const listed = new Set<string>();

  async function fetchPart(uri: string, hint: boolean): Promise<void> {
    if (fetched.has(uri)) return;
    fetched.add(uri);
    if (fetched.size > 64) fetched.delete(fetched.values().next().value!);
    const sentAt = Date.now();
    try {
      const res = await (hint ? side : main).get(pathOf(uri), timeoutMs);
      totals.requests++;
      if (res.status !== 200) {
        fetched.delete(uri);
        // A preload hint names a part that may never come (the stream ended, or its publisher did not
        // return before the grace ran out): the server answers 404 and a player goes on with the next
        // playlist. A listed part that is missing is an error, also when it was asked for as a hint and a
        // playlist listed it while that request was out (it is then not asked for again).
        if (hint && res.status === 404 && !listed.has(uri)) return;
        fail(`${res.status} part ${uri}`);
        return;
      }
      totals.partsFetched++;
      totals.bytes += res.body.length;
      if (hint) {
        hinted.set(uri, { sentAt, arrivedAt: res.arrivedAt });
        if (hinted.size > 16) hinted.delete(hinted.keys().next().value!);
      }
    } catch (err) {
      fetched.delete(uri);
      if (!signal.aborted && !done) fail(`part ${uri}: ${(err as Error).message}`);
    }
  }

  let hintInFlight = false;
  try {
    let last: ListedPart | undefined;
    let skip = false;
    while (!signal.aborted) {
      const path = last
        ? `${base.pathname}?_HLS_msn=${last.msn}&_HLS_part=${last.index + 1}${skip ? '&_HLS_skip=YES' : ''}`
        : base.pathname;
      const sentAt = Date.now();
      let res: RawAnswer;
      try {
        res = await main.get(path, timeoutMs);
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted changes across the await above
        if (signal.aborted) break;
        fail(`playlist: ${(err as Error).message}`);
        last = undefined;
        await sleep(200, signal);
        continue;
      }
      totals.requests++;
      if (res.status !== 200) {
        fail(`${res.status} playlist: ${res.body.toString('utf8').slice(0, 120)}`);
        last = undefined;
        await sleep(200, signal);
        continue;
      }
      const pl = parseLivePlaylist(res.body.toString('utf8'));
      if (pl.ended) return;
      skip = pl.canSkip;
      for (const msn of pl.gapMsns) {
        if (!gapsSeen.has(msn)) totals.gaps++;
        gapsSeen.add(msn);
        if (gapsSeen.size > 64) gapsSeen.delete(gapsSeen.values().next().value!);
      }
      for (const p of pl.parts) {
        listed.add(p.uri);
        if (listed.size > 256) listed.delete(listed.values().next().value!);
        const h = hinted.get(p.uri);
        if (!h) continue;
        if (h.sentAt < p.availableAt && Number.isFinite(p.availableAt)) totals.hintDelaysMs.push(h.arrivedAt - p.availableAt);
        hinted.delete(p.uri);
      }
      if (pl.parts.length === 0) {
        await sleep(200, signal);
        continue;
      }
      const newest = pl.parts[pl.parts.length - 1];
      let fresh: ListedPart[];
      if (!last || newest.msn < last.msn) {
        // Join (or rejoin after a restart of the media sequence) at the live edge with the newest part, as
        // hls.js does in low-latency mode.
        fresh = [newest];
      } else {
        const at = pl.parts.findIndex((p) => p.msn === last!.msn && p.index === last!.index);
        fresh =
          at >= 0 ? pl.parts.slice(at + 1) : pl.parts.filter((p) => p.msn > last!.msn || (p.msn === last!.msn && p.index > last!.index));
        // The part asked for is the first new one; its delay counts when the server had to hold the request.
        const wanted = fresh.at(0);
        if (wanted && Number.isFinite(wanted.availableAt) && sentAt < wanted.availableAt)
          totals.playlistDelaysMs.push(res.arrivedAt - wanted.availableAt);
        // Every part between the last one consumed and the newest must be listed: a hole is a gap. Times are
        // compared within this one playlist: the last part as it lists it now (its PDT may have been corrected
        // since it was first listed; that is a correction, counted apart, not missing media).
        let prev = last;
        const relisted = at >= 0 ? pl.parts[at] : undefined;
        if (relisted) {
          const moved = Math.abs(relisted.availableAt - last.availableAt);
          if (Number.isFinite(moved) && moved > TIME_HOLE_MS) {
            totals.pdtCorrections++;
            totals.pdtCorrectionMaxMs = Math.max(totals.pdtCorrectionMaxMs, moved);
          }
          prev = relisted;
        }
        for (const p of fresh) {
          if (!follows(prev, p)) totals.gaps++;
          prev = p;
        }
      }
      if (fetchParts) for (const p of fresh) await fetchPart(p.uri, false);
      if (fresh.length) last = fresh[fresh.length - 1];
      // The hinted part is requested beside the next blocking reload (the server holds both).
      if (fetchParts && pl.preloadHint && !hintInFlight && !fetched.has(pl.preloadHint)) {
        hintInFlight = true;
        void fetchPart(pl.preloadHint, true).finally(() => (hintInFlight = false));
      }
    }
  } catch (err) {
    if (!signal.aborted) fail(`viewer: ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', closeAll);
    closeAll();
  }
}
