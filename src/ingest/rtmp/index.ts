/** RTMP / RTMPS ingest: publishers push FLV-in-RTMP (legacy and Enhanced RTMP), frames go to the hub. */
export { RtmpServer } from './server.js';
export { DEFAULT_RTMP_LIMITS } from './types.js';
export type { RtmpAuthResult, RtmpCounters, RtmpLimits, RtmpServerOptions } from './types.js';
