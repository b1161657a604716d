import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/index.js';
import { MAX_KEY_LENGTH, MAX_SEGMENT_LENGTH, validateKey, validatePrefix } from '../../src/storage/index.js';

/** The message of the E_VALIDATION error `fn` throws (fails the test when it throws nothing or something else). */
function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('E_VALIDATION');
    return (err as AppError).message;
  }
  throw new Error('no error thrown');
}

describe('validateKey', () => {
  it.each([
    'a',
    'seg.m4s',
    'vod/0193f0c2-7d3a/720p/seg-000001.m4s',
    'vod/asset/master.m3u8',
    'uploads/date=2025-01-01/part_1.mp4',
    'a..b',
    'file.',
    `${'a'.repeat(MAX_SEGMENT_LENGTH)}/b`,
  ])('accepts %s', (key) => {
    expect(validateKey(key)).toBe(key);
  });

  it('accepts a key of exactly the longest length', () => {
    const key = Array.from({ length: 8 }, () => 'x'.repeat(127)).join('/'); // 8 * 127 + 7 = 1023
    expect(validateKey(`${key}y`)).toHaveLength(MAX_KEY_LENGTH);
  });

  it.each([
    ['', 'storage: key is empty'],
    ['..', `storage: key ".." has a '.' or '..' segment`],
    ['../etc/passwd', `storage: key "../etc/passwd" has a '.' or '..' segment`],
    ['vod/../../x', `storage: key "vod/../../x" has a '.' or '..' segment`],
    ['vod/./x', `storage: key "vod/./x" has a '.' or '..' segment`],
    ['/etc/passwd', `storage: key "/etc/passwd" is absolute (keys are relative: no leading '/')`],
    ['vod\\..\\x', `storage: key "vod\\\\..\\\\x" contains a backslash (use '/' between segments)`],
    ['vod/a\0b', 'storage: key "vod/a\\u0000b" contains a NUL character'],
    ['vod//x', `storage: key "vod//x" has an empty segment (a leading '/' or '//')`],
    ['vod/', `storage: key "vod/" ends with '/' (that names a folder, not an object)`],
    [
      'vod/.hidden',
      'storage: key "vod/.hidden" may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot',
    ],
    ['vod/a b', 'storage: key "vod/a b" may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot'],
    ['vod/é', 'storage: key "vod/é" may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot'],
    ['vod/a?b', 'storage: key "vod/a?b" may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot'],
    ['C:/x', 'storage: key "C:/x" may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot'],
    ['a%2F..', 'storage: key "a%2F.." may hold only letters, digits and . _ - = in each segment, and no segment may start with a dot'],
  ])('refuses %j', (key, message) => {
    expect(rejection(() => validateKey(key))).toBe(message);
  });

  it('refuses keys and segments that are too long, showing only the start of the key', () => {
    const long = 'a'.repeat(MAX_KEY_LENGTH + 1);
    expect(rejection(() => validateKey(long))).toBe(`storage: key "${'a'.repeat(80)}"... is longer than 1024 characters`);
    expect(rejection(() => validateKey(`x/${'b'.repeat(MAX_SEGMENT_LENGTH + 1)}`))).toContain(
      `has a segment longer than ${MAX_SEGMENT_LENGTH} characters`,
    );
  });

  it('refuses what is not a string', () => {
    expect(rejection(() => validateKey(undefined))).toBe('storage: key must be a string');
    expect(rejection(() => validateKey(42))).toBe('storage: key must be a string');
  });
});

describe('validatePrefix', () => {
  it.each(['', 'vod/', 'vod/ab', 'vod', 'vod/asset/720p/seg-'])('accepts %j', (prefix) => {
    expect(validatePrefix(prefix)).toBe(prefix);
  });

  it.each([
    ['/vod/', 'is absolute'],
    ['../', "has a '.' or '..' segment"],
    ['vod/..', "has a '.' or '..' segment"],
    ['vod//', 'has an empty segment'],
    ['vod/.', "has a '.' or '..' segment"],
    ['vod/.tmp', 'no segment may start with a dot'],
    ['a\\b/', 'contains a backslash'],
  ])('refuses %j', (prefix, why) => {
    expect(rejection(() => validatePrefix(prefix))).toContain(why);
  });
});
