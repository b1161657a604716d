import { describe, expect, it } from 'vitest';
import {
  AppError,
  DEFAULT_LADDER,
  LADDER_FIT,
  planLadder,
  rungCapKbps,
  rungsFor,
  validateLadder,
  type LadderRung,
} from '../../src/core/index.js';

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
    [
      'too many rungs',
      [144, 240, 360, 480, 720, 1080, 1440].map((height) => ({ height, videoBitrateKbps: 500 })),
      'ladder: at most 6 rungs',
    ],
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
    [
      'the problem in the third rung',
      [ok, { height: 360, videoBitrateKbps: 800 }, { height: 240, videoBitrateKbps: 5 }],
      'ladder[2].videoBitrateKbps:',
    ],
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

/** name@kbps of every rung of a plan, highest first. */
const planned = (rungs: readonly LadderRung[]) => rungs.map((r) => `${r.name}@${r.videoBitrateKbps}`);
const SIZES = { '720p': { width: 1280, height: 720 }, '1080p': { width: 1920, height: 1080 } } as const;

describe('planLadder: the default ladder fitted to the source', () => {
  it('caps each rung at source kbps x (rung pixels / source pixels)^0.75', () => {
    expect(LADDER_FIT.pixelExponent).toBe(0.75);
    // (480/720)^2 = 0.444 of the pixels -> 0.544 of the bits; (360/720)^2 = 0.25 -> 0.354.
    expect(rungCapKbps(800, 480, 720)).toBeCloseTo(435.5, 1);
    expect(rungCapKbps(800, 360, 720)).toBeCloseTo(282.8, 1);
    expect(rungCapKbps(2500, 720, 1080)).toBeCloseTo(1360.8, 1);
  });

  // The table in README "ABR ladder": kb/s of video of the source -> the rungs it gets.
  const table: Array<[keyof typeof SIZES, number, string[]]> = [
    ['720p', 800, ['480p@435', '360p@283']],
    ['720p', 2500, ['480p@1361', '360p@800']],
    ['720p', 6000, ['480p@1400', '360p@800']],
    ['1080p', 800, ['720p@435', '480p@237', '360p@154']],
    ['1080p', 2500, ['720p@1361', '480p@741', '360p@481']],
    ['1080p', 6000, ['720p@2800', '480p@1400', '360p@800']],
  ];
  it.each(table)('%s at %i kb/s -> %j', (size, kbps, want) => {
    const plan = planLadder(DEFAULT_LADDER, { ...SIZES[size], videoKbps: kbps }, { custom: false });
    expect(planned(plan.rungs)).toEqual(want);
    expect(plan.omitted).toEqual([]);
    expect(plan.warnings).toEqual([]);
  });

  it("keeps the ladder as it is for a source at the ladder's own rate for its height", () => {
    const plan = planLadder(DEFAULT_LADDER, { ...SIZES['720p'], videoKbps: 2800 }, { custom: false });
    expect(plan.rungs).toEqual(DEFAULT_LADDER.slice(2));
  });

  it('keeps the ladder as it is while the source is not measured', () => {
    expect(planLadder(DEFAULT_LADDER, { ...SIZES['1080p'], videoKbps: undefined }, { custom: false }).rungs).toEqual(
      DEFAULT_LADDER.slice(1),
    );
  });

  it('leaves out a rung within 20 % of the source above it: 540p at 1.5 Mb/s gets no 480p', () => {
    const plan = planLadder(DEFAULT_LADDER, { width: 960, height: 540, videoKbps: 1500 }, { custom: false });
    expect(planned(plan.rungs)).toEqual(['360p@800']);
    expect(plan.omitted).toEqual([{ name: '480p', reason: '1257 kb/s would be within 20 % of "source" above it (1500 kb/s)' }]);
  });

  it('leaves out a rung within 20 % of the rung above it: at 300 kb/s, 480p and 360p both floor at 100 kb/s', () => {
    const plan = planLadder(DEFAULT_LADDER, { ...SIZES['1080p'], videoKbps: 300 }, { custom: false });
    expect(planned(plan.rungs)).toEqual(['720p@163', '480p@100']);
    expect(plan.omitted).toEqual([{ name: '360p', reason: '100 kb/s would be within 20 % of "480p" above it (100 kb/s)' }]);
  });

  it('keeps the rest of each rung as the ladder has it (name, height, frame rate, encoder)', () => {
    const plan = planLadder(DEFAULT_LADDER, { ...SIZES['720p'], videoKbps: 800 }, { custom: false });
    expect(plan.rungs[0]).toEqual({ ...DEFAULT_LADDER[2], videoBitrateKbps: 435 });
  });

  it('judges a portrait source by its short side', () => {
    const plan = planLadder(DEFAULT_LADDER, { width: 720, height: 1280, videoKbps: 800 }, { custom: false });
    expect(planned(plan.rungs)).toEqual(['480p@435', '360p@283']);
  });

  it('always gives bitrates that strictly rise with resolution, each rung under 80 % of the one above, the source on top', () => {
    const ladders = [
      DEFAULT_LADDER,
      // Rungs close together, and out of order by bitrate: the fit still keeps the rule.
      validateLadder([
        { height: 1440, videoBitrateKbps: 9000 },
        { height: 1080, videoBitrateKbps: 6000 },
        { height: 900, videoBitrateKbps: 6500 },
        { height: 720, videoBitrateKbps: 3000 },
        { height: 540, videoBitrateKbps: 2900 },
        { height: 240, videoBitrateKbps: 100 },
      ]),
    ];
    let checked = 0;
    for (const ladder of ladders) {
      for (const height of [240, 360, 480, 540, 720, 900, 1080, 1440, 2160]) {
        for (let kbps = 100; kbps <= 40_000; kbps = Math.ceil(kbps * 1.17)) {
          const plan = planLadder(ladder, { width: Math.round((height * 16) / 9), height, videoKbps: kbps }, { custom: false });
          let above = { height, kbps };
          for (const r of plan.rungs) {
            expect(r.height, `${height}p@${kbps}`).toBeLessThan(above.height);
            expect(r.videoBitrateKbps, `${height}p@${kbps}: ${planned(plan.rungs).join(' ')}`).toBeLessThan(
              LADDER_FIT.maxStep * above.kbps,
            );
            above = { height: r.height, kbps: r.videoBitrateKbps };
            checked++;
          }
          expect(plan.rungs.length + plan.omitted.length).toBe(rungsFor(ladder, { width: Math.round((height * 16) / 9), height }).length);
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });
});

describe('planLadder: a custom ladder is kept and warned about', () => {
  const custom = validateLadder([
    { height: 480, videoBitrateKbps: 1400 },
    { height: 360, videoBitrateKbps: 600 },
  ]);

  it("keeps its explicit bitrates and warns of a rung above the source's video bitrate", () => {
    const plan = planLadder(custom, { ...SIZES['720p'], videoKbps: 800 }, { custom: true });
    expect(plan.rungs).toEqual(custom);
    expect(plan.omitted).toEqual([]);
    expect(plan.warnings).toEqual([
      'rung "480p" is set to 1400 kb/s, more than the source\'s 800 kb/s of video: it costs more bandwidth than the source for less picture',
    ]);
  });

  it('warns of a rung that is not below the rung above it', () => {
    const ladder = validateLadder([
      { height: 480, videoBitrateKbps: 700 },
      { height: 360, videoBitrateKbps: 700 },
    ]);
    expect(planLadder(ladder, { ...SIZES['720p'], videoKbps: 2500 }, { custom: true }).warnings).toEqual([
      'rung "360p" is set to 700 kb/s, not less than "480p" above it (700 kb/s): players that rank rungs by bandwidth put it above',
    ]);
  });

  it('has nothing to warn of for a source that carries more, or that is not measured yet', () => {
    expect(planLadder(custom, { ...SIZES['720p'], videoKbps: 2500 }, { custom: true }).warnings).toEqual([]);
    expect(planLadder(custom, { ...SIZES['720p'], videoKbps: undefined }, { custom: true })).toEqual({
      rungs: custom,
      omitted: [],
      warnings: [],
    });
  });
});
