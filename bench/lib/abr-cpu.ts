/**
 * The ABR bench's CPU readings: a window over the bench's whole process tree and the machine, one process
 * subtree's share of it, the same grouped by role, and per-thread CPU of one process ("where does it go").
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { busyPercent, machineCpu, subtree, TreeCpu, type ProcCpu, type TreeCpuResult } from './cpu.js';

/** Clock ticks (utime + stime) of each thread of a process, by thread id, with its name. */
export type ThreadTicks = Map<string, { comm: string; ticks: number }>;

/** CPU seconds of each thread of a process by thread name (utime + stime), for "where does the CPU go". */
export function threadTicks(pid: number): ThreadTicks {
  const out: ThreadTicks = new Map();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const close = text.lastIndexOf(')');
      const f = text.slice(close + 2).split(' ');
      out.set(tid, { comm: text.slice(text.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* thread gone */
    }
  }
  return out;
}

export function threadDelta(pid: number, a: ThreadTicks, b: ThreadTicks, hz: number): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const [tid, v] of b) {
    const d = (v.ticks - (a.get(tid)?.ticks ?? 0)) / hz;
    // Node and FFmpeg leave most thread names alone: the main thread apart, the others by name.
    const name = tid === String(pid) ? `main thread (${v.comm})` : `other threads (${v.comm.replace(/\d+$/, '#')})`;
    byName[name] = Number(((byName[name] ?? 0) + d).toFixed(2));
  }
  return Object.fromEntries(
    Object.entries(byName)
      .sort((x, y) => y[1] - x[1])
      .filter(([, s]) => s >= 0.01),
  );
}

/** Group the processes of a bench-wide CPU window by role. */
export function cpuByRole(
  result: TreeCpuResult,
  roles: { server?: number; publishers: Set<number>; benchPid: number },
): Record<string, number> {
  const inServer = new Set(roles.server ? subtree(result, roles.server).map((p) => p.pid) : []);
  const groups: Record<string, number> = {};
  const add = (k: string, p: ProcCpu) => (groups[k] = Number(((groups[k] ?? 0) + p.cpuS).toFixed(2)));
  for (const p of result.processes) {
    if (p.pid === roles.server) add('server node', p);
    else if (inServer.has(p.pid)) add(p.comm === 'ffmpeg' ? 'server ffmpeg' : `server ${p.comm}`, p);
    else if (roles.publishers.has(p.pid)) add('publishers (ffmpeg -c copy)', p);
    else if (/chrom/i.test(p.comm)) add('chromium', p);
    else if (p.pid === roles.benchPid) add('bench (node, playwright)', p);
    else add(`other: ${p.comm}`, p);
  }
  return groups;
}

// ---- CPU windows ----

export interface CpuWindow {
  /** The bench's whole process tree: the server and its FFmpeg, publishers, Chromium, the bench itself. */
  readonly all: TreeCpuResult;
  /** Busy % of all the machine's CPUs (100 = every core), from /proc/stat. */
  readonly machineBusyPercent: number;
  /** Cores' worth of CPU the bench's tree used, and what the rest of the machine used meanwhile. */
  readonly benchCores: number;
  readonly outsideBenchCores: number;
}

/** Start measuring the bench's process tree and the machine; close() ends the window. */
export function openCpuWindow(hz: number): { close(): CpuWindow } {
  const tree = new TreeCpu(process.pid, hz);
  const m0 = machineCpu();
  tree.start();
  return {
    close() {
      const all = tree.stop();
      const machineBusyPercent = busyPercent(m0, machineCpu());
      const benchCores = all.cpuS / all.wallS;
      const machineCores = (machineBusyPercent / 100) * cpus().length;
      return { all, machineBusyPercent, benchCores: round2(benchCores), outsideBenchCores: round2(Math.max(0, machineCores - benchCores)) };
    },
  };
}

const round2 = (x: number) => Number(x.toFixed(2));

/** The CPU of process `pid` and its descendants within a window. */
export interface SubtreeCpu {
  readonly cpuS: number;
  readonly wallS: number;
  readonly percentOfOneCore: number;
  readonly processes: ProcCpu[];
}

export function cpuOf(w: CpuWindow, pid: number): SubtreeCpu {
  const processes = subtree(w.all, pid);
  const cpuS = round2(processes.reduce((a, p) => a + p.cpuS, 0));
  return { cpuS, wallS: w.all.wallS, percentOfOneCore: Number(((cpuS / w.all.wallS) * 100).toFixed(1)), processes };
}
