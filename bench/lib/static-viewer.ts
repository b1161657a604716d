import { RawHttpConnection } from '../../harness/raw-http.js';
import { rounded, summarize, type Summary } from './stats.js';
import { sleepUnless } from '../../harness/sleep.js';

/**
 * A viewer for a static origin (nginx serving a snapshot of a live stream from disk), the floor beside
 * which the fan-out bench puts our LL-HLS origin.
 *
 * A static server cannot hold a request until a part exists, so this viewer asks for what an LL-HLS viewer
 * gets per part, at the part rate: once every PART-TARGET, the media playlist and the next part, side by
 * side on two keep-alive connections (as a browser keeps for the held playlist and the hinted part),
 * looping over the snapshot's parts. Every viewer ticks on the same wall-clock grid (multiples of
 * PART-TARGET), as LL-HLS viewers are all answered at the same instant when a part completes: a burst of
 * N playlists and N parts each PART-TARGET.
 *
 * The figure is the response time: request sent to the whole answer received. A tick whose requests are
 * still out when the next one is due is not doubled up: the viewer waits for the next grid instant and
 * counts the ticks it missed.
 */

export interface StaticSnapshot {
  /** The media playlist as nginx serves it. */
  readonly playlistUrl: string;
  /** The parts it lists, in order, as nginx serves them. */
  readonly partUrls: readonly string[];
  readonly partTargetMs: number;
}

export interface StaticTotals {
  /** Response times of playlist requests, ms (drained by the reporter). */
  playlistMs: number[];
  /** Response times of part requests (whole body), ms. */
  partMs: number[];
  requests: number;
  errors: number;
  /** Grid instants skipped because the previous tick's answers had not all arrived. */
  missedTicks: number;
  bytes: number;
  lastErrors: string[];
}

export function newStaticTotals(): StaticTotals {
  return { playlistMs: [], partMs: [], requests: 0, errors: 0, missedTicks: 0, bytes: 0, lastErrors: [] };
}

const sleepUntil = (wallMs: number, signal: AbortSignal) => sleepUnless(Math.max(0, wallMs - Date.now()), signal);

/** One viewer of `snap` until `signal` aborts; adds to `totals`, which many viewers share. */
export async function runStaticViewer(snap: StaticSnapshot, signal: AbortSignal, totals: StaticTotals, timeoutMs = 10_000): Promise<void> {
  if (snap.partUrls.length === 0) throw new Error('the snapshot lists no parts');
  // Two keep-alive connections, one for the playlist and one for the part, as the LL-HLS viewer keeps.
  const origin = new URL(snap.playlistUrl);
  const playlistConn = new RawHttpConnection(origin);
  const partConn = new RawHttpConnection(origin);
  const closeAll = () => {
    playlistConn.close();
    partConn.close();
  };
  signal.addEventListener('abort', closeAll, { once: true });
  const period = snap.partTargetMs;
  const fail = (what: string) => {
    totals.errors++;
    totals.lastErrors.push(`${new Date().toISOString()} ${what}`);
    if (totals.lastErrors.length > 10) totals.lastErrors.shift();
  };
  const fetchOne = async (conn: RawHttpConnection, url: string, into: number[]) => {
    const sentAt = performance.now();
    try {
      const u = new URL(url);
      const r = await conn.get(u.pathname + u.search, timeoutMs);
      totals.requests++;
      if (r.status !== 200) return fail(`${r.status} ${url}`);
      totals.bytes += r.body.length;
      into.push(r.arrivedPerf - sentAt);
    } catch (err) {
      if (!signal.aborted) fail(`${url}: ${(err as Error).message}`);
    }
  };
  try {
    let tick = Math.ceil(Date.now() / period);
    while (!signal.aborted) {
      await sleepUntil(tick * period, signal);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted changes across the await above
      if (signal.aborted) break;
      // Every viewer asks for the same part at the same tick, as live viewers do.
      const part = snap.partUrls[tick % snap.partUrls.length];
      await Promise.all([fetchOne(playlistConn, snap.playlistUrl, totals.playlistMs), fetchOne(partConn, part, totals.partMs)]);
      const next = Math.max(tick + 1, Math.ceil(Date.now() / period));
      totals.missedTicks += next - tick - 1;
      tick = next;
    }
  } finally {
    signal.removeEventListener('abort', closeAll);
    closeAll();
  }
}

export interface StaticWindow {
  readonly playlistMs: Summary;
  readonly partMs: Summary;
  readonly requests: number;
  readonly errors: number;
  readonly missedTicks: number;
  readonly lastErrors: string[];
}

/** Start counting what viewers sharing `totals` see; `end()` gives this window alone. */
export function staticWindow(totals: StaticTotals): { end(): StaticWindow } {
  totals.playlistMs.length = 0;
  totals.partMs.length = 0;
  const at = { requests: totals.requests, errors: totals.errors, missedTicks: totals.missedTicks };
  return {
    end() {
      const w: StaticWindow = {
        playlistMs: rounded(summarize(totals.playlistMs), 1),
        partMs: rounded(summarize(totals.partMs), 1),
        requests: totals.requests - at.requests,
        errors: totals.errors - at.errors,
        missedTicks: totals.missedTicks - at.missedTicks,
        lastErrors: totals.errors > at.errors ? [...totals.lastErrors] : [],
      };
      totals.playlistMs.length = 0;
      totals.partMs.length = 0;
      return w;
    },
  };
}
