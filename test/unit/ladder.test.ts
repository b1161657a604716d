import { describe, expect, it } from 'vitest';
import { AppError, DEFAULT_LADDER, rungsFor, validateLadder, type LadderRung } from '../../src/core/index.js';

/** The AppError that validateLadder throws for `input` (fails the test if it does not throw one). */
function rejection(input: unknown): AppError {
  try {
    validateLadder(input);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error(`validateLadder accepted ${JSON.stringify(input)}`);
}

const names = (rungs: readonly LadderRung[]) => rungs.map((r) => r.name);

describe('validateLadder', () => {
  it('fills the defaults: name from the height, 60 fps cap, libx264', () => {
    expect(validateLadder([{ height: 540, videoBitrateKbps: 2000 }])).toEqual([
      { name: '540p', height: 540, videoBitrateKbps: 2000, maxFrameRate: 60, encoder: 'libx264' },
    ]);
  });

  it('keeps what was given', () => {
    const rung = { name: 'low_1', height: 288, videoBitrateKbps: 400, maxFrameRate: 29.97, encoder: 'h264_nvenc' };
    expect(validateLadder([rung])).toEqual([rung]);
  });

  it('sorts the rungs from the highest to the lowest', () => {
    const out = validateLadder([
      { height: 360, videoBitrateKbps: 800 },
      { height: 1080, videoBitrateKbps: 5000 },
      { height: 480, videoBitrateKbps: 1400 },
      { height: 720, videoBitrateKbps: 2800 },
    ]);
    expect(out.map((r) => r.height)).toEqual([1080, 720, 480, 360]);
    expect(names(out)).toEqual(['1080p', '720p', '480p', '360p']);
  });

  it('accepts the default ladder as it is', () => {
    expect(validateLadder(DEFAULT_LADDER)).toEqual(DEFAULT_LADDER);
  });

  it('accepts the limits themselves', () => {
    const out = validateLadder([
      { name: 'a'.repeat(32), height: 4320, videoBitrateKbps: 50_000, maxFrameRate: 120 },
      { height: 144, videoBitrateKbps: 100, maxFrameRate: 1 },
    ]);
    expect(out.map((r) => r.height)).toEqual([4320, 144]);
  });

  const ok = { height: 480, videoBitrateKbps: 1400 };
  const cases: [string, unknown, string][] = [
    ['not a list', { height: 480 }, 'ladder: must be a list'],
    ['null', null, 'ladder: must be a list'],
    ['empty', [], 'ladder: must have at least one rung'],
    ['too many rungs', [144, 240, 360, 480, 720, 1080, 1440].map((height) => ({ height, videoBitrateKbps: 500 })), 'ladder: at most 6 rungs'],
    ['a rung that is not an object', [ok, 'x'], 'ladder[1]: must be an object'],
    ['a rung that is an array', [[480, 1400]], 'ladder[0]: must be an object'],
    ['an unknown field', [{ ...ok, bitrate: 1 }], 'ladder[0].bitrate: unknown field'],
    ['no height', [{ videoBitrateKbps: 1400 }], 'ladder[0].height: must be an even integer between 144 and 4320'],
    ['an odd height', [{ ...ok, height: 481 }], 'ladder[0].height: must be an even integer'],
    ['a fractional height', [{ ...ok, height: 480.5 }], 'ladder[0].height:'],
    ['a height as text', [{ ...ok, height: '480' }], 'ladder[0].height:'],
    ['a height below the limit', [{ ...ok, height: 142 }], 'ladder[0].height:'],
    ['a height above the limit', [{ ...ok, height: 4322 }], 'ladder[0].height:'],
    ['a name with upper case', [{ ...ok, name: 'Low' }], 'ladder[0].name: must be 1-32 characters'],
    ['an empty name', [{ ...ok, name: '' }], 'ladder[0].name:'],
    ['a name of 33 characters', [{ ...ok, name: 'a'.repeat(33) }], 'ladder[0].name:'],
    ['a name starting with "-"', [{ ...ok, name: '-low' }], 'ladder[0].name:'],
    ['a name with a slash', [{ ...ok, name: 'a/b' }], 'ladder[0].name:'],
    ['the name "source"', [{ ...ok, name: 'source' }], 'ladder[0].name: "source" is the name of the untouched top rung'],
    ['a duplicate name', [ok, { height: 360, videoBitrateKbps: 800, name: '480p' }], 'ladder[1].name: "480p" is used by another rung'],
    ['a duplicate height', [ok, { ...ok, name: 'other' }], 'ladder[1].height: another rung already has height 480'],
    ['no bitrate', [{ height: 480 }], 'ladder[0].videoBitrateKbps: must be an integer between 100 and 50000'],
    ['a bitrate below the limit', [{ ...ok, videoBitrateKbps: 99 }], 'ladder[0].videoBitrateKbps:'],
    ['a bitrate above the limit', [{ ...ok, videoBitrateKbps: 50_001 }], 'ladder[0].videoBitrateKbps:'],
    ['a fractional bitrate', [{ ...ok, videoBitrateKbps: 1400.5 }], 'ladder[0].videoBitrateKbps:'],
    ['a frame rate of 0', [{ ...ok, maxFrameRate: 0 }], 'ladder[0].maxFrameRate: must be a number between 1 and 120'],
    ['a frame rate above the limit', [{ ...ok, maxFrameRate: 121 }], 'ladder[0].maxFrameRate:'],
    ['an infinite frame rate', [{ ...ok, maxFrameRate: Infinity }], 'ladder[0].maxFrameRate:'],
    ['a frame rate as text', [{ ...ok, maxFrameRate: '30' }], 'ladder[0].maxFrameRate:'],
    ['an unknown encoder', [{ ...ok, encoder: 'libx265' }], 'ladder[0].encoder: must be one of libx264, h264_nvenc, h264_qsv, h264_vaapi'],
    ['the problem in the third rung', [ok, { height: 360, videoBitrateKbps: 800 }, { height: 240, videoBitrateKbps: 5 }], 'ladder[2].videoBitrateKbps:'],
  ];
  it.each(cases)('rejects %s with E_VALIDATION naming the field', (_what, input, message) => {
    const err = rejection(input);
    expect(err.code).toBe('E_VALIDATION');
    expect(err.status).toBe(400);
    expect(err.message.startsWith(message)).toBe(true);
  });
});

describe('rungsFor', () => {
  it('720p source: 480p and 360p (the source itself is the top rung)', () => {
    expect(names(rungsFor(DEFAULT_LADDER, { width: 1280, height: 720 }))).toEqual(['480p', '360p']);
  });

  it('1080p source: 720p, 480p and 360p', () => {
    expect(names(rungsFor(DEFAULT_LADDER, { width: 1920, height: 1080 }))).toEqual(['720p', '480p', '360p']);
  });

  it('360p source: nothing (no upscaling, no copy of the source)', () => {
    expect(rungsFor(DEFAULT_LADDER, { width: 640, height: 360 })).toEqual([]);
  });

  it('a source between rungs gets the rungs below it', () => {
    expect(names(rungsFor(DEFAULT_LADDER, { width: 960, height: 540 }))).toEqual(['480p', '360p']);
  });

  it('portrait 720x1280: judged by the short side, 480p and 360p', () => {
    expect(names(rungsFor(DEFAULT_LADDER, { width: 720, height: 1280 }))).toEqual(['480p', '360p']);
  });

  it('never includes a rung of the source’s own height', () => {
    const ladder = validateLadder([
      { height: 1080, videoBitrateKbps: 4500 },
      { height: 720, videoBitrateKbps: 2500 },
    ]);
    expect(names(rungsFor(ladder, { width: 1920, height: 1080 }))).toEqual(['720p']);
  });

  it('an unknown width falls back to the height', () => {
    expect(names(rungsFor(DEFAULT_LADDER, { width: 0, height: 720 }))).toEqual(['480p', '360p']);
  });
});
