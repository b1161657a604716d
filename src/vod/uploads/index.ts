/**
 * What is made from an uploaded file: the upload itself over tus (intake.ts), the job queue's worker
 * (jobs-worker.ts), and the packaging of one file (package-file.ts: probe.ts, then one FFmpeg run of the
 * ladder in file-ladder.ts, then the packager in file mode). Knows nothing of live recordings.
 */
export { Uploads, MAX_FILENAME_LENGTH, MEDIA_EXTENSIONS } from './intake.js';
export type { InitiateUpload } from './intake.js';
export { VodWorker } from './jobs-worker.js';
