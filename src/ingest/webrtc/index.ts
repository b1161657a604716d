/**
 * WebRTC ingest: WHIP publishers (OBS 30+, browsers, GStreamer) send H.264 and Opus over DTLS-SRTP
 * (libdatachannel through node-datachannel); frames go to the hub like RTMP's, audio transcoded to AAC.
 * Signaling (the HTTP side of WHIP) lives in src/signaling and uses only this file.
 */
export { WebRtcIngest } from './ingest.js';
export type { CreatedSession, PatchOutcome } from './ingest.js';
export { DEFAULT_AUTH_FAILURES, RetryLaterError } from './admission.js';
export type { Admission } from './admission.js';
export { DEFAULT_WEBRTC_LIMITS } from './types.js';
export type {
  StreamStats,
  WebRtcAuthResult,
  WebRtcCounters,
  WebRtcIngestOptions,
  WebRtcLimits,
  WebRtcNetwork,
  WhipSessionStats,
} from './types.js';
export { MAX_SDP_BYTES } from './sdp.js';
