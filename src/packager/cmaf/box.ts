/**
 * A minimal ISO BMFF box writer: big-endian fields into one buffer, box sizes back-patched when a box is
 * closed. Give the exact capacity when it is known (fragments) and the buffer is never reallocated.
 */
import { AppError } from '../../core/index.js';

const TWO_32 = 2 ** 32;

export class BoxWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;

  constructor(capacity = 1024) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  get position(): number {
    return this.#pos;
  }

  #ensure(n: number): void {
    const need = this.#pos + n;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#ensure(1);
    this.#view.setUint8(this.#pos, v);
    this.#pos += 1;
    return this;
  }

  u16(v: number): this {
    this.#ensure(2);
    this.#view.setUint16(this.#pos, v);
    this.#pos += 2;
    return this;
  }

  i16(v: number): this {
    this.#ensure(2);
    this.#view.setInt16(this.#pos, v);
    this.#pos += 2;
    return this;
  }

  u24(v: number): this {
    return this.u8((v >>> 16) & 0xff).u16(v & 0xffff);
  }

  u32(v: number): this {
    this.#ensure(4);
    this.#view.setUint32(this.#pos, v);
    this.#pos += 4;
    return this;
  }

  i32(v: number): this {
    this.#ensure(4);
    this.#view.setInt32(this.#pos, v);
    this.#pos += 4;
    return this;
  }

  /** Unsigned 64-bit from a safe integer. */
  u64(v: number): this {
    return this.u32(Math.floor(v / TWO_32)).u32(v % TWO_32);
  }

  zeros(n: number): this {
    this.#ensure(n);
    this.#buf.fill(0, this.#pos, this.#pos + n);
    this.#pos += n;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.#ensure(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
    return this;
  }

  /** Four-character code or other ASCII text. */
  ascii(s: string): this {
    this.#ensure(s.length);
    for (let i = 0; i < s.length; i++) this.#buf[this.#pos++] = s.charCodeAt(i) & 0x7f;
    return this;
  }

  /** Writes a box: size placeholder, type, body; then patches the size. */
  box(type: string, body: (w: this) => void): this {
    const start = this.#pos;
    this.u32(0).ascii(type);
    body(this);
    const size = this.#pos - start;
    if (size >= TWO_32) throw new AppError('E_LIMIT_EXCEEDED', `box ${type} larger than 4 GiB`);
    this.#view.setUint32(start, size);
    return this;
  }

  /** A FullBox: box header plus version and 24-bit flags. */
  fullBox(type: string, version: number, flags: number, body: (w: this) => void): this {
    return this.box(type, (w) => {
      w.u8(version).u24(flags);
      body(w);
    });
  }

  /** The bytes written so far (a view, not a copy, when the capacity was exact). */
  finish(): Uint8Array {
    return this.#pos === this.#buf.length ? this.#buf : this.#buf.slice(0, this.#pos);
  }
}
