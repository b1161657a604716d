/**
 * The part store: every fetchable file of a rendition's live window by name (init segments, parts near
 * the live edge, segments in and just behind the window). A segment's whole bytes are made when first
 * asked for, or when its parts' bytes are released.
 */
import type { TrackSet } from '../core/index.js';
import type { PartEntry } from './playlist.js';

export type FileKind = 'init' | 'part' | 'segment';

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

export interface StoredPart {
  readonly entry: PartEntry;
  readonly bytes: Uint8Array;
}

export interface StoredSegment {
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

const EMPTY = new Uint8Array(0);

export function segmentUri(s: { prefix: string; msn: number }): string {
  return `${s.prefix}_${s.msn}.m4s`;
}

export class PartStore {
  readonly #files = new Map<string, { kind: FileKind; bytes: Uint8Array | undefined; seg?: StoredSegment }>();

  addInit(uri: string, bytes: Uint8Array): void {
    this.#files.set(uri, { kind: 'init', bytes });
  }

  addPart(uri: string, bytes: Uint8Array): void {
    this.#files.set(uri, { kind: 'part', bytes });
  }

  /** A completed segment, served whole under its name (its bytes made when first asked for). */
  addSegment(seg: StoredSegment): void {
    this.#files.set(segmentUri(seg), { kind: 'segment', bytes: undefined, seg });
  }

  delete(uri: string): void {
    this.#files.delete(uri);
  }

  /** The bytes of an init segment (or part) still stored. */
  bytes(uri: string): Uint8Array | undefined {
    return this.#files.get(uri)?.bytes;
  }

  lookup(name: string): { kind: FileKind; bytes: Uint8Array } | undefined {
    const f = this.#files.get(name);
    if (!f) return undefined;
    f.bytes ??= this.segmentBytes(f.seg!);
    return { kind: f.kind, bytes: f.bytes };
  }

  /** The segment's parts joined, made once and shared with whoever serves or stores them. */
  segmentBytes(seg: StoredSegment): Uint8Array {
    seg.bytes ??= Buffer.concat(seg.parts.map((p) => p.bytes));
    return seg.bytes;
  }

  /** What the recorder is told of a completed segment. */
  completed(seg: StoredSegment, tracks: TrackSet): CompletedSegment {
    return {
      msn: seg.msn,
      uri: segmentUri(seg),
      initUri: seg.initUri,
      init: this.bytes(seg.initUri),
      parts: seg.parts.map((p) => p.bytes),
      bytes: () => this.segmentBytes(seg),
      duration: seg.duration,
      discontinuity: seg.discontinuity,
      gap: seg.gap === true,
      independent: seg.parts[0]?.entry.independent ?? false,
      programDateTime: seg.programDateTime,
      tracks,
    };
  }

  /** The segment's parts are no longer served: their bytes go (the segment keeps its whole bytes first). */
  dropPartBytes(seg: StoredSegment): void {
    // The segment is still served whole: keep its bytes before the parts' go.
    const file = seg.gap ? undefined : this.#files.get(segmentUri(seg));
    if (file && file.bytes === undefined && seg.parts.some((p) => p.bytes.byteLength > 0)) file.bytes = this.segmentBytes(seg);
    for (let i = 0; i < seg.parts.length; i++) {
      const p = seg.parts[i];
      if (p.bytes.byteLength > 0) {
        seg.parts[i] = { entry: p.entry, bytes: EMPTY };
        this.#files.delete(p.entry.uri);
      }
    }
  }
}
