import { AppError } from '../core/index.js';

/**
 * AMF0 (Adobe "Action Message Format" version 0), the encoding of RTMP commands and data messages.
 * Decoding is bounded: nesting depth, values per message and string sizes are limited, so a hostile
 * peer cannot make us allocate or recurse without bound.
 */
export type AmfValue = number | boolean | string | null | undefined | Date | AmfObject | AmfValue[];
export interface AmfObject {
  [key: string]: AmfValue;
}

export const Amf0Marker = {
  number: 0x00,
  boolean: 0x01,
  string: 0x02,
  object: 0x03,
  movieclip: 0x04,
  null: 0x05,
  undefined: 0x06,
  reference: 0x07,
  ecmaArray: 0x08,
  objectEnd: 0x09,
  strictArray: 0x0a,
  date: 0x0b,
  longString: 0x0c,
  unsupported: 0x0d,
  xmlDocument: 0x0f,
  typedObject: 0x10,
  avmplus: 0x11,
} as const;

export interface Amf0Limits {
  /** Nesting of objects / arrays. */
  readonly maxDepth: number;
  /** Values (including object properties and array items) in one decode call. */
  readonly maxValues: number;
  /** Bytes of one string (UTF-8). */
  readonly maxStringBytes: number;
}

export const DEFAULT_AMF0_LIMITS: Amf0Limits = { maxDepth: 16, maxValues: 4096, maxStringBytes: 65_536 };

function fail(msg: string): never {
  throw new AppError('E_PROTOCOL', `AMF0: ${msg}`);
}

class Reader {
  pos = 0;
  values = 0;
  readonly #view: DataView;

  constructor(
    readonly buf: Uint8Array,
    readonly limits: Amf0Limits,
  ) {
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  need(n: number): void {
    if (this.pos + n > this.buf.byteLength) fail(`truncated at byte ${this.pos} (need ${n} more)`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.#view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.#view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.#view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }
  utf8(len: number): string {
    if (len > this.limits.maxStringBytes) fail(`string of ${len} bytes over the limit`);
    this.need(len);
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, len).toString('utf8');
    this.pos += len;
    return s;
  }
  count(): void {
    if (++this.values > this.limits.maxValues) fail(`more than ${this.limits.maxValues} values`);
  }
}

/** Reads `key: value` pairs up to the empty key + object-end marker. */
function readProperties(r: Reader, depth: number, out: AmfObject, tolerateEof: boolean): AmfObject {
  for (;;) {
    // Some encoders end an ECMA array at the end of the message without the end marker.
    if (tolerateEof && r.pos === r.buf.byteLength) return out;
    const key = r.utf8(r.u16());
    if (key === '') {
      const m = r.u8();
      if (m !== Amf0Marker.objectEnd) fail(`expected object end, got marker ${m}`);
      return out;
    }
    const value = readValue(r, depth + 1);
    // Never let a peer write through to Object.prototype.
    if (key === '__proto__') continue;
    out[key] = value;
  }
}

function readValue(r: Reader, depth: number): AmfValue {
  if (depth > r.limits.maxDepth) fail(`nesting deeper than ${r.limits.maxDepth}`);
  r.count();
  const marker = r.u8();
  switch (marker) {
    case Amf0Marker.number:
      return r.f64();
    case Amf0Marker.boolean:
      return r.u8() !== 0;
    case Amf0Marker.string:
      return r.utf8(r.u16());
    case Amf0Marker.longString:
    case Amf0Marker.xmlDocument:
      return r.utf8(r.u32());
    case Amf0Marker.object:
      return readProperties(r, depth, {}, false);
    case Amf0Marker.typedObject:
      r.utf8(r.u16()); // class name, not kept
      return readProperties(r, depth, {}, false);
    case Amf0Marker.ecmaArray:
      r.u32(); // associative count: advisory only, encoders get it wrong
      return readProperties(r, depth, {}, true);
    case Amf0Marker.strictArray: {
      const n = r.u32();
      // Every item takes at least one byte: a count larger than what is left is a lie.
      if (n > r.buf.byteLength - r.pos) fail(`strict array of ${n} items in ${r.buf.byteLength - r.pos} bytes`);
      const out: AmfValue[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
      return out;
    }
    case Amf0Marker.null:
      return null;
    case Amf0Marker.undefined:
    case Amf0Marker.unsupported:
      return undefined;
    case Amf0Marker.date: {
      const ms = r.f64();
      r.u16(); // time zone, "reserved, not supported, should be set to 0x0000"
      return new Date(ms);
    }
    default:
      return fail(`unsupported marker 0x${marker.toString(16)} at byte ${r.pos - 1}`);
  }
}

/** Decodes every value in `buf` (an RTMP command or data message body). Throws AppError('E_PROTOCOL'). */
export function decodeAmf0(buf: Uint8Array, limits: Amf0Limits = DEFAULT_AMF0_LIMITS): AmfValue[] {
  const r = new Reader(buf, limits);
  const out: AmfValue[] = [];
  while (r.pos < buf.byteLength) out.push(readValue(r, 0));
  return out;
}

class Writer {
  #parts: Buffer[] = [];
  u8(v: number): void {
    this.#parts.push(Buffer.of(v));
  }
  u16(v: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.#parts.push(b);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.#parts.push(b);
  }
  f64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    this.#parts.push(b);
  }
  raw(b: Buffer): void {
    this.#parts.push(b);
  }
  key(k: string): void {
    const b = Buffer.from(k, 'utf8');
    if (b.byteLength > 0xffff) throw new AppError('E_VALIDATION', 'AMF0 property name too long');
    this.u16(b.byteLength);
    this.raw(b);
  }
  done(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

function writeValue(w: Writer, v: AmfValue): void {
  if (typeof v === 'number') {
    w.u8(Amf0Marker.number);
    w.f64(v);
  } else if (typeof v === 'boolean') {
    w.u8(Amf0Marker.boolean);
    w.u8(v ? 1 : 0);
  } else if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    if (b.byteLength > 0xffff) {
      w.u8(Amf0Marker.longString);
      w.u32(b.byteLength);
    } else {
      w.u8(Amf0Marker.string);
      w.u16(b.byteLength);
    }
    w.raw(b);
  } else if (v === null) {
    w.u8(Amf0Marker.null);
  } else if (v === undefined) {
    w.u8(Amf0Marker.undefined);
  } else if (v instanceof Date) {
    w.u8(Amf0Marker.date);
    w.f64(v.getTime());
    w.u16(0);
  } else if (Array.isArray(v)) {
    w.u8(Amf0Marker.strictArray);
    w.u32(v.length);
    for (const item of v) writeValue(w, item);
  } else {
    w.u8(Amf0Marker.object);
    for (const [k, item] of Object.entries(v)) {
      w.key(k);
      writeValue(w, item);
    }
    w.u16(0);
    w.u8(Amf0Marker.objectEnd);
  }
}

/** Encodes values back to back, as in an RTMP command message. */
export function encodeAmf0(...values: AmfValue[]): Buffer {
  const w = new Writer();
  for (const v of values) writeValue(w, v);
  return w.done();
}

/** Encodes an object as an ECMA array (what onMetaData carries). */
export function encodeAmf0EcmaArray(obj: AmfObject): Buffer {
  const w = new Writer();
  w.u8(Amf0Marker.ecmaArray);
  const entries = Object.entries(obj);
  w.u32(entries.length);
  for (const [k, item] of entries) {
    w.key(k);
    writeValue(w, item);
  }
  w.u16(0);
  w.u8(Amf0Marker.objectEnd);
  return w.done();
}

export function isAmfObject(v: AmfValue): v is AmfObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
