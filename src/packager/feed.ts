/**
 * A rendition feed: one rendition as its stream package runs it, a hub reader's events through its
 * segmenter into its live window, and what the segmenter reports counted on the way.
 */
import type { Logger } from '../core/index.js';
import type { Reader } from '../stream/index.js';
import type { Alignment, SegmentStartInfo } from './alignment.js';
import type { LiveRendition } from './rendition.js';
import type { PartOut, Segmenter, SegmenterSink } from './segmenter.js';

/** What every stream package counts, summed over the packager (the metrics). */
export interface PackagerCounters {
  parts: number;
  segments: number;
  oversizedParts: number;
  forcedCuts: number;
  errors: number;
  /** Rung segments listed as EXT-X-GAP (the rung was restarting or dropped). */
  gapSegments: number;
  /** Rung segments that could not take the source's media sequence number. */
  unalignedSegments: number;
}

/** One rendition as it is packaged: its reader feeds its segmenter, which feeds its live window. */
export interface RenditionFeed {
  readonly rendition: LiveRendition;
  readonly segmenter: Segmenter;
  /** A transcoded rung, which follows the source's segments (alignment.ts); false for the source. */
  readonly follower: boolean;
  reader: Reader | undefined;
  readonly addedAt: number;
  /** A rung whose stream ended (dropped, or its transcoder gave up): nothing to wait for. */
  retired: boolean;
  /** The pump whose segmenter.push() is under way: the counters count what pushes cause (as they always have). */
  readonly pushing: { pump: Pump | undefined };
}

/** One reader's pass over its events. */
export interface Pump {
  readonly log: Logger;
  /** The warning for a segment cut without a keyframe was logged this session. */
  forcedLogged: boolean;
}

/** What a feed's sink works with besides its rendition. */
export interface FeedSinkDeps {
  /** A transcoded rung, which follows the source's segments; false for the source. */
  readonly follower: boolean;
  readonly alignment: Alignment;
  readonly counters: PackagerCounters;
  readonly pushing: RenditionFeed['pushing'];
  /** A segment or part came: requests waiting for the stream's start may be answered. */
  readonly wake: () => void;
}

/** What a rendition's segmenter tells: its output goes to the live window; what happened is counted. */
export function feedSink(rendition: LiveRendition, deps: FeedSinkDeps): SegmenterSink {
  const { follower, alignment, counters, pushing, wake } = deps;
  return {
    init: rendition.init.bind(rendition),
    part: (p: PartOut) => {
      counters.parts++;
      rendition.part(p);
      if (rendition.hasSegments) wake();
    },
    segmentEnd: (programDateTime: number) => {
      counters.segments++;
      rendition.segmentEnd(programDateTime);
      wake();
    },
    segmentStart: (info: SegmentStartInfo) => {
      if (follower) alignment.rungSegmentStart(rendition, info.msn);
      else alignment.sourceSegmentStart(rendition.nextMsn, info);
    },
    // An oversized last part flushed at a session's end is not counted (it never was): only what pushes cause.
    oversizedPart: () => {
      if (pushing.pump) counters.oversizedParts++;
    },
    unalignedCut: () => {
      if (pushing.pump) counters.unalignedSegments++;
    },
    forcedCut: (targetDuration: number) => {
      const pump = pushing.pump;
      if (!pump) return;
      counters.forcedCuts++;
      if (pump.forcedLogged) return;
      pump.forcedLogged = true;
      pump.log.warn(
        { targetDuration },
        'no keyframe within the target duration: segment cut without one (set the encoder keyframe interval to 1-2 s)',
      );
    },
  };
}
