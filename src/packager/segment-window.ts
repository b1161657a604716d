/**
 * The segment window: the segments of one rendition's media playlist (the complete ones it lists, the
 * retired ones still fetchable just behind it, the one in progress), with the media sequence and
 * discontinuity sequence numbers they carry.
 */
import { segmentUri, type StoredSegment } from './part-store.js';
import type { MediaPlaylistState, SegmentEntry } from './playlist.js';

export class SegmentWindow {
  #segments: StoredSegment[] = [];
  #retired: StoredSegment[] = [];
  #pending: StoredSegment | undefined;
  #nextMsn = 0;
  #discontinuitySeq = 0;

  /** The segment in progress (parts are added to it). */
  get pending(): StoredSegment | undefined {
    return this.#pending;
  }

  get hasSegments(): boolean {
    return this.#segments.length > 0;
  }

  /** The media sequence number the next segment gets. */
  get nextMsn(): number {
    return this.#pending ? this.#pending.msn + 1 : this.#nextMsn;
  }

  /**
   * The next segment is to be `msn`: before the first segment that just sets the counter; later `addGap`
   * lists each segment missing before it (`fill` gives its duration and PDT). Returns false if `msn` is
   * already behind the playlist.
   */
  align<G>(msn: number, fill: (msn: number) => G | undefined, addGap: (gap: G) => void): boolean {
    if (this.#pending) return msn === this.#pending.msn + 1;
    if (this.#segments.length === 0 && this.#retired.length === 0) {
      this.#nextMsn = msn;
      return true;
    }
    while (this.#nextMsn < msn) {
      const g = fill(this.#nextMsn);
      if (!g) break;
      addGap(g);
    }
    return this.#nextMsn === msn;
  }

  /**
   * Before anything else: the window continues one another node began (seed.ts). Its segments are listed
   * as they were, with no bytes here (`prefixOf` gives each one's file prefix); the numbers go on after them.
   */
  seed(segments: readonly SegmentEntry[], discontinuitySequence: number, prefixOf: (uri: string) => string): void {
    this.#segments = segments.map((s) => ({
      msn: s.msn,
      prefix: prefixOf(s.uri),
      initUri: s.initUri,
      discontinuity: s.discontinuity,
      programDateTime: s.programDateTime,
      parts: s.parts.map((entry) => ({ entry, bytes: new Uint8Array(0) })),
      duration: s.duration,
      gap: s.gap,
    }));
    this.#discontinuitySeq = discontinuitySequence;
    this.#nextMsn = (segments.at(-1)?.msn ?? -1) + 1;
  }

  /** A new segment in progress, with the next media sequence number. */
  open(seg: Omit<StoredSegment, 'msn'>): StoredSegment {
    this.#pending = { msn: this.#nextMsn++, ...seg };
    return this.#pending;
  }

  /** The segment in progress is complete: it is listed last. */
  complete(): StoredSegment | undefined {
    const seg = this.#pending;
    if (!seg) return undefined;
    this.#pending = undefined;
    this.#segments.push(seg);
    return seg;
  }

  /**
   * Keeps `windowSegments` listed and `retainSegments` fetchable behind them; `gone` is told of each
   * segment that leaves, in order.
   */
  trim(windowSegments: number, retainSegments: number, gone: (seg: StoredSegment) => void): void {
    while (this.#segments.length > windowSegments) {
      const old = this.#segments.shift()!;
      if (old.discontinuity) this.#discontinuitySeq++;
      this.#retired.push(old);
    }
    while (this.#retired.length > retainSegments) gone(this.#retired.shift()!);
  }

  /** The listed segments that start more than `seconds` before the end, newest first. */
  olderThan(seconds: number, each: (seg: StoredSegment) => void): void {
    let tail = 0;
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      if (tail > seconds) each(this.#segments[i]);
      tail += this.#segments[i].duration;
    }
  }

  /** Whether a segment listed, still fetchable or in progress uses this init segment. */
  uses(initUri: string): boolean {
    if (this.#pending?.initUri === initUri) return true;
    return this.#segments.some((s) => s.initUri === initUri) || this.#retired.some((s) => s.initUri === initUri);
  }

  lastMsnPart(): { msn: number; part: number } {
    if (this.#pending && this.#pending.parts.length > 0) return { msn: this.#pending.msn, part: this.#pending.parts.length - 1 };
    const last = this.#segments.at(-1);
    return last ? { msn: last.msn, part: last.parts.length - 1 } : { msn: -1, part: -1 };
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

  /** The segments' part of a media playlist's state. */
  state(): Pick<MediaPlaylistState, 'discontinuitySequence' | 'segments' | 'pending'> {
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
      discontinuitySequence: this.#discontinuitySeq,
      segments: this.#segments.map(toEntry),
      pending: pending
        ? {
            msn: pending.msn,
            parts: pending.parts.map((p) => p.entry),
            programDateTime: pending.programDateTime,
            discontinuity: pending.discontinuity,
            initUri: pending.initUri,
          }
        : undefined,
    };
  }
}
