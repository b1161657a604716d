/**
 * Held requests: blocking playlist reloads (`_HLS_msn`/`_HLS_part`) and preload-hint parts that wait for a
 * rendition's live window, each bounded in time and in number, and ended when the client goes away.
 */
import { AppError, ClosedError } from '../core/index.js';

/** Longest a blocking request is held while no publish session runs (stock hls.js gives up at 3 parts). */
export const IDLE_HOLD_PARTS = 3;

interface PlaylistWaiter {
  readonly msn: number;
  readonly part: number | undefined;
  readonly resolve: () => void;
}

interface FileWaiter {
  readonly name: string;
  readonly resolve: (bytes: Uint8Array | undefined) => void;
}

/**
 * Refuses a blocking request the window cannot reach soon, given the playlist's last segment and part.
 * "If the _HLS_msn is greater than the Media Sequence Number of the last Media Segment in the current
 * Playlist plus two, or if the _HLS_part exceeds the last Partial Segment in the current Playlist by
 * the Advance Part Limit, then the server SHOULD immediately return Bad Request."
 */
export function checkReachable(q: { msn: number; part?: number }, last: { msn: number; part: number }): void {
  if (q.msn > last.msn + 2) {
    throw new AppError('E_PLAYLIST_TOO_FAR_AHEAD', `_HLS_msn=${q.msn} is more than two segments past the last one (${last.msn})`);
  }
  // Parts count across the segment boundary: part p of a later segment is at least p + 1 parts ahead.
  if (q.part !== undefined && ((q.msn === last.msn && q.part > last.part + 3) || (q.msn > last.msn && q.part >= 3))) {
    throw new AppError(
      'E_PLAYLIST_TOO_FAR_AHEAD',
      `_HLS_msn=${q.msn}&_HLS_part=${q.part} is more than three parts past the last one (${last.msn}.${last.part})`,
    );
  }
}

/** The requests held on one rendition. */
export class HeldRequests {
  readonly #rendition: string;
  readonly #max: number;
  readonly #playlists = new Set<PlaylistWaiter>();
  readonly #files = new Set<FileWaiter>();

  constructor(rendition: string, max: number) {
    this.#rendition = rendition;
    this.#max = max;
  }

  get size(): number {
    return this.#playlists.size + this.#files.size;
  }

  /**
   * Resolves when wake() finds part `part` of segment `msn` (the whole segment when undefined) in the
   * window, on releasePlaylists(), or after holdMs; rejects with ClosedError when `signal` aborts.
   */
  playlist(msn: number, part: number | undefined, holdMs: number, signal?: AbortSignal): Promise<void> {
    this.#checkLimit();
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClosedError('client request'));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#playlists.delete(waiter);
      };
      const waiter: PlaylistWaiter = { msn, part, resolve: () => (done(), resolve()) };
      // A request the stream does not satisfy in time is answered with what there is; the client asks again.
      const timer = setTimeout(waiter.resolve, holdMs);
      const onAbort = () => (done(), reject(new ClosedError('client request')));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#playlists.add(waiter);
    });
  }

  /** Resolves with the bytes of file `name` (releaseFiles), or undefined after holdMs; rejects when `signal` aborts. */
  file(name: string, holdMs: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    this.#checkLimit();
    return new Promise<Uint8Array | undefined>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClosedError('client request'));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#files.delete(waiter);
      };
      const waiter: FileWaiter = { name, resolve: (b) => (done(), resolve(b)) };
      const timer = setTimeout(() => waiter.resolve(undefined), holdMs);
      const onAbort = () => (done(), reject(new ClosedError('client request')));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#files.add(waiter);
    });
  }

  /** Answers the playlist requests whose segment or part `ready` says the window now holds. */
  wake(ready: (msn: number, part: number | undefined) => boolean): void {
    for (const w of this.#playlists) if (ready(w.msn, w.part)) w.resolve();
  }

  /** Answers every held playlist request with the playlist as it is. */
  releasePlaylists(): void {
    for (const w of [...this.#playlists]) w.resolve();
  }

  /** Answers the held file requests that `match`, with `bytes` (undefined: not coming). */
  releaseFiles(bytes: Uint8Array | undefined, match: (name: string) => boolean): void {
    for (const w of this.#files) if (match(w.name)) w.resolve(bytes);
  }

  #checkLimit(): void {
    if (this.size >= this.#max) {
      throw new AppError('E_LIMIT_EXCEEDED', `too many requests held on rendition ${this.#rendition} (${this.#max})`);
    }
  }
}
