import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/index.js';
import { decodeAmf0, encodeAmf0, encodeAmf0EcmaArray, type AmfValue } from '../../src/flv/index.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function expectProtocolError(fn: () => unknown, match?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('E_PROTOCOL');
    if (match) expect((err as AppError).message).toMatch(match);
    return;
  }
  throw new Error('expected an E_PROTOCOL error');
}

describe('AMF0 encoding: known byte vectors', () => {
  it('encodes scalars', () => {
    expect(encodeAmf0(1)).toEqual(hex('00 3ff0000000000000'));
    expect(encodeAmf0(0)).toEqual(hex('00 0000000000000000'));
    expect(encodeAmf0(true, false)).toEqual(hex('0101 0100'));
    expect(encodeAmf0('connect')).toEqual(hex('02 0007 636f6e6e656374'));
    expect(encodeAmf0(null, undefined)).toEqual(hex('05 06'));
    expect(encodeAmf0(new Date(0))).toEqual(hex('0b 0000000000000000 0000'));
  });

  it('encodes an object with the empty-key end marker', () => {
    expect(encodeAmf0({ app: 'live' })).toEqual(hex('03 0003 617070 02 0004 6c697665 0000 09'));
  });

  it('encodes a strict array and an ECMA array', () => {
    expect(encodeAmf0(['a', 2])).toEqual(hex('0a 00000002 02 0001 61 00 4000000000000000'));
    expect(encodeAmf0EcmaArray({ w: 1 })).toEqual(hex('08 00000001 0001 77 00 3ff0000000000000 0000 09'));
  });

  it('switches to long string past 65535 bytes', () => {
    const s = 'x'.repeat(70_000);
    const b = encodeAmf0(s);
    expect(b[0]).toBe(0x0c);
    expect(b.readUInt32BE(1)).toBe(70_000);
    expect(decodeAmf0(b, { maxDepth: 4, maxValues: 10, maxStringBytes: 100_000 })).toEqual([s]);
  });

  it('decodes the connect command FFmpeg sends', () => {
    const body = encodeAmf0('connect', 1, {
      app: 'live',
      type: 'nonprivate',
      flashVer: 'FMLE/3.0 (compatible; Lavf59.27.100)',
      tcUrl: 'rtmp://127.0.0.1:1935/live',
    });
    expect(decodeAmf0(body)).toEqual([
      'connect',
      1,
      { app: 'live', type: 'nonprivate', flashVer: 'FMLE/3.0 (compatible; Lavf59.27.100)', tcUrl: 'rtmp://127.0.0.1:1935/live' },
    ]);
  });
});

describe('AMF0 round trips', () => {
  const cases: [string, AmfValue][] = [
    ['number', 3.25],
    ['negative', -1e300],
    ['NaN-free infinity', Infinity],
    ['empty string', ''],
    ['unicode string', 'héllo ✓'],
    ['nested object', { a: { b: { c: [1, 'two', null, { d: true }] } } }],
    ['empty object', {}],
    ['empty array', []],
    ['date', new Date(1_700_000_000_000)],
    ['null', null],
    ['undefined', undefined],
  ];
  for (const [name, v] of cases) {
    it(name, () => {
      expect(decodeAmf0(encodeAmf0(v))).toEqual([v]);
    });
  }

  it('decodes an ECMA array as an object', () => {
    const meta = { width: 640, height: 360, framerate: 30, videocodecid: 7, encoder: 'Lavf' };
    expect(decodeAmf0(encodeAmf0EcmaArray(meta))).toEqual([meta]);
  });

  it('accepts an ECMA array that ends at the end of the message without the end marker', () => {
    const full = encodeAmf0EcmaArray({ a: 1 });
    expect(decodeAmf0(full.subarray(0, full.length - 3))).toEqual([{ a: 1 }]);
  });

  it('decodes typed objects, XML documents and the unsupported marker', () => {
    expect(decodeAmf0(hex('10 0001 43 0001 78 05 0000 09'))).toEqual([{ x: null }]);
    expect(decodeAmf0(hex('0f 00000002 3c61 0d'))).toEqual(['<a', undefined]);
  });
});

describe('AMF0 decoding limits and bad input', () => {
  it('rejects truncated values', () => {
    expectProtocolError(() => decodeAmf0(hex('00 3ff0')), /truncated/);
    expectProtocolError(() => decodeAmf0(hex('02 0005 6162')), /truncated/);
    expectProtocolError(() => decodeAmf0(hex('03 0001 61 02')), /truncated/);
  });

  it('rejects unknown markers, references and AMF3 switches', () => {
    expectProtocolError(() => decodeAmf0(hex('07 0001')), /marker 0x7/);
    expectProtocolError(() => decodeAmf0(hex('11 01')), /marker 0x11/);
    expectProtocolError(() => decodeAmf0(hex('ff')), /marker 0xff/);
  });

  it('rejects an object property followed by a wrong end marker', () => {
    expectProtocolError(() => decodeAmf0(hex('03 0000 05')), /object end/);
  });

  it('limits nesting depth', () => {
    let v: AmfValue = 1;
    for (let i = 0; i < 20; i++) v = { n: v };
    expectProtocolError(() => decodeAmf0(encodeAmf0(v)), /nesting/);
    expect(() => decodeAmf0(encodeAmf0(v), { maxDepth: 32, maxValues: 100, maxStringBytes: 10 })).not.toThrow();
  });

  it('limits the number of values', () => {
    const arr = Array.from({ length: 50 }, (_, i) => i);
    expectProtocolError(() => decodeAmf0(encodeAmf0(arr), { maxDepth: 4, maxValues: 20, maxStringBytes: 10 }), /values/);
  });

  it('limits string size', () => {
    expectProtocolError(() => decodeAmf0(encodeAmf0('x'.repeat(100)), { maxDepth: 4, maxValues: 20, maxStringBytes: 50 }), /string/);
  });

  it('rejects a strict array count that the bytes cannot hold (no huge allocation)', () => {
    expectProtocolError(() => decodeAmf0(hex('0a ffffffff 05')), /strict array/);
  });

  it('never writes __proto__ through to the prototype', () => {
    const body = hex('03 0009 5f5f70726f746f5f5f 03 0001 78 01 01 0000 09 0000 09');
    const [obj] = decodeAmf0(body) as [Record<string, unknown>];
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect((obj as { x?: unknown }).x).toBeUndefined();
  });
});
