/**
 * The packager's public face: what other modules use. Tests reach the internals through their own files.
 */
export { renderMultivariantPlaylist, renderVodPlaylist } from './playlist.js';
export { Segmenter } from './segmenter.js';
export type { PartOut, SegmenterSink } from './segmenter.js';
export { LivePackager } from './live-packager.js';
export type { LivePackagerOptions } from './live-packager.js';
export type { PackagerCounters } from './feed.js';
export type { PackageObserver } from './run-observer.js';
export type { CompletedSegment } from './rendition.js';
export { LiveOrigin } from './origin.js';
export type { OriginResponse } from './origin.js';
