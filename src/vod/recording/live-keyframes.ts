/**
 * The newest keyframe of a live stream as a tiny fMP4: the init segment of its lowest video rendition
 * followed by the newest part (or, once part bytes are dropped, the whole segment) that starts with a
 * keyframe. FFmpeg decodes its first frame into a thumbnail.
 *
 * Read through the packager's public API only, by way of the narrow views below (LivePackager satisfies
 * them structurally): this module needs nothing of the packager at run time.
 */
import type { TrackSet } from '../../core/index.js';

/** One playlist entry of a part, as the live rendition's state lists it. */
interface PartView {
  readonly uri: string;
  readonly independent: boolean;
}

/** What the thumbnailer reads of one live rendition (packager/LiveRendition). */
export interface LiveRenditionView {
  readonly name: string;
  readonly tracks: TrackSet;
  /** A publish session is running. */
  readonly live: boolean;
  readonly ended: boolean;
  state(reports: readonly never[]): {
    readonly segments: readonly {
      readonly uri: string;
      readonly initUri: string;
      readonly parts: readonly PartView[];
      readonly gap?: boolean;
    }[];
    readonly pending?: { readonly initUri: string; readonly parts: readonly PartView[] };
  };
  /** A file of the live window by name; holdMs 0: never waits. */
  file(name: string, holdMs: number): Promise<{ readonly bytes: Uint8Array } | undefined>;
}

/** What the thumbnailer reads of the live packager (packager/LivePackager). */
export interface LivePackagesView {
  get(streamId: string): { readonly renditions: readonly LiveRenditionView[] } | undefined;
}

/** A keyframe to decode: `init` then `media` make one fMP4 whose first video frame is a keyframe. */
export interface KeyframeClip {
  /** Names the media in the live window: the same id means the same keyframe as last time. */
  readonly id: string;
  readonly rendition: string;
  readonly init: Uint8Array;
  readonly media: Uint8Array;
}

/**
 * Where the thumbnailer gets keyframes from. `keyframesFromPackager` reads them through today's public
 * packager API; a packager accessor for the latest independent part could stand in for it.
 */
export interface LiveKeyframes {
  /** The newest keyframe of the stream; undefined while it has none (no video, not packaged yet, ended). */
  latest(streamId: string): Promise<KeyframeClip | undefined>;
}

/** Segments looked back through for a keyframe (newest first): a keyframe is at most a GOP away. */
const LOOK_BACK_SEGMENTS = 3;

/**
 * The rendition a thumbnail is cut from: the lowest-resolution running rendition with video (the lowest
 * transcoded rung of an ABR stream, the source of a passthrough one), the cheapest to decode.
 */
export function pickRendition<R extends Pick<LiveRenditionView, 'tracks' | 'live' | 'ended'>>(renditions: readonly R[]): R | undefined {
  let best: R | undefined;
  for (const r of renditions) {
    const v = r.tracks.video;
    if (!v || !r.live || r.ended) continue;
    if (!best || v.width * v.height < best.tracks.video!.width * best.tracks.video!.height) best = r;
  }
  return best;
}

export function keyframesFromPackager(packages: LivePackagesView): LiveKeyframes {
  return {
    async latest(streamId) {
      const r = pickRendition(packages.get(streamId)?.renditions ?? []);
      return r ? latestKeyframe(r) : undefined;
    },
  };
}

/** The newest independent part of the rendition (pending segment first), with its init. */
async function latestKeyframe(r: LiveRenditionView): Promise<KeyframeClip | undefined> {
  const st = r.state([]);
  const runs: Array<{ initUri: string; parts: readonly PartView[]; uri?: string }> = [];
  if (st.pending) runs.push(st.pending);
  for (let i = st.segments.length - 1; i >= 0 && runs.length <= LOOK_BACK_SEGMENTS; i--) if (!st.segments[i].gap) runs.push(st.segments[i]);
  for (const seg of runs) {
    for (let i = seg.parts.length - 1; i >= 0; i--) {
      const part = seg.parts[i];
      if (!part.independent) continue;
      // Parts far from the live edge have had their bytes dropped; the whole segment still starts on this keyframe.
      let media = await r.file(part.uri, 0);
      let id = part.uri;
      if (!media && i === 0 && seg.uri) {
        media = await r.file(seg.uri, 0);
        id = seg.uri;
      }
      if (!media) continue;
      const init = await r.file(seg.initUri, 0);
      if (!init) return undefined;
      return { id, rendition: r.name, init: init.bytes, media: media.bytes };
    }
  }
  return undefined;
}
