/** WHIP signaling for WebRTC ingest (RFC 9725): HTTP routes over the WebRTC ingest's sessions. */
export { registerWhipRoutes, iceServerLinks } from './whip.js';
export type { WhipRoutesOptions } from './whip.js';
