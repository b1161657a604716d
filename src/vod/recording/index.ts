/**
 * What is made from a live stream while it runs: its recording, which becomes a VOD asset when the run
 * ends (recorder.ts), and its current thumbnail (live-thumbnails.ts, from the newest keyframe the live
 * packager holds: live-keyframes.ts). Both read the live packager; neither knows of uploads.
 */
export { Recorder } from './recorder.js';
export { LiveThumbnails } from './live-thumbnails.js';
export type { LiveThumbnail } from './live-thumbnails.js';
export { keyframesFromPackager } from './live-keyframes.js';
