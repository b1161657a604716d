import { AppError } from '../core/index.js';

/** One FLV tag: type 8 audio, 9 video, 18 script data; timestamp in ms (32 bits, may wrap). */
export interface FlvTag {
  readonly type: number;
  readonly timestamp: number;
  readonly body: Buffer;
}

export interface FlvReaderLimits {
  /** Largest tag body accepted (one video frame). */
  readonly maxTagBytes: number;
}

const HEADER_BYTES = 9;
const TAG_HEADER_BYTES = 11;

/**
 * Splits an FLV byte stream (file header, then tags each followed by PreviousTagSize) into tags, fed
 * with chunks of any size. Throws AppError E_PROTOCOL on a stream that is not FLV or a tag over the limit.
 */
export class FlvReader {
  readonly #limits: FlvReaderLimits;
  #buf: Buffer = Buffer.alloc(0);
  #headerDone = false;
  /** Set by the first error: the stream cannot be resynchronised, so every later push fails at once. */
  #failed: AppError | undefined;

  constructor(limits: FlvReaderLimits) {
    this.#limits = limits;
  }

  /** Tags completed by this chunk. After an error, every call throws it again and nothing is kept. */
  push(chunk: Buffer): FlvTag[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#failed = err as AppError;
      this.#buf = Buffer.alloc(0);
      throw err;
    }
  }

  #push(chunk: Buffer): FlvTag[] {
    this.#buf = this.#buf.byteLength ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: FlvTag[] = [];
    let p = 0;
    const buf = this.#buf;
    if (!this.#headerDone) {
      if (buf.byteLength < HEADER_BYTES + 4) return out;
      if (buf.toString('latin1', 0, 3) !== 'FLV') throw new AppError('E_PROTOCOL', 'not an FLV stream (no "FLV" signature)');
      const dataOffset = buf.readUInt32BE(5);
      if (dataOffset < HEADER_BYTES || dataOffset > 1024) throw new AppError('E_PROTOCOL', `FLV header size ${dataOffset} out of range`);
      if (buf.byteLength < dataOffset + 4) return out;
      p = dataOffset + 4; // PreviousTagSize0
      this.#headerDone = true;
    }
    while (buf.byteLength - p >= TAG_HEADER_BYTES) {
      const type = buf[p] & 0x1f;
      const size = buf.readUIntBE(p + 1, 3);
      if (size > this.#limits.maxTagBytes)
        throw new AppError('E_PROTOCOL', `FLV tag of ${size} bytes exceeds the limit of ${this.#limits.maxTagBytes}`);
      if (buf.byteLength - p < TAG_HEADER_BYTES + size + 4) break;
      // Timestamp: 24 bits, then TimestampExtended holds the upper 8 bits.
      const timestamp = (buf.readUIntBE(p + 4, 3) | (buf[p + 7] << 24)) >>> 0;
      const start = p + TAG_HEADER_BYTES;
      out.push({ type, timestamp, body: Buffer.from(buf.subarray(start, start + size)) });
      p = start + size + 4;
    }
    this.#buf = p >= buf.byteLength ? Buffer.alloc(0) : Buffer.from(buf.subarray(p));
    return out;
  }

  /** Bytes waiting for the rest of their tag. */
  get buffered(): number {
    return this.#buf.byteLength;
  }
}
