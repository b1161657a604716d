/**
 * LL-HLS playlist rendering: pure functions from window state to text (RFC 8216bis, Apple LL-HLS).
 * No clocks, no I/O: every value comes in through the state so golden tests can compare whole texts.
 */

export interface PartEntry {
  readonly uri: string;
  /** Seconds. */
  readonly duration: number;
  readonly independent: boolean;
}

export interface SegmentEntry {
  readonly msn: number;
  readonly uri: string;
  /** Seconds (complete segments only). */
  readonly duration: number;
  readonly parts: readonly PartEntry[];
  /** Wall clock of the segment's first sample, ms since epoch. */
  readonly programDateTime: number;
  /** An EXT-X-DISCONTINUITY precedes this segment (a new publish session starts here). */
  readonly discontinuity: boolean;
  /** The init segment this segment needs (EXT-X-MAP). */
  readonly initUri: string;
  /**
   * EXT-X-GAP: this rendition has no media for the segment (a transcoded rung that was restarting or
   * dropped); it keeps the media sequence numbers of every rung aligned. Clients do not load it.
   */
  readonly gap?: boolean;
}

export interface RenditionReport {
  readonly uri: string;
  readonly lastMsn: number;
  /** Absent when that segment has no parts (an EXT-X-GAP segment of a rung). */
  readonly lastPart?: number;
}

export interface MediaPlaylistState {
  readonly version: number;
  readonly targetDuration: number;
  /** Seconds. */
  readonly partTarget: number;
  readonly partHoldBack: number;
  readonly canSkipUntil: number;
  readonly discontinuitySequence: number;
  /** Complete segments, oldest first. */
  readonly segments: readonly SegmentEntry[];
  /** The segment being produced: its parts so far (may be empty). Absent once the playlist ended. */
  readonly pending?: Omit<SegmentEntry, 'duration' | 'uri'>;
  /** URI of the next part, announced with EXT-X-PRELOAD-HINT. */
  readonly preloadHint?: string;
  readonly renditionReports: readonly RenditionReport[];
  readonly ended: boolean;
  /** Only segments whose end is within this many seconds of the playlist's end list their parts. */
  readonly partWindow: number;
}

export function fmtDuration(seconds: number): string {
  // Five decimals keep 29.97 fps part durations exact to the tick while staying readable.
  return (Math.round(seconds * 100_000) / 100_000).toFixed(5).replace(/0+$/, '').replace(/\.$/, '.0');
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

function partLine(p: PartEntry): string {
  return `#EXT-X-PART:DURATION=${fmtDuration(p.duration)},URI="${p.uri}"${p.independent ? ',INDEPENDENT=YES' : ''}`;
}

/** The number of complete segments a delta update (`_HLS_skip=YES`) leaves out. */
export function skippableSegments(state: MediaPlaylistState): number {
  // A Server MUST NOT skip segments that are less than the Skip Boundary (CAN-SKIP-UNTIL) from the end of
  // the Playlist; the Skip Boundary is measured from the end of the last complete segment here.
  let tail = 0;
  let n = state.segments.length;
  while (n > 0 && tail < state.canSkipUntil) {
    n--;
    tail += state.segments[n].duration;
  }
  return n;
}

/** For each complete segment, whether the playlist lists its parts. */
export function partsListed(state: Pick<MediaPlaylistState, 'segments' | 'partWindow'>): boolean[] {
  // Parts are listed only near the live edge: Partial Segments SHOULD be removed once they are more than
  // three Target Durations from the end of the Playlist (the window is passed in as partWindow).
  let tailFromEnd = 0;
  const listParts = new Array<boolean>(state.segments.length).fill(false);
  for (let i = state.segments.length - 1; i >= 0; i--) {
    listParts[i] = tailFromEnd < state.partWindow;
    tailFromEnd += state.segments[i].duration;
  }
  return listParts;
}

export interface RenderOptions {
  /** Render a delta update (EXT-X-SKIP) if the window is long enough for one. */
  readonly skip?: boolean;
}

export function renderMediaPlaylist(state: MediaPlaylistState, opts: RenderOptions = {}): string {
  const out: string[] = ['#EXTM3U', `#EXT-X-VERSION:${state.version}`, `#EXT-X-TARGETDURATION:${state.targetDuration}`];
  if (!state.ended) {
    out.push(
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=${fmtDuration(state.canSkipUntil)},PART-HOLD-BACK=${fmtDuration(state.partHoldBack)}`,
    );
  }
  out.push(`#EXT-X-PART-INF:PART-TARGET=${fmtDuration(state.partTarget)}`);
  const first = state.segments.at(0) ?? state.pending;
  out.push(`#EXT-X-MEDIA-SEQUENCE:${first ? first.msn : 0}`);
  if (state.discontinuitySequence > 0) out.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${state.discontinuitySequence}`);

  const skipped = opts.skip && !state.ended ? skippableSegments(state) : 0;
  if (skipped > 0) out.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);

  const listParts = partsListed(state);

  let currentMap: string | undefined;
  const emitHead = (seg: Omit<SegmentEntry, 'duration' | 'uri'>) => {
    // EXT-X-DISCONTINUITY-SEQUENCE counts only discontinuities of segments already removed from the window.
    if (seg.discontinuity) out.push('#EXT-X-DISCONTINUITY');
    if (seg.initUri !== currentMap) {
      out.push(`#EXT-X-MAP:URI="${seg.initUri}"`);
      currentMap = seg.initUri;
    }
    out.push(`#EXT-X-PROGRAM-DATE-TIME:${isoDate(seg.programDateTime)}`);
  };

  for (let i = skipped; i < state.segments.length; i++) {
    const seg = state.segments[i];
    emitHead(seg);
    if (listParts[i]) for (const p of seg.parts) out.push(partLine(p));
    // "EXT-X-GAP ... indicates that the segment URI to which it applies does not contain media data and
    // SHOULD NOT be loaded by clients."
    if (seg.gap) out.push('#EXT-X-GAP');
    out.push(`#EXTINF:${fmtDuration(seg.duration)},`, seg.uri);
  }
  if (state.pending && state.pending.parts.length > 0) {
    emitHead(state.pending);
    for (const p of state.pending.parts) out.push(partLine(p));
  }
  if (state.preloadHint && !state.ended) out.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${state.preloadHint}"`);
  for (const r of state.renditionReports) {
    out.push(`#EXT-X-RENDITION-REPORT:URI="${r.uri}",LAST-MSN=${r.lastMsn}${r.lastPart !== undefined ? `,LAST-PART=${r.lastPart}` : ''}`);
  }
  if (state.ended) out.push('#EXT-X-ENDLIST');
  return out.join('\n') + '\n';
}

export interface VariantEntry {
  readonly uri: string;
  /** Peak bits per second. */
  readonly bandwidth: number;
  readonly averageBandwidth?: number;
  readonly codecs: string;
  readonly width?: number;
  readonly height?: number;
  readonly frameRate?: number;
  readonly name?: string;
}

/**
 * `independentSegments`: every segment starts with a keyframe (EXT-X-INDEPENDENT-SEGMENTS); false once a
 * segment had to be cut without one.
 */
export function renderMultivariantPlaylist(variants: readonly VariantEntry[], opts: { independentSegments?: boolean } = {}): string {
  const out = ['#EXTM3U', '#EXT-X-VERSION:9'];
  if (opts.independentSegments !== false) out.push('#EXT-X-INDEPENDENT-SEGMENTS');
  for (const v of variants) {
    const attrs = [`BANDWIDTH=${Math.round(v.bandwidth)}`];
    if (v.averageBandwidth) attrs.push(`AVERAGE-BANDWIDTH=${Math.round(v.averageBandwidth)}`);
    attrs.push(`CODECS="${v.codecs}"`);
    if (v.width && v.height) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
    if (v.frameRate) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    if (v.name) attrs.push(`NAME="${v.name}"`);
    out.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, v.uri);
  }
  return out.join('\n') + '\n';
}

/** One segment of a VOD media playlist. */
export interface VodSegmentEntry {
  readonly uri: string;
  /** Seconds. */
  readonly duration: number;
  readonly initUri: string;
  readonly discontinuity: boolean;
  readonly gap?: boolean;
  /** ms since epoch; absent for uploads (they have no wall clock). */
  readonly programDateTime?: number;
}

/**
 * A whole VOD media playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST): a recording's segments exactly as
 * they were produced live (no re-encode), or an upload's. TARGETDURATION is the longest segment rounded.
 */
export function renderVodPlaylist(segments: readonly VodSegmentEntry[], opts: { independentSegments?: boolean } = {}): string {
  const target = Math.max(1, ...segments.map((s) => Math.round(s.duration)));
  const out = ['#EXTM3U', '#EXT-X-VERSION:7', `#EXT-X-TARGETDURATION:${target}`, '#EXT-X-PLAYLIST-TYPE:VOD', '#EXT-X-MEDIA-SEQUENCE:0'];
  // Only when every segment starts with a keyframe (a live source may have needed a cut without one).
  if (opts.independentSegments !== false) out.push('#EXT-X-INDEPENDENT-SEGMENTS');
  let currentMap: string | undefined;
  segments.forEach((seg, i) => {
    if (seg.discontinuity && i > 0) out.push('#EXT-X-DISCONTINUITY');
    if (seg.initUri !== currentMap) {
      out.push(`#EXT-X-MAP:URI="${seg.initUri}"`);
      currentMap = seg.initUri;
    }
    if (seg.programDateTime !== undefined) out.push(`#EXT-X-PROGRAM-DATE-TIME:${isoDate(seg.programDateTime)}`);
    if (seg.gap) out.push('#EXT-X-GAP');
    out.push(`#EXTINF:${fmtDuration(seg.duration)},`, seg.uri);
  });
  out.push('#EXT-X-ENDLIST');
  return out.join('\n') + '\n';
}
