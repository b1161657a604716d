import { AppError } from '../../core/index.js';

/** RTMP message type ids (RTMP 1.0 spec, sections 5.4 and 7.1). */
export const MessageType = {
  setChunkSize: 1,
  abort: 2,
  acknowledgement: 3,
  userControl: 4,
  windowAckSize: 5,
  setPeerBandwidth: 6,
  audio: 8,
  video: 9,
  dataAmf3: 15,
  sharedObjectAmf3: 16,
  commandAmf3: 17,
  dataAmf0: 18,
  sharedObjectAmf0: 19,
  commandAmf0: 20,
  aggregate: 22,
} as const;

export interface RtmpMessage {
  readonly csid: number;
  readonly type: number;
  readonly streamId: number;
  /** 32-bit millisecond timestamp as carried on the wire (it wraps). */
  readonly timestamp: number;
  readonly payload: Buffer;
}

export interface ChunkParserLimits {
  readonly maxChunkSize: number;
  readonly maxMessageSize: number;
  /** Distinct chunk stream ids a peer may use at once. */
  readonly maxChunkStreams: number;
}

/** "The maximum chunk size defaults to 128 bytes" (5.4.1). */
export const DEFAULT_CHUNK_SIZE = 128;
const EXTENDED = 0xffffff;
/** Message header length by fmt: type 0 = 11 bytes, 1 = 7, 2 = 3, 3 = 0 (5.3.1.2). */
const HEADER_LEN = [11, 7, 3, 0] as const;

interface ChunkStream {
  /** Timestamp of the current (or last) message. */
  timestamp: number;
  /** Last timestamp field: the delta of a type 1/2 header, or the absolute value of a type 0 header. */
  delta: number;
  /** The last header's timestamp field was 0xFFFFFF, so an extended timestamp follows headers. */
  extended: boolean;
  length: number;
  type: number;
  streamId: number;
  /** Chunks of the message being assembled; undefined between messages. */
  parts: Buffer[] | undefined;
  received: number;
}

function protocolError(msg: string): never {
  throw new AppError('E_PROTOCOL', msg);
}

/**
 * The chunk stream layer as a state machine fed bytes: `push()` takes whatever the socket delivered and
 * returns the messages it completed. Set Chunk Size and Abort are applied here, where they take effect
 * for the very next chunk, and are not returned. Input buffered here is bounded: a partial header
 * (< 18 bytes) plus the partial messages, each at most maxMessageSize.
 */
export class ChunkParser {
  #limits: ChunkParserLimits;
  #chunkSize = DEFAULT_CHUNK_SIZE;
  #streams = new Map<number, ChunkStream>();
  #pending: Buffer = Buffer.alloc(0);
  /** Chunk stream whose chunk payload is being read, and how many payload bytes of that chunk remain. */
  #current: ChunkStream | undefined;
  #csid = 0;
  #left = 0;
  #inFlight = 0;

  constructor(limits: ChunkParserLimits) {
    this.#limits = limits;
  }

  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Bytes held for partial headers and partial messages. */
  get bufferedBytes(): number {
    return this.#pending.byteLength + this.#inFlight;
  }

  push(data: Uint8Array): RtmpMessage[] {
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const buf = this.#pending.byteLength > 0 ? Buffer.concat([this.#pending, input]) : input;
    const out: RtmpMessage[] = [];
    let pos = 0;
    while (pos < buf.byteLength) {
      if (this.#current) {
        const cs = this.#current;
        const n = Math.min(this.#left, buf.byteLength - pos);
        cs.parts!.push(buf.subarray(pos, pos + n));
        cs.received += n;
        this.#inFlight += n;
        this.#left -= n;
        pos += n;
        if (this.#left === 0) {
          this.#current = undefined;
          if (cs.received === cs.length) this.#complete(this.#csid, cs, out);
        }
        continue;
      }
      const next = this.#header(buf, pos, out);
      if (next < 0) break;
      pos = next;
    }
    // Only an incomplete header is ever left over (payload bytes are consumed as they arrive).
    this.#pending = pos < buf.byteLength ? Buffer.from(buf.subarray(pos)) : Buffer.alloc(0);
    return out;
  }

  /** Parses one chunk header at `pos`; returns the position after it, or -1 if more bytes are needed. */
  #header(buf: Buffer, pos: number, out: RtmpMessage[]): number {
    const avail = buf.byteLength - pos;
    const b0 = buf[pos];
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    let p = pos + 1;
    // 5.3.1.1: ids 64-319 use the 2-byte form (id - 64 in the second byte); ids 64-65599 the 3-byte form
    // ((third byte) * 256 + (second byte) + 64).
    if (csid === 0) {
      if (avail < 2) return -1;
      csid = 64 + buf[p];
      p += 1;
    } else if (csid === 1) {
      if (avail < 3) return -1;
      csid = 64 + buf[p] + buf[p + 1] * 256;
      p += 2;
    }
    const hlen = HEADER_LEN[fmt as 0 | 1 | 2 | 3];
    if (buf.byteLength - p < hlen) return -1;
    const cs = this.#streams.get(csid);
    if (!cs && fmt !== 0) protocolError(`chunk stream ${csid} starts with a type ${fmt} header`);
    let field = cs ? cs.delta : 0;
    let length = cs ? cs.length : 0;
    let type = cs ? cs.type : 0;
    let streamId = cs ? cs.streamId : 0;
    if (fmt <= 2) field = buf.readUIntBE(p, 3);
    if (fmt <= 1) {
      length = buf.readUIntBE(p + 3, 3);
      type = buf[p + 6];
    }
    if (fmt === 0) streamId = buf.readUInt32LE(p + 7);
    p += hlen;
    const continuation = fmt === 3 && cs!.parts !== undefined;
    const extended = fmt <= 2 ? field === EXTENDED : cs!.extended;
    if (extended) {
      if (buf.byteLength - p < 4) return -1;
      const v = buf.readUInt32BE(p);
      if (!continuation) {
        field = v;
        p += 4;
      } else if (v === cs!.delta) {
        // 5.3.1.3: type 3 chunks of a message whose header had an extended timestamp repeat it. Some
        // old encoders leave it out; they are recognised by the 4 bytes not matching.
        p += 4;
      }
    }

    // Every byte of the header is here: now change state.
    let st = cs;
    if (!st) {
      if (this.#streams.size >= this.#limits.maxChunkStreams) {
        throw new AppError('E_LIMIT_EXCEEDED', `more than ${this.#limits.maxChunkStreams} chunk streams`);
      }
      st = { timestamp: 0, delta: 0, extended: false, length: 0, type: 0, streamId: 0, parts: undefined, received: 0 };
      this.#streams.set(csid, st);
    }
    if (fmt !== 3 && st.parts !== undefined) {
      protocolError(`type ${fmt} header on chunk stream ${csid} in the middle of a message`);
    }
    if (!continuation) {
      if (length > this.#limits.maxMessageSize) {
        throw new AppError('E_LIMIT_EXCEEDED', `message of ${length} bytes over the limit of ${this.#limits.maxMessageSize}`);
      }
      // Type 0 carries the absolute timestamp; types 1 and 2 a delta; a type 3 header that starts a new
      // message adds the previous delta again (5.3.1.2.4: "If the delta between the first message and
      // the second message is same as the timestamp of the first message, then a chunk of Type 3 could
      // immediately follow the chunk of Type 0").
      st.timestamp = fmt === 0 ? field : (st.timestamp + field) >>> 0;
      st.delta = field;
      st.extended = extended;
      st.length = length;
      st.type = type;
      st.streamId = streamId;
      st.parts = [];
      st.received = 0;
      if (length === 0) {
        this.#complete(csid, st, out);
        return p;
      }
    }
    this.#current = st;
    this.#csid = csid;
    this.#left = Math.min(this.#chunkSize, st.length - st.received);
    // Two partial messages of the maximum size may legitimately overlap (video + audio); more may not.
    if (this.#inFlight + this.#left > 2 * this.#limits.maxMessageSize) {
      throw new AppError('E_LIMIT_EXCEEDED', 'too many bytes in partial messages');
    }
    return p;
  }

  #complete(csid: number, cs: ChunkStream, out: RtmpMessage[]): void {
    const parts = cs.parts ?? [];
    const payload = Buffer.concat(parts, cs.received);
    this.#inFlight -= cs.received;
    cs.parts = undefined;
    cs.received = 0;
    if (cs.type === MessageType.setChunkSize) return this.#setChunkSize(payload);
    if (cs.type === MessageType.abort) return this.#abort(payload);
    out.push({ csid, type: cs.type, streamId: cs.streamId, timestamp: cs.timestamp, payload });
  }

  #setChunkSize(payload: Buffer): void {
    if (payload.byteLength < 4) protocolError('short Set Chunk Size message');
    // 5.4.1: "The first bit MUST be zero (0)" and the size is at least 1.
    const size = payload.readUInt32BE(0);
    if (size === 0 || size > 0x7fffffff) protocolError(`invalid chunk size ${size}`);
    if (size > this.#limits.maxChunkSize) {
      throw new AppError('E_LIMIT_EXCEEDED', `chunk size ${size} over the limit of ${this.#limits.maxChunkSize}`);
    }
    this.#chunkSize = size;
  }

  #abort(payload: Buffer): void {
    if (payload.byteLength < 4) protocolError('short Abort message');
    // 5.4.2: the peer "discard[s] the partially received message over a chunk stream".
    const cs = this.#streams.get(payload.readUInt32BE(0));
    if (!cs || cs.parts === undefined || cs === this.#current) return;
    this.#inFlight -= cs.received;
    cs.parts = undefined;
    cs.received = 0;
  }
}

export function encodeBasicHeader(fmt: number, csid: number): Buffer {
  if (csid < 2 || csid > 65_599) throw new AppError('E_VALIDATION', `invalid chunk stream id ${csid}`);
  if (csid < 64) return Buffer.of((fmt << 6) | csid);
  if (csid < 320) return Buffer.of(fmt << 6, csid - 64);
  const v = csid - 64;
  return Buffer.of((fmt << 6) | 1, v & 0xff, v >> 8);
}

/** Splits one message into chunks: a type 0 header, then type 3 continuations. */
export function encodeMessage(msg: RtmpMessage, chunkSize: number): Buffer {
  const ext = msg.timestamp >= EXTENDED;
  const header = Buffer.alloc(11 + (ext ? 4 : 0));
  header.writeUIntBE(ext ? EXTENDED : msg.timestamp, 0, 3);
  header.writeUIntBE(msg.payload.byteLength, 3, 3);
  header[6] = msg.type;
  header.writeUInt32LE(msg.streamId, 7);
  if (ext) header.writeUInt32BE(msg.timestamp >>> 0, 11);
  const parts: Buffer[] = [encodeBasicHeader(0, msg.csid), header];
  const cont = encodeBasicHeader(3, msg.csid);
  const extBytes = ext ? header.subarray(11) : undefined;
  for (let off = 0; off < msg.payload.byteLength || off === 0; off += chunkSize) {
    if (off > 0) {
      parts.push(cont);
      if (extBytes) parts.push(extBytes);
    }
    parts.push(msg.payload.subarray(off, off + chunkSize));
    if (msg.payload.byteLength === 0) break;
  }
  return Buffer.concat(parts);
}
