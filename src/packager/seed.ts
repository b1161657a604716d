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
