/**
 * The packager's public face: what other modules use. Tests reach the internals through their own files.
 */
export { partsListed, renderMediaPlaylist, renderMultivariantPlaylist, renderVodPlaylist } from './playlist.js';
export type { MediaPlaylistState, PartEntry, RenditionReport, SegmentEntry } from './playlist.js';
export { checkReachable, IDLE_HOLD_PARTS } from './holds.js';
export { Segmenter } from './segmenter.js';
export type { PartOut, SegmenterSink } from './segmenter.js';
export { LivePackager } from './live-packager.js';
export type { LivePackagerOptions } from './live-packager.js';
export type { PackagerCounters } from './feed.js';
export type { PackageObserver, WatchedPackage, WindowWatcher } from './run-observer.js';
export type { WindowChange } from './rendition.js';
export type { CompletedSegment, LiveRendition } from './rendition.js';
export type { RenditionSeed, SeedSource, StreamSeed } from './seed.js';
export { LiveOrigin } from './origin.js';
export type { OriginOptions, OriginPackage, OriginPackages, OriginRendition, OriginResponse } from './origin.js';
