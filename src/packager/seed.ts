/**
 * A seed: the live window of a stream run that another node began, which a new package continues (the
 * publisher came back on this node). Built outside the packager (the cluster reads it from the shared
 * store); the packager only takes it: the run id, each rendition's complete segments and numbers, and where
 * to read the files of those segments, which this node never made.
 */
import type { SegmentEntry } from './playlist.js';

export interface RenditionSeed {
  /** EXT-X-DISCONTINUITY-SEQUENCE of the stored playlist. */
  readonly discontinuitySequence: number;
  /** The complete segments the stored playlist lists, oldest first. */
  readonly segments: readonly SegmentEntry[];
  /** The part its EXT-X-PRELOAD-HINT named (the next part number of the run). */
  readonly preloadHint?: string;
  /** The stored playlist's EXT-X-TARGETDURATION and PART-TARGET (the run's: they must not change). */
  readonly targetDuration: number;
  readonly partTarget: number;
}

export interface StreamSeed {
  readonly runId: string;
  readonly renditions: ReadonlyMap<string, RenditionSeed>;
  /** A file of the seeded window (init, part or segment), read from where the other node left it. */
  readonly file: (rendition: string, name: string) => Promise<Uint8Array | undefined>;
}

/** Finds the window a new run of `streamId` continues; undefined: a fresh run, as without a seed. */
export type SeedSource = (streamId: string) => Promise<StreamSeed | undefined>;

/** The session number in a file name of run `runId` (`<run>s<session>_...`), or 0. */
export function sessionOf(runId: string, name: string): number {
  const m = new RegExp(`^${runId}s(\\d+)_`).exec(name);
  return m ? Number(m[1]) : 0;
}

/** The part number in a part's name (`..._p<n>.m4s`), or -1. */
export function partNumberOf(name: string): number {
  const m = /_p(\d+)\.m4s$/.exec(name);
  return m ? Number(m[1]) : -1;
}

/**
 * A rendition's seeded window on this node: the names of the files another node made, read from there while
 * the window lists them, and where the rendition's counters go on (the next session and part numbers).
 */
export class SeededFiles {
  readonly #names = new Set<string>();
  readonly #read: (name: string) => Promise<Uint8Array | undefined>;
  /** The last session number the seeded window used. */
  readonly lastSession: number;
  /** The part number the next part made here gets. */
  readonly nextPart: number;
  /** The seeded run's EXT-X-TARGETDURATION and PART-TARGET: they must not change. */
  readonly targetDuration: number;
  readonly partTarget: number;

  constructor(runId: string, seed: RenditionSeed, read: (name: string) => Promise<Uint8Array | undefined>) {
    this.#read = read;
    let session = 0;
    let nextPart = partNumberOf(seed.preloadHint ?? '');
    for (const seg of seed.segments) {
      if (!seg.gap) this.#names.add(seg.uri);
      this.#names.add(seg.initUri);
      session = Math.max(session, sessionOf(runId, seg.initUri));
      for (const p of seg.parts) {
        this.#names.add(p.uri);
        nextPart = Math.max(nextPart, partNumberOf(p.uri) + 1);
      }
    }
    this.lastSession = session;
    this.nextPart = Math.max(nextPart, 0);
    this.targetDuration = seed.targetDuration;
    this.partTarget = seed.partTarget;
  }

  /** A seeded file's bytes and kind, or undefined when it is not one (or the other node's copy is gone). */
  async read(name: string): Promise<{ kind: 'init' | 'part' | 'segment'; bytes: Uint8Array } | undefined> {
    if (!this.#names.has(name)) return undefined;
    const bytes = await this.#read(name);
    if (!bytes) return undefined;
    return { kind: name.endsWith('_init.mp4') ? 'init' : partNumberOf(name) >= 0 ? 'part' : 'segment', bytes };
  }

  /**
   * A seeded segment stopped listing its parts (`parts`), or left the window too (`segment`, and its init
   * unless the window still uses it): those files are no longer read.
   */
  forget(parts: readonly string[], gone?: { readonly segment: string; readonly init: string | undefined }): void {
    for (const p of parts) this.#names.delete(p);
    if (!gone) return;
    this.#names.delete(gone.segment);
    if (gone.init !== undefined) this.#names.delete(gone.init);
  }
}
