/**
 * ADTS (ISO/IEC 13818-7 6.2 / 14496-3 1.A.2) as FFmpeg writes AAC to a pipe: split into raw AAC frames and
 * the AudioSpecificConfig they imply. Pure and bounded.
 */
import { AppError } from '../../core/index.js';

const RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/** An ADTS frame is at most 8191 bytes (13-bit length). */
const MAX_BUFFER = 64 * 1024;

export interface AdtsFrame {
  /** Raw AAC (the access unit without the ADTS header). */
  readonly data: Uint8Array;
  readonly objectType: number;
  readonly sampleRate: number;
  readonly channels: number;
  /** AudioSpecificConfig (2 bytes: object type, frequency index, channel configuration). */
  readonly asc: Uint8Array;
}

export class AdtsReader {
  #buf: Buffer = Buffer.alloc(0);

  /** Frames completed by this chunk. Throws E_PROTOCOL on bytes that are not ADTS. */
  push(chunk: Buffer): AdtsFrame[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: AdtsFrame[] = [];
    let p = 0;
    const b = this.#buf;
    while (b.length - p >= 7) {
      if (b[p] !== 0xff || (b[p + 1] & 0xf6) !== 0xf0) throw new AppError('E_PROTOCOL', 'ADTS: lost sync');
      const protectionAbsent = b[p + 1] & 1;
      const objectType = (b[p + 2] >> 6) + 1;
      const freq = (b[p + 2] >> 2) & 0x0f;
      const channels = ((b[p + 2] & 1) << 2) | (b[p + 3] >> 6);
      const length = ((b[p + 3] & 3) << 11) | (b[p + 4] << 3) | (b[p + 5] >> 5);
      const blocks = (b[p + 6] & 3) + 1;
      const head = protectionAbsent ? 7 : 9;
      if (freq >= RATES.length || length < head || blocks !== 1) throw new AppError('E_PROTOCOL', 'ADTS: unsupported header');
      if (b.length - p < length) break;
      const asc = Uint8Array.of((objectType << 3) | (freq >> 1), ((freq & 1) << 7) | (channels << 3));
      out.push({ data: Uint8Array.from(b.subarray(p + head, p + length)), objectType, sampleRate: RATES[freq], channels, asc });
      p += length;
    }
    this.#buf = p >= b.length ? Buffer.alloc(0) : Buffer.from(b.subarray(p));
    if (this.#buf.length > MAX_BUFFER) throw new AppError('E_PROTOCOL', 'ADTS: frame too large');
    return out;
  }
}
