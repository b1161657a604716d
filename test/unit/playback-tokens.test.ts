import { describe, expect, it } from 'vitest';
import { PlaybackTokens } from '../../src/api/index.js';
import { parseRange } from '../../src/api/playback.js';

const secret = 'k'.repeat(32);

describe('playback tokens', () => {
  const tokens = new PlaybackTokens(secret);
  const now = 1_800_000_000_000;

  it('opens its own subject until it expires, and only that', () => {
    const t = tokens.sign({ kind: 'v', id: 'video_1-AB' }, now + 60_000);
    expect(t).toMatch(/^v\.video_1-AB\.\d+\.[A-Za-z0-9_-]{43}$/);
    expect(tokens.check(t, { kind: 'v', id: 'video_1-AB' }, now)).toBeUndefined();
    expect(tokens.check(t, { kind: 'v', id: 'video_1-AB' }, now + 60_000)).toBe('expired');
    expect(tokens.check(t, { kind: 'v', id: 'other' }, now)).toBe('wrong-subject');
    expect(tokens.check(t, { kind: 's', id: 'video_1-AB' }, now)).toBe('wrong-subject');
  });

  it('refuses tampering, another key and garbage', () => {
    const t = tokens.sign({ kind: 's', id: 'stream1' }, now + 60_000);
    const [kind, id, exp, sig] = t.split('.');
    expect(tokens.check([kind, id, String(Number(exp) + 3600), sig].join('.'), { kind: 's', id: 'stream1' }, now)).toBe('bad-signature');
    expect(tokens.check([kind, 'stream2', exp, sig].join('.'), { kind: 's', id: 'stream2' }, now)).toBe('bad-signature');
    expect(new PlaybackTokens('z'.repeat(32)).check(t, { kind: 's', id: 'stream1' }, now)).toBe('bad-signature');
    for (const bad of [
      '',
      'a.b.c',
      `${t}.x`,
      'x.stream1.1.' + 'a'.repeat(43),
      t.slice(0, -1),
      'v.a/b.1.' + 'a'.repeat(43),
      'v'.repeat(300),
    ]) {
      expect(tokens.check(bad, { kind: 's', id: 'stream1' }, now), bad).toBe('malformed');
    }
  });

  it('has one spelling: a signature whose unused low bits are set is refused, though it decodes alike', () => {
    const t = tokens.sign({ kind: 's', id: 'stream1' }, now + 60_000);
    const subject = { kind: 's', id: 'stream1' } as const;
    expect(tokens.check(t, subject, now)).toBeUndefined();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(t.at(-1)!);
    // 43 characters carry 258 bits for a 256-bit HMAC: the last character's two low bits are padding.
    expect(last & 0b11).toBe(0);
    for (const bits of [0b01, 0b10, 0b11]) {
      const other = t.slice(0, -1) + alphabet[last | bits];
      expect(Buffer.from(other.split('.')[3], 'base64url')).toEqual(Buffer.from(t.split('.')[3], 'base64url'));
      expect(tokens.check(other, subject, now), other).toBe('malformed');
    }
  });

  it('wants a long secret and well-formed ids', () => {
    expect(() => new PlaybackTokens('short')).toThrow(/32 characters/);
    expect(() => tokens.sign({ kind: 'v', id: '../x' }, now)).toThrow(/not an id/);
  });
});

describe('Range header', () => {
  const size = async () => 1000;
  it('reads start-end, open ends and suffixes; ignores the rest (the whole file is sent)', async () => {
    expect(parseRange(undefined, size)).toBeUndefined();
    expect(parseRange('bytes=0-99', size)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=500-', size)).toEqual({ start: 500, end: undefined });
    expect(await parseRange('bytes=-100', size)).toEqual({ start: 900, end: 999 });
    expect(await parseRange('bytes=-5000', size)).toEqual({ start: 0, end: 999 });
    for (const other of ['bytes=', 'bytes=5-1', 'bytes=0-1,5-9', 'items=0-1', 'bytes=a-b'])
      expect(parseRange(other, size), other).toBeUndefined();
  });
});
