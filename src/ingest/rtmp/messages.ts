import { encodeAmf0, type AmfObject, type AmfValue } from './amf0.js';
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
