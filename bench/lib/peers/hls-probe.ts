import { firstTfdtSeconds, firstVideoPtsTs, parseMediaPlaylist, videoTrackOfInit, type MediaPlaylist, type VideoTrack } from './media.js';
import { getBytes, nowMs } from './http-bytes.js';
import { sleepUnless } from '../../../harness/sleep.js';

/**
 * Node pollers of a live media playlist, the same for every server: they GET the playlist every 50 ms
 * (plain polling, no blocking reload, so that LL-HLS and plain HLS are watched alike) and note when a
 * segment or part first shows up.
 */

const sleep = sleepUnless;

/**
 * Time (ms since the epoch) at which the playlist first listed a complete segment (EXTINF + URI, parts
 * alone do not count) whose file then answered 200; undefined if none within `timeoutMs`.
 */
export async function firstSegmentListedAt(
  playlistUrl: string,
  signal: AbortSignal,
  timeoutMs: number,
  everyMs = 50,
): Promise<number | undefined> {
  const end = nowMs() + timeoutMs;
  while (!signal.aborted && nowMs() < end) {
    const t0 = nowMs();
    try {
      const r = await getBytes(playlistUrl, { timeoutMs: 2000, signal });
      const listedAt = nowMs();
      const first = r.status === 200 ? parseMediaPlaylist(r.body.toString('utf8')).segments[0] : undefined;
      if (first && (await getBytes(new URL(first.uri, playlistUrl).href, { timeoutMs: 5000, signal })).status === 200) return listedAt;
    } catch {
      // not there yet, or the server is busy: poll again
    }
    await sleep(Math.max(0, everyMs - (nowMs() - t0)), signal);
  }
  return undefined;
}

/** One segment or part as the poller saw it. */
export interface SeenItem {
  readonly msn: number;
  readonly uri: string;
  readonly durationS: number;
  /** When the playlist answer that first listed it had arrived. */
  readonly appearedAtMs: number;
  readonly pdtMs?: number;
  /** Decode time of its first video sample, seconds on the server's media timeline (TS PTS or fMP4 tfdt). */
  firstMediaS?: number;
}

/**
 * Watches one stream's playlist from before its publisher starts to the end of the run, notes when each
 * segment (and, with `parts`, each LL-HLS part) appears and downloads it to read its first video timestamp.
 */
export class EdgePoller {
  readonly segments: SeenItem[] = [];
  readonly parts: SeenItem[] = [];
  polls = 0;
  pollErrors = 0;
  downloadErrors = 0;
  last: MediaPlaylist | undefined;
  readonly #url: string;
  readonly #everyMs: number;
  readonly #withParts: boolean;
  readonly #stop = new AbortController();
  readonly #seen = new Set<string>();
  readonly #downloads = new Set<Promise<void>>();
  readonly #inits = new Map<string, Promise<VideoTrack | undefined>>();
  #loop: Promise<void> | undefined;

  constructor(playlistUrl: string, opts: { everyMs?: number; parts?: boolean } = {}) {
    this.#url = playlistUrl;
    this.#everyMs = opts.everyMs ?? 50;
    this.#withParts = opts.parts ?? false;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops polling and waits for the downloads under way. Idempotent. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await Promise.all([...this.#downloads]);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const t0 = nowMs();
      try {
        const r = await getBytes(this.#url, { timeoutMs: 2000, signal });
        const at = nowMs();
        this.polls++;
        if (r.status === 200) this.#note(parseMediaPlaylist(r.body.toString('utf8')), at);
      } catch {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted changes across the await above
        if (!signal.aborted) this.pollErrors++;
      }
      await sleep(Math.max(0, this.#everyMs - (nowMs() - t0)), signal);
    }
  }

  #note(pl: MediaPlaylist, at: number): void {
    this.last = pl;
    const fresh = (uri: string) => !this.#seen.has(uri) && this.#seen.add(uri);
    for (const s of pl.segments) {
      if (!fresh(s.uri)) continue;
      const item: SeenItem = { msn: s.msn, uri: s.uri, durationS: s.durationS, appearedAtMs: at, pdtMs: s.pdtMs };
      this.segments.push(item);
      this.#download(item, pl.mapUri);
    }
    if (!this.#withParts) return;
    for (const p of pl.parts) {
      if (!fresh(p.uri)) continue;
      const item: SeenItem = { msn: p.msn, uri: p.uri, durationS: p.durationS, appearedAtMs: at };
      this.parts.push(item);
      this.#download(item, pl.mapUri);
    }
  }

  /** Fetch the item off the poll loop, so that a slow download never delays noticing the next one. */
  #download(item: SeenItem, mapUri: string | undefined): void {
    const p = (async () => {
      try {
        const url = new URL(item.uri, this.#url).href;
        const r = await getBytes(url, { timeoutMs: 5000 });
        if (r.status !== 200) throw new Error(`${r.status}`);
        if (mapUri === undefined) item.firstMediaS = firstVideoPtsTs(r.body);
        else {
          const track = await this.#init(mapUri);
          item.firstMediaS = track && firstTfdtSeconds(r.body, track);
        }
        if (item.firstMediaS === undefined) this.downloadErrors++;
      } catch {
        this.downloadErrors++;
      }
    })();
    this.#downloads.add(p);
    void p.finally(() => this.#downloads.delete(p));
  }

  #init(mapUri: string): Promise<VideoTrack | undefined> {
    let p = this.#inits.get(mapUri);
    if (!p) {
      p = getBytes(new URL(mapUri, this.#url).href, { timeoutMs: 5000 }).then((r) =>
        r.status === 200 ? videoTrackOfInit(r.body) : undefined,
      );
      this.#inits.set(mapUri, p);
    }
    return p;
  }
}
