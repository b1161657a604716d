import { describe, expect, it } from 'vitest';
import { LoadGovernor, type GovernorOptions, type LoadSample } from '../../src/livetranscode/index.js';

const OPTS: GovernorOptions = {
  minSpeed: 0.9,
  maxLagMs: 2000,
  slowForMs: 5000,
  warmupMs: 3000,
  restoreAfterMs: 60_000,
  restoreIdle: 0.35,
};

const GOOD: LoadSample = { speed: 1, lagMs: 100 };
const SLOW: LoadSample = { speed: 0.5, lagMs: 100 };
const LAGGING: LoadSample = { speed: 1, lagMs: 2500 };

/** Samples every `step` ms from `from` to `to` inclusive; the times at which a drop was decided. */
function feed(g: LoadGovernor, from: number, to: number, s: LoadSample, step = 500): number[] {
  const drops: number[] = [];
  for (let t = from; t <= to; t += step) if (g.sample(t, s)) drops.push(t);
  return drops;
}

/** A governor that has just dropped a rung at `at` (run started at 0). */
function droppedAt(at: number): LoadGovernor {
  const g = new LoadGovernor(OPTS);
  g.runStarted(0);
  expect(g.sample(at - OPTS.slowForMs, SLOW)).toBe(false);
  expect(g.sample(at, SLOW)).toBe(true);
  return g;
}

describe('LoadGovernor: dropping a rung', () => {
  it('makes no decision during the warm-up, however slow', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(10_000);
    expect(feed(g, 10_000, 12_999, { speed: 0.01, lagMs: 60_000 }, 1)).toEqual([]);
  });

  it('does not count slowness seen during the warm-up', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    // Slow from t=0 on: the clock starts at the end of the warm-up (3000), so the drop comes at 8000.
    expect(feed(g, 0, 12_000, SLOW)).toEqual([8000]);
  });

  it('drops after slowForMs of continuous slowness, not a millisecond before', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(g.sample(10_000, SLOW)).toBe(false);
    expect(g.sample(14_999, SLOW)).toBe(false);
    expect(g.sample(15_000, SLOW)).toBe(true);
  });

  it('counts lag above maxLagMs as slow, even at full speed', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 10_000, LAGGING)).toEqual([10_000]);
  });

  it('is not slow exactly at the thresholds', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 30_000, { speed: 0.9, lagMs: 2000 })).toEqual([]);
  });

  it('judges whatever is known when speed or lag is missing', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 30_000, { speed: undefined, lagMs: undefined })).toEqual([]);
    expect(feed(g, 31_000, 36_000, { speed: undefined, lagMs: 5000 })).toEqual([36_000]);
    expect(feed(g, 40_000, 45_000, { speed: 0.2, lagMs: undefined })).toEqual([45_000]);
  });

  it('a good sample in between starts the count again', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 9000, SLOW)).toEqual([]);
    expect(g.sample(9500, GOOD)).toBe(false);
    // Slow again from 10 000: 4 s of earlier slowness no longer count.
    expect(feed(g, 10_000, 14_500, SLOW)).toEqual([]);
    expect(g.sample(15_000, SLOW)).toBe(true);
  });

  it('after a drop, the next one needs another slowForMs', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 21_000, SLOW)).toEqual([10_000, 15_500, 21_000]);
  });

  it('a new run is warmed up and judged afresh', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    expect(feed(g, 5000, 9000, SLOW)).toEqual([]);
    g.runStarted(9000);
    // Warm-up until 12 000, then 5 s of slowness: 17 000.
    expect(feed(g, 9000, 20_000, SLOW)).toEqual([17_000]);
  });
});

describe('LoadGovernor: restoring a dropped rung', () => {
  it('never restores when nothing was dropped', () => {
    const g = new LoadGovernor(OPTS);
    g.runStarted(0);
    feed(g, 0, 100_000, GOOD, 1000);
    expect(g.canRestore(100_000, 1, true)).toBe(false);
    expect(g.canRestore(100_000, 1, false)).toBe(false);
  });

  it('waits restoreAfterMs after the drop', () => {
    const g = droppedAt(10_000);
    expect(g.canRestore(69_999, 0.9, false)).toBe(false);
    expect(g.canRestore(70_000, 0.9, false)).toBe(true);
  });

  it('needs the CPU at least restoreIdle idle, and a known idle figure', () => {
    const g = droppedAt(10_000);
    expect(g.canRestore(80_000, 0.34, false)).toBe(false);
    expect(g.canRestore(80_000, undefined, false)).toBe(false);
    expect(g.canRestore(80_000, 0.35, false)).toBe(true);
  });

  it('while an FFmpeg runs, needs it keeping up for slowForMs', () => {
    const g = droppedAt(10_000);
    g.runStarted(10_000); // restarted without the dropped rung
    expect(g.canRestore(80_000, 0.9, true)).toBe(false); // no sample since: not known to keep up
    expect(feed(g, 13_000, 16_000, SLOW)).toEqual([]); // slow, though not yet for long enough to drop
    expect(g.canRestore(90_000, 0.9, true)).toBe(false);
    expect(g.sample(91_000, GOOD)).toBe(false);
    expect(g.canRestore(95_999, 0.9, true)).toBe(false);
    expect(g.canRestore(96_000, 0.9, true)).toBe(true);
    // A slow sample ends the good spell.
    g.sample(96_500, SLOW);
    expect(g.canRestore(120_000, 0.9, true)).toBe(false);
  });

  it('while keeping up, a restart starts the good spell again', () => {
    const g = droppedAt(10_000);
    g.runStarted(10_000);
    feed(g, 13_000, 80_000, GOOD, 1000);
    expect(g.canRestore(80_000, 0.9, true)).toBe(true);
    g.runStarted(80_000);
    expect(g.canRestore(80_000, 0.9, true)).toBe(false);
  });

  it('restored() makes the next restore wait restoreAfterMs again', () => {
    const g = droppedAt(10_000);
    expect(g.canRestore(70_000, 0.9, false)).toBe(true);
    g.restored(70_000);
    expect(g.canRestore(70_000, 0.9, false)).toBe(false);
    expect(g.canRestore(129_999, 0.9, false)).toBe(false);
    expect(g.canRestore(130_000, 0.9, false)).toBe(true);
  });

  it('a later drop pushes the restore out', () => {
    const g = droppedAt(10_000);
    g.runStarted(10_000);
    expect(feed(g, 13_000, 18_000, SLOW)).toEqual([18_000]);
    expect(g.canRestore(70_000, 0.9, false)).toBe(false);
    expect(g.canRestore(78_000, 0.9, false)).toBe(true);
  });
});
