import { AppError, ClosedError, type TrackSet } from '../core/index.js';
import { renderMediaPlaylist, type MediaPlaylistState, type PartEntry, type RenditionReport, type SegmentEntry } from './playlist.js';
import type { PartOut, SegmenterSink } from './segmenter.js';

export interface WindowOptions {
  /** Complete segments kept in the playlist. */
  readonly windowSegments: number;
  /** Segments kept fetchable after they leave the playlist (players and CDNs a little behind). */
  readonly retainSegments: number;
  readonly segmentTargetMs: number;
  /** Advertised PART-TARGET in seconds, read when a playlist is rendered (fitted to frames after the first part). */
  readonly partTarget: () => number;
  /** EXT-X-TARGETDURATION in seconds (fixed by the segmenter at the first segment). */
  readonly targetDuration: () => number;
  /** Requests (blocking playlist reloads and preload-hint parts) held at once; more are refused. */
  readonly maxHeldRequests: number;
  /** Told of every completed segment, in order (the recorder). Called synchronously: it must not block. */
  readonly onSegment?: (seg: CompletedSegment) => void;
}

/** A segment the rendition just completed, with everything needed to store it and list it later. */
export interface CompletedSegment {
  readonly msn: number;
  /** File name as the live playlist lists it (unique within the stream run). */
  readonly uri: string;
  readonly initUri: string;
  /** The init segment's bytes (the same for every segment of a publish session). */
  readonly init: Uint8Array | undefined;
  /** The segment's bytes are these parts joined; empty for a gap. */
  readonly parts: readonly Uint8Array[];
  /** The parts joined, made once and shared with the origin, which serves the same bytes. */
  readonly bytes: () => Uint8Array;
  /** Seconds. */
  readonly duration: number;
  readonly discontinuity: boolean;
  readonly gap: boolean;
  /** Its first part starts with a keyframe. */
  readonly independent: boolean;
  readonly programDateTime: number;
  readonly tracks: TrackSet;
}

/** Longest a blocking request is held while no publish session runs (stock hls.js gives up at 3 parts). */
const IDLE_HOLD_PARTS = 3;

interface StoredPart {
  readonly entry: PartEntry;
  readonly bytes: Uint8Array;
}

interface StoredSegment {
  readonly msn: number;
  readonly prefix: string;
  readonly initUri: string;
  readonly discontinuity: boolean;
  /** Set from the first part, then corrected when the segment completes (the PDT anchor may have moved). */
  programDateTime: number;
  readonly parts: StoredPart[];
  duration: number;
  bytes?: Uint8Array;
  gap?: boolean;
}

interface PlaylistWaiter {
  readonly msn: number;
  readonly part: number | undefined;
  readonly resolve: () => void;
}

interface FileWaiter {
  readonly name: string;
  readonly resolve: (bytes: Uint8Array | undefined) => void;
}

export type FileKind = 'init' | 'part' | 'segment';

/**
 * The in-memory live window of one rendition: init segments, parts and segments by name, the playlist
 * state, and the requests held for blocking reload and preload hints. File names carry the stream run's
 * random id and the session number, so a CDN never serves an old run's file for a new one.
 *
 * Between two publish sessions (the publisher dropped and may come back) the playlist still ends with
 * EXT-X-PRELOAD-HINT, naming the part the next session starts with. A live playlist must never end in a
 * segment's URI line: hls.js then takes that last segment for the partial segment in progress, lines
 * the next playlist up one segment off against it, and stops with a fatal "media sequence mismatch" or
 * "discontinuity sequence mismatch" when the next session's first segment appears.
 */
export class LiveRendition implements SegmenterSink {
  readonly name: string;
  readonly #runId: string;
  readonly #opts: WindowOptions;
  #session = 0;
  #prefix = '';
  #initUri = '';
  /** Every fetchable file by name: inits, parts near the live edge, segments in and just behind the window. */
  #files = new Map<string, { kind: FileKind; bytes: Uint8Array | undefined; seg?: StoredSegment }>();
  /** Bumped on every change of the window; the last rendered playlist per skip flag is reused until then. */
  #version = 0;
  #rendered: Array<{ version: number; reports: string; text: string } | undefined> = [undefined, undefined];
  #segments: StoredSegment[] = [];
  #retired: StoredSegment[] = [];
  #pending: StoredSegment | undefined;
  #nextMsn = 0;
  #partSeq = 0;
  #discontinuitySeq = 0;
  #nextDiscontinuity = false;
  #ended = false;
  #closed = false;
  #live = false;
  #playlistWaiters = new Set<PlaylistWaiter>();
  #fileWaiters = new Set<FileWaiter>();
  tracks: TrackSet = {};
  peakBandwidth = 0;
  #bitsSum = 0;
  #secondsSum = 0;

  constructor(name: string, runId: string, opts: WindowOptions) {
    this.name = name;
    this.#runId = runId;
    this.#opts = opts;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get hasSegments(): boolean {
    return this.#segments.length > 0;
  }

  /** A publish session is running (parts may come). */
  get live(): boolean {
    return this.#live;
  }

  /** The media sequence number the next segment gets. */
  get nextMsn(): number {
    return this.#pending ? this.#pending.msn + 1 : this.#nextMsn;
  }

  /**
   * A transcoded rung starts at the source's media sequence number `msn`. Before its first segment that
   * just sets the counter; later, the segments it has no media for are listed as EXT-X-GAP (`fill`
   * gives each one's duration and PDT). Returns false if `msn` is already behind the playlist.
   */
  alignTo(msn: number, fill: (msn: number) => { duration: number; programDateTime: number; discontinuity: boolean } | undefined): boolean {
    if (this.#pending) return msn === this.#pending.msn + 1;
    if (this.#segments.length === 0 && this.#retired.length === 0) {
      this.#nextMsn = msn;
      return true;
    }
    while (this.#nextMsn < msn) {
      const g = fill(this.#nextMsn);
      if (!g) break;
      this.addGap(g.duration, g.programDateTime, g.discontinuity);
    }
    return this.#nextMsn === msn;
  }

  /** One EXT-X-GAP segment at the end of the playlist. */
  addGap(duration: number, programDateTime: number, discontinuity = false): void {
    if (this.#pending) return;
    this.#pending = {
      msn: this.#nextMsn++,
      prefix: this.#prefix,
      initUri: this.#initUri,
      discontinuity,
      programDateTime,
      parts: [],
      duration,
      gap: true,
    };
    this.segmentEnd();
  }

  get averageBandwidth(): number {
    return this.#secondsSum > 0 ? this.#bitsSum / this.#secondsSum : 0;
  }

  // ---- SegmenterSink ----

  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void {
    this.#session++;
    this.#prefix = `${this.#runId}s${this.#session}`;
    const previous = this.#initUri;
    this.#initUri = `${this.#prefix}_init.mp4`;
    this.#files.set(this.#initUri, { kind: 'init', bytes });
    this.#version++;
    // A session that never completed a segment (no keyframe, a codec change right away) leaves an init
    // nothing refers to: drop it so a publisher that keeps reconnecting cannot grow the map.
    if (previous && !this.#referenced(previous)) this.#files.delete(previous);
    this.tracks = tracks;
    this.#nextDiscontinuity = discontinuity;
    this.#live = true;
    // A hinted part of the previous session will never come.
    this.#releaseFiles(undefined, (w) => !w.name.startsWith(`${this.#prefix}_`));
  }

  part(p: PartOut): void {
    if (!this.#pending) {
      this.#pending = {
        msn: this.#nextMsn++,
        prefix: this.#prefix,
        initUri: this.#initUri,
        discontinuity: this.#nextDiscontinuity,
        programDateTime: p.programDateTime,
        parts: [],
        duration: 0,
      };
      this.#nextDiscontinuity = false;
    }
    const uri = `${this.#prefix}_p${this.#partSeq++}.m4s`;
    this.#pending.parts.push({ entry: { uri, duration: p.duration, independent: p.independent }, bytes: p.bytes });
    this.#pending.duration += p.duration;
    this.#files.set(uri, { kind: 'part', bytes: p.bytes });
    this.#version++;
    this.#releaseFiles(p.bytes, (w) => w.name === uri);
    this.#wake();
  }

  segmentEnd(programDateTime?: number): void {
    const seg = this.#pending;
    if (!seg) return;
    this.#pending = undefined;
    if (programDateTime !== undefined) seg.programDateTime = programDateTime;
    // The whole segment's bytes are made when first asked for (LL-HLS players load parts; most segments
    // are never fetched whole), or when its parts' bytes are released.
    if (!seg.gap) this.#files.set(segmentUri(seg), { kind: 'segment', bytes: undefined, seg });
    this.#segments.push(seg);
    this.#opts.onSegment?.({
      msn: seg.msn,
      uri: segmentUri(seg),
      initUri: seg.initUri,
      init: this.#files.get(seg.initUri)?.bytes,
      parts: seg.parts.map((p) => p.bytes),
      bytes: () => this.#segmentBytes(seg),
      duration: seg.duration,
      discontinuity: seg.discontinuity,
      gap: seg.gap === true,
      independent: seg.parts[0]?.entry.independent ?? false,
      programDateTime: seg.programDateTime,
      tracks: this.tracks,
    });
    this.#version++;
    const bits = seg.parts.reduce((n, p) => n + p.bytes.byteLength, 0) * 8;
    if (seg.duration > 0 && !seg.gap) {
      this.peakBandwidth = Math.max(this.peakBandwidth, bits / seg.duration);
      this.#bitsSum += bits;
      this.#secondsSum += seg.duration;
    }
    while (this.#segments.length > this.#opts.windowSegments) {
      const old = this.#segments.shift()!;
      if (old.discontinuity) this.#discontinuitySeq++;
      this.#retired.push(old);
    }
    while (this.#retired.length > this.#opts.retainSegments) {
      const gone = this.#retired.shift()!;
      this.#files.delete(segmentUri(gone));
      this.#dropPartBytes(gone);
      if (!this.#referenced(gone.initUri)) this.#files.delete(gone.initUri);
    }
    // Part bytes are needed only where parts are listed (within partWindow of the end) and a little
    // behind it for players that read an older playlist; older segments are served whole.
    const target = this.targetDuration();
    const keepSeconds = 3 * target + target;
    let tail = 0;
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      if (tail > keepSeconds) this.#dropPartBytes(this.#segments[i]);
      tail += this.#segments[i].duration;
    }
    this.#wake();
  }

  /** The publish session ended; hints for its next part will not be answered with bytes. */
  sessionEnd(): void {
    this.#live = false;
    this.#version++;
    this.#releaseFiles(undefined, () => true);
    // Nothing comes until a publisher returns: held requests are answered now, and new ones are held
    // only briefly, so a player asks again rather than timing out (hls.js waits 3 parts at the least).
    for (const w of [...this.#playlistWaiters]) w.resolve();
  }

  /**
   * The part EXT-X-PRELOAD-HINT names: the session's next one, or between sessions the first part of the
   * next session (its name is known: the session number and the part counter both go on).
   */
  #hintUri(): string {
    const prefix = this.#live ? this.#prefix : `${this.#runId}s${this.#session + 1}`;
    return `${prefix}_p${this.#partSeq}.m4s`;
  }

  /** The stream ended: the playlist gets EXT-X-ENDLIST and every held request is answered. */
  end(): void {
    this.#ended = true;
    this.sessionEnd();
  }

  /**
   * Server shutdown: answer every held request with the playlist as it is (no EXT-X-ENDLIST: the stream
   * goes on elsewhere or after a restart) and hold no new ones. Idempotent.
   */
  close(): void {
    this.#closed = true;
    this.#live = false;
    this.#version++;
    this.#releaseFiles(undefined, () => true);
    for (const w of this.#playlistWaiters) w.resolve();
  }

  // ---- queries ----

  lastMsnPart(): { msn: number; part: number } {
    if (this.#pending && this.#pending.parts.length > 0) return { msn: this.#pending.msn, part: this.#pending.parts.length - 1 };
    const last = this.#segments[this.#segments.length - 1];
    return last ? { msn: last.msn, part: last.parts.length - 1 } : { msn: -1, part: -1 };
  }

  targetDuration(): number {
    return this.#opts.targetDuration();
  }

  state(reports: readonly RenditionReport[]): MediaPlaylistState {
    const target = this.targetDuration();
    const partTarget = this.#opts.partTarget();
    const toEntry = (s: StoredSegment): SegmentEntry => ({
      msn: s.msn,
      uri: segmentUri(s),
      duration: s.duration,
      parts: s.parts.map((p) => p.entry),
      programDateTime: s.programDateTime,
      discontinuity: s.discontinuity,
      initUri: s.initUri,
      gap: s.gap,
    });
    const pending = this.#pending;
    return {
      version: 9,
      targetDuration: target,
      partTarget,
      partHoldBack: 3 * partTarget,
      canSkipUntil: 6 * target,
      discontinuitySequence: this.#discontinuitySeq,
      segments: this.#segments.map(toEntry),
      pending: pending
        ? { msn: pending.msn, parts: pending.parts.map((p) => p.entry), programDateTime: pending.programDateTime, discontinuity: pending.discontinuity, initUri: pending.initUri }
        : undefined,
      preloadHint: !this.#ended && !this.#closed && this.#session > 0 ? this.#hintUri() : undefined,
      renditionReports: reports,
      ended: this.#ended,
      partWindow: 3 * target,
    };
  }

  /** Whether the playlist holds part `part` of segment `msn` (or the whole segment when part is undefined). */
  has(msn: number, part: number | undefined): boolean {
    const last = this.lastMsnPart();
    const pending = this.#pending;
    const lastComplete = this.#segments.length ? this.#segments[this.#segments.length - 1].msn : -1;
    if (part === undefined) {
      // Segment msn is complete once a later one has begun or it is in the list of complete segments.
      return msn <= lastComplete || (pending !== undefined && pending.msn > msn);
    }
    // An EXT-X-GAP segment has no parts and never will: once it is listed, a request for any of its
    // parts is answered (not held until the next segment's first part, as for a real segment).
    if (msn <= lastComplete && this.#segments.some((s) => s.msn === msn && s.gap)) return true;
    return msn < last.msn || (msn === last.msn && part <= last.part);
  }

  /**
   * Render the playlist once it holds `msn`/`part` (blocking playlist reload). Without msn it answers at
   * once. Rejects with E_PLAYLIST_TOO_FAR_AHEAD for requests the window cannot reach soon.
   */
  async playlist(
    q: { msn?: number; part?: number; skip?: boolean },
    reports: () => readonly RenditionReport[],
    holdMs: number,
    signal?: AbortSignal,
  ): Promise<string> {
    if (q.msn !== undefined && !this.#ended) {
      const last = this.lastMsnPart();
      // "If the _HLS_msn is greater than the Media Sequence Number of the last Media Segment in the current
      // Playlist plus two, or if the _HLS_part exceeds the last Partial Segment in the current Playlist by
      // the Advance Part Limit, then the server SHOULD immediately return Bad Request."
      if (q.msn > last.msn + 2) {
        throw new AppError('E_PLAYLIST_TOO_FAR_AHEAD', `_HLS_msn=${q.msn} is more than two segments past the last one (${last.msn})`);
      }
      // Parts count across the segment boundary: part p of a later segment is at least p + 1 parts ahead.
      if (q.part !== undefined && ((q.msn === last.msn && q.part > last.part + 3) || (q.msn > last.msn && q.part >= 3))) {
        throw new AppError('E_PLAYLIST_TOO_FAR_AHEAD', `_HLS_msn=${q.msn}&_HLS_part=${q.part} is more than three parts past the last one (${last.msn}.${last.part})`);
      }
      if (!this.has(q.msn, q.part) && !this.#closed) {
        this.#checkHeldLimit();
        const hold = this.#live ? holdMs : Math.min(holdMs, IDLE_HOLD_PARTS * this.#opts.partTarget() * 1000);
        await this.#waitFor(q.msn, q.part, hold, signal);
      }
    }
    // Many viewers ask for the same playlist at the same moment (blocking reloads released together):
    // render once per change of the window (and of the other renditions' reports).
    const reportList = reports();
    const reportsKey = reportList.map((r) => `${r.uri} ${r.lastMsn} ${r.lastPart}`).join('|');
    const slot = q.skip ? 1 : 0;
    const cached = this.#rendered[slot];
    if (cached && cached.version === this.#version && cached.reports === reportsKey) return cached.text;
    const text = renderMediaPlaylist(this.state(reportList), { skip: q.skip });
    this.#rendered[slot] = { version: this.#version, reports: reportsKey, text };
    return text;
  }

  #waitFor(msn: number, part: number | undefined, holdMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClosedError('client request'));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#playlistWaiters.delete(waiter);
      };
      const waiter: PlaylistWaiter = { msn, part, resolve: () => (done(), resolve()) };
      // A request the stream does not satisfy in time is answered with what there is; the client asks again.
      const timer = setTimeout(waiter.resolve, holdMs);
      const onAbort = () => (done(), reject(new ClosedError('client request')));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#playlistWaiters.add(waiter);
    });
  }

  #checkHeldLimit(): void {
    if (this.heldRequests >= this.#opts.maxHeldRequests) {
      throw new AppError('E_LIMIT_EXCEEDED', `too many requests held on rendition ${this.name} (${this.#opts.maxHeldRequests})`);
    }
  }

  get heldRequests(): number {
    return this.#playlistWaiters.size + this.#fileWaiters.size;
  }

  #wake(): void {
    for (const w of this.#playlistWaiters) {
      if (this.#ended || this.has(w.msn, w.part)) w.resolve();
    }
  }

  /** Bytes and kind of a file by name; waits (up to holdMs) for the part announced by the preload hint. */
  async file(name: string, holdMs: number, signal?: AbortSignal): Promise<{ kind: FileKind; bytes: Uint8Array } | undefined> {
    const found = this.#lookup(name);
    if (found) return found;
    if (this.#ended || this.#closed || this.#session === 0 || name !== this.#hintUri()) return undefined;
    this.#checkHeldLimit();
    const bytes = await new Promise<Uint8Array | undefined>((resolve, reject) => {
      if (signal?.aborted) return reject(new ClosedError('client request'));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#fileWaiters.delete(waiter);
      };
      const waiter: FileWaiter = { name, resolve: (b) => (done(), resolve(b)) };
      const timer = setTimeout(() => waiter.resolve(undefined), holdMs);
      const onAbort = () => (done(), reject(new ClosedError('client request')));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#fileWaiters.add(waiter);
    });
    return bytes ? { kind: 'part', bytes } : undefined;
  }

  #lookup(name: string): { kind: FileKind; bytes: Uint8Array } | undefined {
    const f = this.#files.get(name);
    if (!f) return undefined;
    f.bytes ??= this.#segmentBytes(f.seg!);
    return { kind: f.kind, bytes: f.bytes };
  }

  #segmentBytes(seg: StoredSegment): Uint8Array {
    seg.bytes ??= concat(seg.parts.map((p) => p.bytes));
    return seg.bytes;
  }

  #releaseFiles(bytes: Uint8Array | undefined, match: (w: FileWaiter) => boolean): void {
    for (const w of this.#fileWaiters) if (match(w)) w.resolve(bytes);
  }

  /** Whether a segment in the window or still fetchable, or the current session, uses this init. */
  #referenced(initUri: string): boolean {
    if (initUri === this.#initUri || this.#pending?.initUri === initUri) return true;
    return this.#segments.some((s) => s.initUri === initUri) || this.#retired.some((s) => s.initUri === initUri);
  }

  #dropPartBytes(seg: StoredSegment): void {
    // The segment is still served whole: keep its bytes before the parts' go.
    const file = seg.gap ? undefined : this.#files.get(segmentUri(seg));
    if (file && file.bytes === undefined && seg.parts.some((p) => p.bytes.byteLength > 0)) file.bytes = this.#segmentBytes(seg);
    for (let i = 0; i < seg.parts.length; i++) {
      const p = seg.parts[i];
      if (p.bytes.byteLength > 0) {
        seg.parts[i] = { entry: p.entry, bytes: EMPTY };
        this.#files.delete(p.entry.uri);
      }
    }
  }
}

const EMPTY = new Uint8Array(0);

function segmentUri(s: { prefix: string; msn: number }): string {
  return `${s.prefix}_${s.msn}.m4s`;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}
