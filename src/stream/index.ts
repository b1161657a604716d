export { StreamHub } from './hub.js';
export type {
  HubOptions,
  HubEvents,
  SessionStats,
  IngestProtocol,
  LiveStatus,
  PublishInfo,
  Publisher,
  SessionEnd,
  StreamState,
} from './hub.js';
export { Reader } from './reader.js';
export { parseRungStreamId, rungStreamId } from './rungs.js';
export type { RungRef, RungStreamId } from './rungs.js';
export type { StreamEvent } from './reader.js';
export { TimestampRepair } from './timestamps.js';
