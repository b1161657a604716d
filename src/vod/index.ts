export { Recorder, describeRendition } from './recorder.js';
export type { LiveRunInfo, RecorderCounters, RecorderOptions } from './recorder.js';
export {
  assetKey,
  contentTypeOf,
  makePoster,
  publishVod,
  videoPrefix,
  CACHE_MEDIA,
  CACHE_PLAYLIST,
  CONTENT_TYPES,
  MASTER_PLAYLIST,
  MEDIA_PLAYLIST,
  POSTER,
} from './assets.js';
export type { PublishedVod, VodRendition } from './assets.js';
export { Uploads, checkInitiate, MAX_DESCRIPTION_LENGTH, MAX_FILENAME_LENGTH, MAX_TITLE_LENGTH, MEDIA_EXTENSIONS, PACKAGE_UPLOAD } from './uploads.js';
export type { InitiateUpload, LocalUpload, PackageUploadPayload, UploadSource, UploadsOptions } from './uploads.js';
export { VodWorker } from './jobs-worker.js';
export type { VodWorkerCounters, VodWorkerOptions } from './jobs-worker.js';
export { packageFile } from './package-file.js';
export type { PackageFileOptions, PackagedFile } from './package-file.js';
export { BadMediaError, isBadMedia, probeFile } from './probe.js';
export type { ProbeResult } from './probe.js';
export { execTool } from './ffmpeg-run.js';
export { LiveThumbnails, cutWithFfmpeg, DEFAULT_LIVE_THUMBNAIL_INTERVAL_MS, ThumbnailTooLargeError } from './live-thumbnails.js';
export type { LiveStreamEvents, LiveThumbnail, LiveThumbnailCounters, LiveThumbnailsOptions, ThumbnailCutter } from './live-thumbnails.js';
export { keyframesFromPackager, pickRendition } from './live-keyframes.js';
export type { KeyframeClip, LiveKeyframes, LivePackagesView, LiveRenditionView } from './live-keyframes.js';
