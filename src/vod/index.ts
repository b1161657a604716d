/**
 * VOD: videos in storage that play at /vod/<id>/..., made in two ways, one folder each:
 * - recording/: a live run, stored as it is packaged, becomes a VOD when it ends (and live thumbnails);
 * - uploads/: an uploaded file, taken in over tus and packaged by a worker's job.
 * The two import nothing of each other; what they share is the asset itself (assets.ts: its keys,
 * playlists, poster, cache headers and title limits), which api/ reads to serve it. That shared asset is
 * why they stay one module rather than two beside a third. Other modules import only this file.
 */
export { assetKey, contentTypeOf, videoPrefix, MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH } from './assets.js';
export { Recorder, LiveThumbnails, keyframesFromPackager } from './recording/index.js';
export type { LiveThumbnail } from './recording/index.js';
export { Uploads, VodWorker, MAX_FILENAME_LENGTH, MEDIA_EXTENSIONS } from './uploads/index.js';
export type { InitiateUpload } from './uploads/index.js';
