/**
 * The live window of one rendition, fed by its segmenter and read by the origin: names its files, keeps its
 * playlist (segment-window.ts) and its files (part-store.ts), renders the playlist once per change and
 * answers the requests held on it (holds.ts).
 */
import type { TrackSet } from '../core/index.js';
import { checkReachable, HeldRequests, IDLE_HOLD_PARTS } from './holds.js';
import { PartStore, segmentUri, type CompletedSegment, type FileKind, type StoredSegment } from './part-store.js';
import { BandwidthMeter } from './bandwidth.js';
import { SegmentWindow } from './segment-window.js';
import { renderMediaPlaylist, type MediaPlaylistState, type RenditionReport } from './playlist.js';
import type { PartOut, SegmenterSink } from './segmenter.js';
import { SeededFiles, type RenditionSeed } from './seed.js';

export type { CompletedSegment, FileKind } from './part-store.js';

/** What changed in a rendition's live window; `file` is the file the change produced (none for a gap or an end). */
export interface WindowChange {
  /**
   * 'added': the rendition joined its package; 'init', 'part', 'segment': a file (a segment also when it is a
   * gap, without a file); 'session-end' and 'end' answer the held playlist requests; 'close': server shutdown.
   */
  readonly kind: 'added' | 'init' | 'part' | 'segment' | 'session-end' | 'end' | 'close';
  readonly file?: { readonly name: string; readonly bytes: Uint8Array };
}

export interface WindowOptions {
  /** Complete segments kept in the playlist. */
  readonly windowSegments: number;
  /** Segments kept fetchable after they leave the playlist (players and CDNs a little behind). */
  readonly retainSegments: number;
  readonly segmentTargetMs: number;
  /** Advertised PART-TARGET in seconds, read when a playlist is rendered (fitted to frames after the first part). */
  readonly partTarget: () => number;
  /**
   * PART-HOLD-BACK in parts. RFC 8216bis 4.4.3.8: it "MUST be at least twice the Part Target Duration" and
   * "SHOULD be at least three times"; 3 unless the operator chose 2 (HLS_PART_HOLD_BACK_PARTS).
   */
  readonly partHoldBackParts: number;
  /** EXT-X-TARGETDURATION in seconds (fixed by the segmenter at the first segment). */
  readonly targetDuration: () => number;
  /** Requests (blocking playlist reloads and preload-hint parts) held at once; more are refused. */
  readonly maxHeldRequests: number;
  /** Told of every completed segment, in order (the recorder). Called synchronously: it must not block. */
  readonly onSegment?: (seg: CompletedSegment) => void;
  /** Told of every change after the window took it (the window watcher). Synchronous: it must not block. */
  readonly onChange?: (change: WindowChange) => void;
}

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
  readonly #files = new PartStore();
  readonly #window = new SegmentWindow();
  readonly #held: HeldRequests;
  /** Bumped on every change of the window; the last rendered playlist per skip flag is reused until then. */
  #version = 0;
  #rendered: Array<{ version: number; reports: string; text: string } | undefined> = [undefined, undefined];
  #partSeq = 0;
  #nextDiscontinuity = false;
  #ended = false;
  #closed = false;
  #live = false;
  tracks: TrackSet = {};
  readonly #bandwidth = new BandwidthMeter();
  /** The window continues one another node began (seed()): its files, read from there while listed. */
  #seeded: SeededFiles | undefined;
  /** The next session is the first here after a seeded window. */
  #seam = false;
  /** A segment was completed here (not only seeded). */
  #madeHere = false;

  constructor(name: string, runId: string, opts: WindowOptions) {
    this.name = name;
    this.#runId = runId;
    this.#opts = opts;
    this.#held = new HeldRequests(name, opts.maxHeldRequests);
  }

  get ended(): boolean {
    return this.#ended;
  }

  get hasSegments(): boolean {
    return this.#window.hasSegments;
  }

  /**
   * It can be offered in a multivariant playlist: it has segments, and (a seeded window) one made here, so
   * its codecs and bandwidth are known.
   */
  get offerable(): boolean {
    return this.#window.hasSegments && (this.#seeded === undefined || this.#madeHere);
  }

  /** A publish session is running (parts may come). */
  get live(): boolean {
    return this.#live;
  }

  /** The media sequence number the next segment gets. */
  get nextMsn(): number {
    return this.#window.nextMsn;
  }

  /**
   * A transcoded rung starts at the source's media sequence number `msn`. Before its first segment that
   * just sets the counter; later, the segments it has no media for are listed as EXT-X-GAP (`fill`
   * gives each one's duration and PDT). Returns false if `msn` is already behind the playlist.
   */
  alignTo(msn: number, fill: (msn: number) => { duration: number; programDateTime: number; discontinuity: boolean } | undefined): boolean {
    return this.#window.align(msn, fill, (g) => this.addGap(g.duration, g.programDateTime, g.discontinuity));
  }

  /** One EXT-X-GAP segment at the end of the playlist. */
  addGap(duration: number, programDateTime: number, discontinuity = false): void {
    if (this.#window.pending) return;
    this.#window.open({ prefix: this.#prefix, initUri: this.#initUri, discontinuity, programDateTime, parts: [], duration, gap: true });
    this.segmentEnd();
  }

  /**
   * Before the first session: continue the window of a run another node began (seed.ts). Its segments stay
   * listed, their files read through `file`; the session and part counters go on after its names, and the
   * first session here starts with EXT-X-DISCONTINUITY, as a publisher's return on one node does.
   */
  seed(seed: RenditionSeed, file: (name: string) => Promise<Uint8Array | undefined>): void {
    const seeded = new SeededFiles(this.#runId, seed, file);
    this.#window.seed(seed.segments, seed.discontinuitySequence, (uri) => uri.slice(0, uri.lastIndexOf('_')));
    this.#session = seeded.lastSession;
    this.#partSeq = seeded.nextPart;
    this.#seeded = seeded;
    this.#seam = true;
    this.#version++;
  }

  /** BANDWIDTH and AVERAGE-BANDWIDTH (bandwidth.ts). */
  get peakBandwidth(): number {
    return this.#bandwidth.peak;
  }

  get averageBandwidth(): number {
    return this.#bandwidth.average;
  }

  // ---- SegmenterSink ----

  init(bytes: Uint8Array, tracks: TrackSet, discontinuity: boolean): void {
    this.#session++;
    this.#prefix = `${this.#runId}s${this.#session}`;
    const previous = this.#initUri;
    this.#initUri = `${this.#prefix}_init.mp4`;
    this.#files.addInit(this.#initUri, bytes);
    this.#version++;
    // A session that never completed a segment (no keyframe, a codec change right away) leaves an init
    // nothing refers to: drop it so a publisher that keeps reconnecting cannot grow the map.
    if (previous && !this.#referenced(previous)) this.#files.delete(previous);
    this.tracks = tracks;
    // A seeded window's first session here follows another node's: a discontinuity, as every later one.
    this.#nextDiscontinuity = discontinuity || this.#seam;
    this.#seam = false;
    this.#live = true;
    // A hinted part of the previous session will never come.
    this.#held.releaseFiles(undefined, (name) => !name.startsWith(`${this.#prefix}_`));
    this.#opts.onChange?.({ kind: 'init', file: { name: this.#initUri, bytes } });
  }

  part(p: PartOut): void {
    let seg = this.#window.pending;
    if (!seg) {
      const fields = { prefix: this.#prefix, initUri: this.#initUri, discontinuity: this.#nextDiscontinuity };
      seg = this.#window.open({ ...fields, programDateTime: p.programDateTime, parts: [], duration: 0 });
      this.#nextDiscontinuity = false;
    }
    const uri = `${this.#prefix}_p${this.#partSeq++}.m4s`;
    seg.parts.push({ entry: { uri, duration: p.duration, independent: p.independent }, bytes: p.bytes });
    seg.duration += p.duration;
    this.#files.addPart(uri, p.bytes);
    this.#version++;
    this.#held.releaseFiles(p.bytes, (name) => name === uri);
    this.#wake();
    this.#opts.onChange?.({ kind: 'part', file: { name: uri, bytes: p.bytes } });
  }

  segmentEnd(programDateTime?: number): void {
    const seg = this.#window.complete();
    if (!seg) return;
    if (programDateTime !== undefined) seg.programDateTime = programDateTime;
    this.#madeHere = true;
    // The whole segment's bytes are made when first asked for (LL-HLS players load parts; most segments
    // are never fetched whole), or when its parts' bytes are released.
    if (!seg.gap) this.#files.addSegment(seg);
    this.#opts.onSegment?.(this.#files.completed(seg, this.tracks));
    this.#version++;
    this.#bandwidth.add(seg);
    this.#window.trim(this.#opts.windowSegments, this.#opts.retainSegments, (gone) => {
      this.#files.delete(segmentUri(gone));
      this.#files.dropPartBytes(gone);
      if (!this.#referenced(gone.initUri)) this.#files.delete(gone.initUri);
      this.#forgetSeeded(gone, true);
    });
    // Part bytes are needed only where parts are listed (within partWindow of the end) and a little
    // behind it for players that read an older playlist; older segments are served whole.
    const target = this.targetDuration();
    this.#window.olderThan(3 * target + target, (old) => {
      this.#files.dropPartBytes(old);
      this.#forgetSeeded(old, false);
    });
    this.#wake();
    const onChange = this.#opts.onChange;
    // The watcher copies the segment's bytes now: by the time it writes them its parts may be gone.
    if (onChange)
      onChange({ kind: 'segment', file: seg.gap ? undefined : { name: segmentUri(seg), bytes: this.#files.segmentBytes(seg) } });
  }

  /** The publish session ended; hints for its next part will not be answered with bytes. */
  sessionEnd(): void {
    this.#live = false;
    this.#version++;
    this.#held.releaseFiles(undefined, () => true);
    // Nothing comes until a publisher returns: held requests are answered now, and new ones are held
    // only briefly, so a player asks again rather than timing out (hls.js waits 3 parts at the least).
    this.#held.releasePlaylists();
    this.#opts.onChange?.({ kind: this.#ended ? 'end' : 'session-end' });
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
    this.#held.releaseFiles(undefined, () => true);
    this.#held.releasePlaylists();
    this.#opts.onChange?.({ kind: 'close' });
  }

  /** Shut down (close()): held requests are answered at once and no new ones are held. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---- queries ----

  lastMsnPart(): { msn: number; part: number } {
    return this.#window.lastMsnPart();
  }

  targetDuration(): number {
    const t = this.#opts.targetDuration();
    return this.#seeded ? Math.max(t, this.#seeded.targetDuration) : t;
  }

  state(reports: readonly RenditionReport[]): MediaPlaylistState {
    const target = this.targetDuration();
    const partTarget = this.#seeded?.partTarget ?? this.#opts.partTarget();
    return {
      version: 9,
      targetDuration: target,
      partTarget,
      partHoldBack: this.#opts.partHoldBackParts * partTarget,
      canSkipUntil: 6 * target,
      ...this.#window.state(),
      preloadHint: !this.#ended && !this.#closed && this.#session > 0 ? this.#hintUri() : undefined,
      renditionReports: reports,
      ended: this.#ended,
      partWindow: 3 * target,
    };
  }

  /** Whether the playlist holds part `part` of segment `msn` (or the whole segment when part is undefined). */
  has(msn: number, part: number | undefined): boolean {
    return this.#window.has(msn, part);
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
      checkReachable({ msn: q.msn, part: q.part }, this.lastMsnPart());
      if (!this.has(q.msn, q.part) && !this.#closed) {
        const hold = this.#live ? holdMs : Math.min(holdMs, IDLE_HOLD_PARTS * this.#opts.partTarget() * 1000);
        await this.#held.playlist(q.msn, q.part, hold, signal);
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

  get heldRequests(): number {
    return this.#held.size;
  }

  #wake(): void {
    this.#held.wake((msn, part) => this.#ended || this.has(msn, part));
  }

  /** Bytes and kind of a file by name; waits (up to holdMs) for the part announced by the preload hint. */
  async file(name: string, holdMs: number, signal?: AbortSignal): Promise<{ kind: FileKind; bytes: Uint8Array } | undefined> {
    const found = this.#files.lookup(name);
    if (found) return found;
    // Only a seeded window waits here: a request for the hinted part must be held at once (counted, limited).
    const seeded = this.#seeded && (await this.#seeded.read(name));
    if (seeded) return seeded;
    if (this.#ended || this.#closed || this.#session === 0 || name !== this.#hintUri()) return undefined;
    const bytes = await this.#held.file(name, holdMs, signal);
    return bytes ? { kind: 'part', bytes } : undefined;
  }

  /** A seeded segment left the window (`whole`) or stopped listing its parts: its files are no longer read. */
  #forgetSeeded(seg: StoredSegment, whole: boolean): void {
    const parts = seg.parts.map((p) => p.entry.uri);
    this.#seeded?.forget(
      parts,
      whole ? { segment: segmentUri(seg), init: this.#window.uses(seg.initUri) ? undefined : seg.initUri } : undefined,
    );
  }

  /** Whether a segment in the window or still fetchable, or the current session, uses this init. */
  #referenced(initUri: string): boolean {
    return initUri === this.#initUri || this.#window.uses(initUri);
  }
}
