/**
 * A remote rendition: one rendition of a stream another node ingests, answered from the shared store as
 * the ingesting node's LiveRendition answers: the same media playlist text (the packager's own renderer
 * over the stored state), blocking reloads and preload-hinted parts held with the same limits and errors.
 */
import { AppError, isAppError } from '../core/index.js';
import { checkReachable, IDLE_HOLD_PARTS, renderMediaPlaylist, type OriginRendition, type RenditionReport } from '../packager/index.js';
import { filePrefix, listsPart, stateHas, type RenditionDoc } from './window-state.js';

/** What a remote rendition reads of its stream's view of the store (RemoteStream is one). */
export interface RenditionSource {
  state(rendition: string): RenditionDoc | undefined;
  version(rendition: string): number;
  refreshAll(): Promise<void>;
  refreshState(rendition: string): Promise<void>;
  /** Waits until `ready()` (woken by announcements and re-checks), at most timeoutMs. */
  hold(h: { rendition: string; ready: () => boolean; timeoutMs: number; signal?: AbortSignal }): Promise<void>;
}

/** How a remote rendition reads a file of its window (through the origin's cache). */
export interface RenditionFiles {
  readonly readFile: (rendition: string, name: string) => Promise<Uint8Array | undefined>;
}

export class RemoteRendition implements OriginRendition {
  readonly name: string;
  readonly #stream: RenditionSource;
  readonly #deps: RenditionFiles;
  /** The last rendered playlist per skip flag, reused while the state and the reports are unchanged. */
  readonly #rendered: Array<{ version: number; reports: string; text: string } | undefined> = [undefined, undefined];

  constructor(stream: RenditionSource, name: string, deps: RenditionFiles) {
    this.#stream = stream;
    this.name = name;
    this.#deps = deps;
  }

  get hasSegments(): boolean {
    return (this.#stream.state(this.name)?.playlist.segments.length ?? 0) > 0;
  }

  async playlist(
    q: { msn?: number; part?: number; skip?: boolean },
    reports: () => readonly RenditionReport[],
    holdMs: number,
    signal?: AbortSignal,
  ): Promise<string> {
    const stream = this.#stream;
    // What is stored now, not what the last announcement brought (it may have been lost).
    await unavailableOnFailure(stream.refreshAll());
    const start = this.#state();
    const { msn, part } = q;
    if (msn !== undefined && !start.playlist.ended) {
      checkReachable({ msn, part }, start.last);
      if (!stateHas(start, msn, part) && !start.closed) {
        const hold = start.live ? holdMs : Math.min(holdMs, IDLE_HOLD_PARTS * start.playlist.partTarget * 1000);
        const ready = () => {
          const s = stream.state(this.name);
          return !s || s.playlist.ended || released(s, start) || stateHas(s, msn, part);
        };
        await stream.hold({ rendition: this.name, ready, timeoutMs: hold, signal });
      }
    }
    const state = stream.state(this.name) ?? start;
    const reportList = reports();
    const reportsKey = reportList.map((r) => `${r.uri} ${r.lastMsn} ${r.lastPart}`).join('|');
    const slot = q.skip ? 1 : 0;
    const version = stream.version(this.name);
    const cached = this.#rendered[slot];
    if (cached && cached.version === version && cached.reports === reportsKey) return cached.text;
    const text = renderMediaPlaylist({ ...state.playlist, renditionReports: reportList }, { skip: q.skip });
    this.#rendered[slot] = { version, reports: reportsKey, text };
    return text;
  }

  async file(name: string, holdMs: number, signal?: AbortSignal): Promise<{ bytes: Uint8Array } | undefined> {
    // Reads of one file are shared while one is in flight: a read that began before the file was stored
    // answers "none" to everyone who joined it. So a miss for a file that should be there is read again,
    // after that shared read has ended (the next read is a fresh one).
    const read = () => unavailableOnFailure(this.#deps.readFile(this.name, name));
    const found = await read();
    if (found) return { bytes: found };
    const stream = this.#stream;
    await unavailableOnFailure(stream.refreshState(this.name));
    const start = stream.state(this.name);
    // Listed: its file was stored before the state that lists it.
    if (start && listsPart(start, name)) {
      const again = await read();
      return again ? { bytes: again } : undefined;
    }
    // Only the part the preload hint names is waited for (there is no hint once ended or closed).
    if (!start || name !== start.playlist.preloadHint) return undefined;
    const ready = () => {
      const s = stream.state(this.name);
      if (!s || released(s, start) || listsPart(s, name) || s.playlist.preloadHint === undefined) return true;
      // A new session began: a hinted part of the previous one will never come.
      return s.live && filePrefix(s.playlist.preloadHint) !== filePrefix(name);
    };
    await stream.hold({ rendition: this.name, ready, timeoutMs: holdMs, signal });
    const now = stream.state(this.name);
    if (!now || !listsPart(now, name)) return undefined;
    const bytes = (await read()) ?? (await read());
    return bytes ? { bytes } : undefined;
  }

  #state(): RenditionDoc {
    const st = this.#stream.state(this.name);
    // Written right after the stream document lists the rendition: absent only for a moment.
    if (!st) throw new AppError('E_NOT_FOUND', `rendition ${this.name} has no state in the live window store yet`);
    return st;
  }
}

/** The window answered every held request since `start` (a session's end, the end, a close, a new run). */
function released(s: RenditionDoc, start: RenditionDoc): boolean {
  return s.releases !== start.releases || s.runId !== start.runId || s.closed;
}

/** A store that does not answer makes the request 503 (E_CLOSED); the client asks again. */
export async function unavailableOnFailure<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (isAppError(err)) throw err;
    throw new AppError('E_CLOSED', 'the live window store does not answer', { cause: err });
  }
}
