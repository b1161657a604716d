/**
 * The live window as the shared store holds it: the stream document and each rendition's playlist state
 * (JSON), made from the packager's window on the ingesting node and read back by any origin, with the pure
 * questions an origin asks of them (does the playlist hold this part? what do its reports say?).
 */
import { partsListed, type LiveRendition, type MediaPlaylistState, type WatchedPackage } from '../packager/index.js';

/** Bumped when the stored shape changes: an origin ignores what it cannot read. */
export const FORMAT = 1;

/** The stream's own document: what its multivariant playlist says and which renditions it has. */
export interface StreamDoc {
  readonly format: number;
  readonly runId: string;
  /** Grows with every change of the document; each rendition state names the one it was written with. */
  readonly version: number;
  /** In the package's order (the order of EXT-X-RENDITION-REPORT lines). */
  readonly renditions: readonly string[];
  /** The multivariant playlist as the package renders it; absent before it has media. */
  readonly multivariant?: string;
  /** The multivariant playlist can be given out (start waiters are answered). */
  readonly playable: boolean;
  /** The package was closed (server shutdown): nothing is held. */
  readonly closing: boolean;
}

/** One rendition's playlist state: everything its media playlist and its held requests depend on. */
export interface RenditionDoc {
  readonly format: number;
  readonly runId: string;
  /** The stream document's version when this was written (an origin with an older one reads it again). */
  readonly doc: number;
  /** The media playlist state without the rendition reports; parts only where the playlist lists them. */
  readonly playlist: Omit<MediaPlaylistState, 'renditionReports'>;
  /** The last segment and part (its reports in other renditions' playlists, `_HLS_*` limits). */
  readonly last: { readonly msn: number; readonly part: number };
  /** A publish session is running: a held request waits the whole hold (else only a few parts). */
  readonly live: boolean;
  /** The window was closed (server shutdown): requests are answered at once. */
  readonly closed: boolean;
  /** How many times the window answered every held request (a session's end, the end, a close). */
  readonly releases: number;
}

export function streamDoc(pkg: WatchedPackage, version: number): StreamDoc {
  return {
    format: FORMAT,
    runId: pkg.runId,
    version,
    renditions: pkg.renditions.map((r) => r.name),
    multivariant: pkg.multivariant(),
    playable: pkg.playable,
    closing: pkg.closing,
  };
}

/**
 * A rendition's state as it stands. Parts of segments the playlist no longer lists are left out (the
 * renderer does not print them and nothing else reads them), which keeps the document a few KB.
 */
export function renditionDoc(pkg: WatchedPackage, r: LiveRendition, docVersion: number, releases: number): RenditionDoc {
  const { renditionReports: _reports, ...state } = r.state([]);
  const listed = partsListed(state);
  const segments = state.segments.map((s, i) => (listed[i] || s.parts.length === 0 ? s : { ...s, parts: [] }));
  return {
    format: FORMAT,
    runId: pkg.runId,
    doc: docVersion,
    playlist: { ...state, segments },
    last: r.lastMsnPart(),
    live: r.live,
    closed: r.closed,
    releases,
  };
}

export function parseStreamDoc(json: string): StreamDoc | undefined {
  const doc = JSON.parse(json) as StreamDoc;
  return doc.format === FORMAT ? doc : undefined;
}

export function parseRenditionDoc(json: string): RenditionDoc | undefined {
  const doc = JSON.parse(json) as RenditionDoc;
  return doc.format === FORMAT ? doc : undefined;
}

/**
 * Whether the playlist holds part `part` of segment `msn` (the whole segment when part is undefined): the
 * packager's SegmentWindow.has over the stored state (the tests hold the two to the same answers).
 */
export function stateHas(doc: RenditionDoc, msn: number, part: number | undefined): boolean {
  const { segments, pending } = doc.playlist;
  const lastComplete = segments.length ? segments[segments.length - 1].msn : -1;
  if (part === undefined) return msn <= lastComplete || (pending !== undefined && pending.msn > msn);
  // An EXT-X-GAP segment has no parts and never will: once it is listed, a request for its parts is answered.
  if (msn <= lastComplete && segments.some((s) => s.msn === msn && s.gap)) return true;
  const last = doc.last;
  return msn < last.msn || (msn === last.msn && part <= last.part);
}

/** Whether the playlist lists the part named `uri` (its bytes are then in the store). */
export function listsPart(doc: RenditionDoc, uri: string): boolean {
  const { segments, pending } = doc.playlist;
  if (pending?.parts.some((p) => p.uri === uri)) return true;
  for (let i = segments.length - 1; i >= 0 && segments[i].parts.length > 0; i--) {
    if (segments[i].parts.some((p) => p.uri === uri)) return true;
  }
  return false;
}

/** The run and session part of a file name (`<run>s<session>`), as LiveRendition names them. */
export function filePrefix(name: string): string {
  const i = name.lastIndexOf('_');
  return i < 0 ? name : name.slice(0, i);
}
