import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import type { MachineCpu } from './cpu.js';
import { gitCommit, resultsDir, writeResults } from './results.js';

/**
 * What the ramp benches (density, fan-out) share: two cores split between the thing measured and the load
 * that drives it, their command line, provenance and report. The server and its streams are in
 * ramp-server.ts, viewer pools and measured windows in ramp-window.ts.
 */

/** The server (or nginx) runs alone on this core... */
export const SERVER_CORE = '0';
/** ...and everything that loads it (publishers, viewers, this process) on this one. */
export const LOAD_CORE = '1';
/** A core this busy over a window is saturated: what runs on it is the limit, not the server. */
export const SATURATED_PERCENT = 95;

// ---- command line ----

interface IntSpec {
  readonly default: number;
  readonly min: number;
  readonly max: number;
}

/**
 * Whole-number options (`ints`) and comma-separated lists of them (`lists`). Prints `usage` and exits 2 on
 * anything else, 0 for --help. (parseBenchCli in run.ts takes only --seconds, --warmup and fixed choices.)
 */
export function parseRampCli<K extends string, L extends string = never>(
  usage: string,
  ints: Record<K, IntSpec>,
  lists: Record<L, IntSpec & { readonly default: number }> = {} as Record<L, IntSpec>,
): Record<K, number> & Record<L, number[]> {
  const fail = (msg?: string, code = 2): never => {
    if (msg) console.error(msg);
    (code === 0 ? console.log : console.error)(`usage: ${usage}`);
    process.exit(code);
  };
  const names = [...Object.keys(ints), ...Object.keys(lists)];
  let values: Record<string, string | boolean | undefined> = {};
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
    for (const k of names) options[k] = { type: 'string' };
    ({ values } = parseArgs({ options }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) fail(undefined, 0);
  const whole = (name: string, raw: string, s: IntSpec) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < s.min || n > s.max) fail(`--${name} must be a whole number from ${s.min} to ${s.max}`);
    return n;
  };
  const out: Record<string, number | number[]> = {};
  for (const [k, s] of Object.entries<IntSpec>(ints)) {
    const raw = values[k] as string | undefined;
    out[k] = raw === undefined ? s.default : whole(k, raw, s);
  }
  for (const [k, s] of Object.entries<IntSpec>(lists)) {
    const raw = values[k] as string | undefined;
    const list = raw === undefined ? [] : raw.split(',').map((x) => whole(k, x.trim(), s));
    if (raw !== undefined && list.some((n, i) => i > 0 && n <= list[i - 1])) fail(`--${k} must be increasing`);
    out[k] = list;
  }
  return out as Record<K, number> & Record<L, number[]>;
}

// ---- provenance ----

export interface Provenance {
  readonly date: string;
  readonly commit: string;
  readonly command: string;
  readonly machine: { cores: number; memoryGiB: number; cpuModel: string; node: string; platform: string };
}

export async function provenance(startedAt: Date, npmScript: string, repoRoot: string): Promise<Provenance> {
  const commit = gitCommit(repoRoot);
  const args = process.argv.slice(2);
  return {
    date: startedAt.toISOString(),
    commit,
    command: `npm run ${npmScript}${args.length ? ` -- ${args.join(' ')}` : ''}`,
    machine: {
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
    },
  };
}

export function printProvenance(title: string, p: Provenance): void {
  const m = p.machine;
  console.log(`\n${title}  ${p.date}  commit ${p.commit}`);
  console.log(`  machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.platform}, node ${m.node}`);
  console.log(`  command: ${p.command}`);
}

/** The ramp benches split the machine in two; on one core they would measure nothing useful. */
export function requireTwoCores(): void {
  if (cpus().length < 2)
    throw new Error(
      `this bench pins the server to core ${SERVER_CORE} and its load to core ${LOAD_CORE}: it needs 2 cores, found ${cpus().length}`,
    );
}

/** The counters of one core (the "cpuN" line of /proc/stat), clock ticks. */
export function coreCpu(core: string): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) throw new Error(`no cpu${core} in /proc/stat`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = user + nice + system + idle + iowait + irq + softirq + (steal || 0);
  return { busy: total - idle - iowait, total };
}

// ---- numbers and the report ----

export const round = (x: number, d: number) => (Number.isFinite(x) ? Number(x.toFixed(d)) : x);
export const mb = (bytes: number | undefined) => (bytes === undefined ? undefined : round(bytes / 2 ** 20, 1));

/** Least-squares slope and intercept of y over x; NaN with fewer than two distinct x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): { slope: number; intercept: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : Number.NaN;
  return { slope, intercept: my - slope * mx };
}

/** A fixed-width table: right-aligned columns, one header line. */
export function printTable(headers: readonly string[], rows: readonly (readonly (string | number | undefined)[])[]): void {
  const cell = (v: string | number | undefined) => (v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '-' : String(v));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => cell(r[i]).length)));
  const line = (cells: readonly (string | number | undefined)[]) => '  ' + cells.map((c, i) => cell(c).padStart(widths[i])).join('  ');
  console.log(line(headers));
  for (const r of rows) console.log(line(r));
}

/** Write `data` to bench/results/<name>-<ISO date>.json and say where. */
export function writeRampResults(repoRoot: string, name: string, startedAt: Date, data: unknown): void {
  writeResults(resultsDir(repoRoot), name, startedAt, data);
}
