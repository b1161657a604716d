/** Order statistics for bench samples. */
export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** The q-quantile (0..1) of ascending `sorted`, linearly interpolated between the closest ranks. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : Number.NaN;
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: quantile(s, 0.5),
    p95: quantile(s, 0.95),
    p99: quantile(s, 0.99),
    max: s[s.length - 1] ?? Number.NaN,
    mean,
  };
}

/** Round every number of a summary for printing and JSON (ms or s alike). */
export function rounded(s: Summary, digits: number): Summary {
  const r = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);
  return { n: s.n, min: r(s.min), p50: r(s.p50), p95: r(s.p95), p99: r(s.p99), max: r(s.max), mean: r(s.mean) };
}
