/** Bounds-checked bit and byte readers shared by the codec parsers; every failure is E_PROTOCOL. */
import { AppError } from '../errors.js';

export const MAX_DIMENSION = 16_384;
export const MAX_PARAM_SETS = 32;
export const MAX_HVCC_ARRAYS = 16;

export function fail(reason: string): never {
  throw new AppError('E_PROTOCOL', reason);
}

/** MSB-first bit reader with exp-Golomb; throws instead of reading past the end. */
export class BitReader {
  readonly #buf: Uint8Array;
  #pos = 0; // in bits

  constructor(buf: Uint8Array) {
    this.#buf = buf;
  }

  get bitsLeft(): number {
    return this.#buf.length * 8 - this.#pos;
  }

  bits(n: number): number {
    if (n > this.bitsLeft) fail('truncated bitstream');
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.#buf[this.#pos >> 3];
      v = v * 2 + ((byte >> (7 - (this.#pos & 7))) & 1);
      this.#pos++;
    }
    return v;
  }

  skip(n: number): void {
    if (n > this.bitsLeft) fail('truncated bitstream');
    this.#pos += n;
  }

  flag(): boolean {
    return this.bits(1) === 1;
  }

  /** ue(v): values up to 2^32 - 2. */
  ue(): number {
    let zeros = 0;
    while (this.bits(1) === 0) {
      if (++zeros > 31) fail('exp-Golomb code too long');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** Byte cursor for the record layers (big-endian). */
export class ByteReader {
  readonly #buf: Uint8Array;
  pos = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
  }

  get left(): number {
    return this.#buf.length - this.pos;
  }

  u8(): number {
    if (this.left < 1) fail('truncated record');
    return this.#buf[this.pos++];
  }

  u16(): number {
    return this.u8() * 256 + this.u8();
  }

  bytes(n: number): Uint8Array {
    if (n > this.left) fail('truncated record');
    const out = this.#buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Removes emulation prevention bytes (00 00 03 -> 00 00) from a NAL unit payload. */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  const out = new Uint8Array(nal.length);
  let n = 0;
  let zeros = 0;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    zeros = b === 0 ? zeros + 1 : 0;
    out[n++] = b;
  }
  return out.subarray(0, n);
}

export function checkDimensions(width: number, height: number, what: string): void {
  if (!(width > 0 && height > 0 && width <= MAX_DIMENSION && height <= MAX_DIMENSION)) {
    fail(`${what}: implausible picture size ${width}x${height}`);
  }
}
