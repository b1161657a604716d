import { describe, expect, it } from 'vitest';
import { DEFAULT_LADDER, validateLadder, type LadderPlan, type MediaFrame } from '../../src/core/index.js';
import { FIT_TIMING, FrameHold, GopBitrateMeter, LadderFit, planChanged, type FitStep } from '../../src/livetranscode/index.js';

const HD = { width: 1280, height: 720 };

/**
 * Video frames of a synthetic source at `kbps` (30 fps unless said): every GOP carries exactly its share
 * of the bits, 30 % of them in its keyframe. `from` is the first frame's index (timestamps go on).
 */
function video(opts: { kbps: number; seconds: number; gop?: number; fps?: number; from?: number }): MediaFrame[] {
  const fps = opts.fps ?? 30;
  const gop = opts.gop ?? 30;
  const gopBytes = (opts.kbps * 1000 * gop) / fps / 8;
  const key = Math.round(gopBytes * 0.3);
  const other = Math.round((gopBytes - key) / (gop - 1));
  const out: MediaFrame[] = [];
  const from = opts.from ?? 0;
  for (let n = from; n < from + opts.seconds * fps; n++) {
    const dts = Math.round((n * 90_000) / fps);
    const keyframe = n % gop === 0;
    out.push({ track: 'video', dts, pts: dts, keyframe, data: new Uint8Array(keyframe ? key : other), wallClock: 0 });
  }
  return out;
}

/** Feed frames; the index and time (ms) of each step the fit took. */
function feed(fit: LadderFit, frames: MediaFrame[]): Array<{ step: FitStep; atMs: number }> {
  const steps: Array<{ step: FitStep; atMs: number }> = [];
  for (const f of frames) {
    const step = fit.video(f);
    if (step) steps.push({ step, atMs: Math.round(f.dts / 90) });
  }
  return steps;
}

const kbpsOf = (plan: LadderPlan | undefined) => plan?.rungs.map((r) => `${r.name}@${r.videoBitrateKbps}`);

describe('GopBitrateMeter', () => {
  it('measures over whole GOPs: exact at every keyframe, never inflated by a keyframe just counted', () => {
    const m = new GopBitrateMeter();
    for (const f of video({ kbps: 800, seconds: 2.5 })) m.add(f);
    // Two whole GOPs (0-1 s, 1-2 s); the half GOP after the keyframe at 2 s is not counted yet.
    expect(m.wholeMs).toBe(2000);
    expect(m.kbps).toBeCloseTo(800, 0);
    expect(m.spanMs).toBeCloseTo(2467, 0);
  });

  it('before a second keyframe, measures what it has (a long GOP)', () => {
    const m = new GopBitrateMeter();
    expect(m.kbps).toBeUndefined();
    for (const f of video({ kbps: 1000, seconds: 3, gop: 300 })) m.add(f);
    expect(m.wholeMs).toBe(0);
    // The keyframe is in it, the GOP's other frames not yet all: above the GOP's rate, as expected.
    expect(m.kbps).toBeGreaterThan(1000);
  });

  it('starts at the first keyframe', () => {
    const m = new GopBitrateMeter();
    const frames = video({ kbps: 800, seconds: 3 });
    for (const f of frames.slice(10)) m.add(f); // joins mid-GOP: frames 10-29 are ignored
    expect(m.wholeMs).toBe(1000);
    expect(m.kbps).toBeCloseTo(800, 0);
  });
});

describe('LadderFit: the default ladder', () => {
  it('plans once 2 s of whole GOPs are measured, and keeps the plan when the settled bitrate is close', () => {
    const fit = new LadderFit(DEFAULT_LADDER, HD, { custom: false });
    expect(fit.phase).toBe('measuring');
    expect(fit.plan).toBeUndefined();
    expect(fit.candidates.map((r) => r.name)).toEqual(['480p', '360p']);
    const steps = feed(fit, [...video({ kbps: 800, seconds: 4 }), ...video({ kbps: 880, seconds: 6, from: 120 })]);
    // The keyframe at 2 s completes two GOPs: the first plan; the settled one (6 s at 827) is within 20 %.
    expect(steps).toEqual([{ step: 'plan', atMs: 2000 }]);
    expect(fit.phase).toBe('settled');
    expect(kbpsOf(fit.plan)).toEqual(['480p@435', '360p@283']);
    expect(fit.sourceKbps).toBe(827);
  });

  it('re-plans once when the settled bitrate is more than 20 % away, then never again', () => {
    const fit = new LadderFit(DEFAULT_LADDER, HD, { custom: false });
    const frames = [...video({ kbps: 800, seconds: 2 }), ...video({ kbps: 2500, seconds: 20, from: 60 })];
    const steps = feed(fit, frames);
    expect(steps).toEqual([
      { step: 'plan', atMs: 2000 },
      { step: 'replan', atMs: FIT_TIMING.settleMs },
    ]);
    // 6 s: 2 at 800 and 4 at 2500 -> 1933 kb/s.
    expect(fit.sourceKbps).toBe(1933);
    expect(kbpsOf(fit.plan)).toEqual(['480p@1052', '360p@683']);
  });

  it('with a long GOP, plans after the longest hold from what it has, and settles after twice the settle time', () => {
    const fit = new LadderFit(DEFAULT_LADDER, HD, { custom: false });
    const steps = feed(fit, video({ kbps: 800, seconds: 14, gop: 600 }));
    expect(steps[0]).toEqual({ step: 'plan', atMs: FIT_TIMING.holdMaxMs });
    expect(fit.phase).toBe('settled');
  });

  it('a source with no rung below it needs no measuring: planned at once, with no rungs', () => {
    const fit = new LadderFit(DEFAULT_LADDER, { width: 640, height: 360 }, { custom: false });
    expect(fit.phase).toBe('estimated');
    expect(fit.plan).toEqual({ rungs: [], omitted: [], warnings: [] });
  });

  it('a settled plan that leaves out a rung is a change', () => {
    const fit = new LadderFit(DEFAULT_LADDER, { width: 960, height: 540 }, { custom: false });
    const steps = feed(fit, [...video({ kbps: 3000, seconds: 2 }), ...video({ kbps: 1000, seconds: 10, from: 60 })]);
    expect(steps.map((s) => s.step)).toEqual(['plan', 'replan']);
    // First 3000 kb/s: 480p@1400 and 360p@800; settled at 1667 kb/s 480p would be 1397, within 20 % of it.
    expect(fit.sourceKbps).toBe(1667);
    expect(kbpsOf(fit.plan)).toEqual(['360p@800']);
    expect(fit.plan!.omitted.map((o) => o.name)).toEqual(['480p']);
  });
});

describe('LadderFit: a custom ladder', () => {
  const custom = validateLadder([{ height: 480, videoBitrateKbps: 1400 }]);

  it('is planned at once as it is (FFmpeg need not wait), and only its warnings follow the measurements', () => {
    const fit = new LadderFit(custom, HD, { custom: true });
    expect(fit.phase).toBe('estimated');
    expect(fit.plan).toEqual({ rungs: custom, omitted: [], warnings: [] });
    expect(feed(fit, video({ kbps: 800, seconds: 10 }))).toEqual([]);
    expect(fit.phase).toBe('settled');
    expect(fit.plan!.rungs).toEqual(custom);
    expect(fit.sourceKbps).toBe(800);
    expect(fit.plan!.warnings).toEqual([expect.stringContaining('rung "480p" is set to 1400 kb/s, more than the source\'s 800 kb/s')]);
  });
});

describe('planChanged', () => {
  const plan = (...rungs: Array<[string, number]>): LadderPlan => ({
    rungs: rungs.map(([name, kbps]) => ({
      name,
      height: Number.parseInt(name, 10),
      videoBitrateKbps: kbps,
      maxFrameRate: 30,
      encoder: 'libx264',
    })),
    omitted: [],
    warnings: [],
  });

  it('is a change when a rung moves by more than 20 %, comes or goes', () => {
    const a = plan(['480p', 1000], ['360p', 500]);
    expect(planChanged(a, plan(['480p', 1200], ['360p', 400]))).toBe(false);
    expect(planChanged(a, plan(['480p', 1201], ['360p', 500]))).toBe(true);
    expect(planChanged(a, plan(['480p', 1000], ['360p', 399]))).toBe(true);
    expect(planChanged(a, plan(['480p', 1000]))).toBe(true);
    expect(planChanged(a, plan(['480p', 1000], ['240p', 500]))).toBe(true);
    expect(planChanged(a, a)).toBe(false);
  });
});

describe('FrameHold', () => {
  const audio = (ms: number): MediaFrame => ({
    track: 'audio',
    dts: ms * 90,
    pts: ms * 90,
    keyframe: true,
    data: new Uint8Array(10),
    wallClock: 0,
  });

  it('starts at a video keyframe and keeps everything after it in order', () => {
    const hold = new FrameHold(undefined);
    const v = video({ kbps: 800, seconds: 2 });
    hold.push(v[29]); // not a keyframe: FFmpeg could not start there
    hold.push(audio(990));
    expect(hold.length).toBe(0);
    hold.push(v[30]);
    hold.push(audio(1000));
    hold.push(v[31]);
    expect(hold.take().map((f) => `${f.track}@${Math.round(f.dts / 90)}`)).toEqual(['video@1000', 'audio@1000', 'video@1033']);
    expect(hold.length).toBe(0);
  });

  it('is bounded in media time: past it, it starts again at the next keyframe', () => {
    const hold = new FrameHold(undefined, 3000);
    for (const f of video({ kbps: 800, seconds: 4.5 })) hold.push(f);
    const kept = hold.take();
    expect(Math.round(kept[0].dts / 90)).toBe(4000);
    expect(kept).toHaveLength(15);
  });
});
