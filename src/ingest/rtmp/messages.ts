import { encodeAmf0, isAmfObject, type AmfObject, type AmfValue } from '../../flv/index.js';
import { MessageType, type RtmpMessage } from './chunk.js';

/** Chunk stream ids we send on: protocol control on 2 (5.4), commands on 3, stream status on 5. */
export const OutCsid = { control: 2, command: 3, stream: 5 } as const;

/** User Control event types (7.1.7). */
export const UserControl = {
  streamBegin: 0,
  streamEof: 1,
  streamDry: 2,
  setBufferLength: 3,
  streamIsRecorded: 4,
  pingRequest: 6,
  pingResponse: 7,
} as const;

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function control(type: number, payload: Buffer): RtmpMessage {
  return { csid: OutCsid.control, type, streamId: 0, timestamp: 0, payload };
}

export function setChunkSizeMessage(size: number): RtmpMessage {
  return control(MessageType.setChunkSize, u32(size));
}

export function windowAckSizeMessage(size: number): RtmpMessage {
  return control(MessageType.windowAckSize, u32(size));
}

export function acknowledgementMessage(sequence: number): RtmpMessage {
  return control(MessageType.acknowledgement, u32(sequence));
}

/** Limit type 2 = dynamic (5.4.5). */
export function setPeerBandwidthMessage(size: number, limitType = 2): RtmpMessage {
  return control(MessageType.setPeerBandwidth, Buffer.concat([u32(size), Buffer.of(limitType)]));
}

export function userControlMessage(event: number, value: number): RtmpMessage {
  const payload = Buffer.alloc(6);
  payload.writeUInt16BE(event, 0);
  payload.writeUInt32BE(value >>> 0, 2);
  return control(MessageType.userControl, payload);
}

export function commandMessage(values: AmfValue[], streamId = 0, csid: number = OutCsid.command): RtmpMessage {
  return { csid, type: MessageType.commandAmf0, streamId, timestamp: 0, payload: encodeAmf0(...values) };
}

export interface StatusInfo extends AmfObject {
  level: 'status' | 'error' | 'warning';
  code: string;
  description: string;
}

/** `onStatus(0, null, info)` on a message stream (7.2.2). */
export function onStatusMessage(streamId: number, info: StatusInfo): RtmpMessage {
  return commandMessage(['onStatus', 0, null, info], streamId, OutCsid.stream);
}

/** `_result(txn, null, value)`, the reply to releaseStream / createStream. */
export function resultMessage(txn: number, value: AmfValue): RtmpMessage {
  return commandMessage(['_result', txn, null, value]);
}

export function onFCPublishMessage(): RtmpMessage {
  return commandMessage(['onFCPublish', 0, null, { level: 'status', code: 'NetStream.Publish.Start', description: 'FCPublish' }]);
}

/** The FourCCs we take from Enhanced RTMP clients that list theirs in connect (`fourCcList`). */
export const FOURCC_LIST = ['avc1', 'hvc1', 'av01'] as const;

/**
 * What a server says to a connect it accepts: Window Acknowledgement Size, Set Peer Bandwidth, our Set
 * Chunk Size, then `_result` with the server properties and NetConnection.Connect.Success.
 */
export function connectReplies(txn: number, cmd: AmfObject, chunkSize: number, window: number): RtmpMessage[] {
  const props: AmfObject = { fmsVer: 'FMS/3,5,7,7009', capabilities: 31, mode: 1 };
  // Enhanced RTMP: a client that lists the FourCCs it can send learns the ones we take.
  if (cmd.fourCcList !== undefined) props.fourCcList = [...FOURCC_LIST];
  const info = { level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: 0 };
  return [
    windowAckSizeMessage(window),
    setPeerBandwidthMessage(window),
    setChunkSizeMessage(chunkSize),
    commandMessage(['_result', txn, props, info]),
  ];
}

export function connectRejectedMessage(txn: number, description: string): RtmpMessage {
  return commandMessage(['_error', txn, null, { level: 'error', code: 'NetConnection.Connect.Rejected', description }]);
}

/** "rtmp://host/live/key" connects to app "live"; some clients append "/" or a "?query" (tokens). */
export function appName(cmd: AmfObject): string {
  return typeof cmd.app === 'string' ? cmd.app.split('?')[0].replace(/^\/+|\/+$/g, '') : '';
}

/** The publish name is the stream key; OBS and others may append "?param=...". */
export function streamKey(name: AmfValue): string {
  return typeof name === 'string' ? name.split('?')[0] : '';
}

/** The metadata object of `@setDataFrame onMetaData {...}` (FFmpeg, OBS) or `onMetaData {...}` (others). */
export function metadataOf(values: AmfValue[]): AmfObject | undefined {
  const [first, second, third] = values;
  const meta = first === '@setDataFrame' && second === 'onMetaData' ? third : first === 'onMetaData' ? second : undefined;
  return isAmfObject(meta) ? meta : undefined;
}
