import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of process trees and of the whole machine, from /proc (Linux only).
 */

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 when that fails). */
export function clockTicks(): Promise<number> {
  return new Promise((resolve) => {
    execFile('getconf', ['CLK_TCK'], { timeout: 5000 }, (err, stdout) => {
      const n = Number(String(stdout).trim());
      resolve(!err && Number.isInteger(n) && n > 0 ? n : 100);
    });
  });
}

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, clock ticks (all threads of the process). */
  readonly ticks: number;
  /** Start time after boot, clock ticks: with the pid, it names the process (pids are reused). */
  readonly starttime: number;
}

/** /proc/<pid>/stat, parsed; undefined when the process is gone. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..." where comm may hold spaces and parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): field n is f[n - 3].
  return { pid, ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]), starttime: Number(f[19]) };
}

/** Every process on the machine. */
export function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/** `root` and all its descendants among `stats` (by ppid). */
export function treeOf(root: number, stats: readonly ProcStat[]): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(s);
    else children.set(s.ppid, [s]);
  }
  const out: ProcStat[] = [];
  const self = stats.find((s) => s.pid === root);
  if (!self) return out;
  const queue = [self];
  while (queue.length) {
    const s = queue.shift()!;
    out.push(s);
    queue.push(...(children.get(s.pid) ?? []));
  }
  return out;
}

/**
 * Pin every thread of every process in the tree under `root` to `cpus` (`taskset -a -p -c`), and return
 * their pids. Threads and processes started later inherit the affinity of the thread that starts them, so
 * pinning once after start-up is enough.
 */
export async function pinTree(root: number, cpus: string): Promise<number[]> {
  const pids = treeOf(root, allStats()).map((s) => s.pid);
  for (const pid of pids) {
    await new Promise<void>((resolve, reject) => {
      execFile('taskset', ['-a', '-p', '-c', cpus, String(pid)], { timeout: 5000 }, (err, _out, stderr) =>
        err ? reject(new Error(`taskset -a -p -c ${cpus} ${pid} failed: ${String(stderr).trim() || err.message}`)) : resolve(),
      );
    });
  }
  return pids;
}

export interface ProcCpu {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** CPU seconds used within the window. */
  readonly cpuS: number;
  /** Started after the window began (counted from 0). */
  readonly born: boolean;
  /** Gone before the window ended (counted up to its last sample, at most a second short). */
  readonly exited: boolean;
}

export interface TreeCpuResult {
  readonly root: number;
  readonly wallS: number;
  /** CPU seconds of the whole tree within the window. */
  readonly cpuS: number;
  /** cpuS / wallS * 100: 100 = one core busy. */
  readonly percentOfOneCore: number;
  readonly processes: ProcCpu[];
}

/**
 * The CPU time a process tree uses over a window: the tree is sampled at the start, every `everyMs`
 * and at the end, so a child that appears in between is counted (from 0 when it started within the
 * window), and one that exits is counted up to its last sample. Per process end - start, summed.
 */
export class TreeCpu {
  readonly #root: number;
  readonly #hz: number;
  readonly #seen = new Map<string, { first: ProcStat; last: ProcStat; born: boolean; alive: boolean }>();
  #timer: NodeJS.Timeout | undefined;
  #t0 = 0;
  /** Window start in clock ticks after boot, to tell children born within it. */
  #bootTicks0 = 0;

  constructor(root: number, hz: number) {
    this.#root = root;
    this.#hz = hz;
  }

  start(everyMs = 1000): void {
    this.#t0 = performance.now();
    this.#bootTicks0 = uptimeS() * this.#hz;
    this.#sample(true);
    this.#timer = setInterval(() => this.#sample(false), everyMs);
    this.#timer.unref();
  }

  #sample(first: boolean): void {
    const tree = treeOf(this.#root, allStats());
    const present = new Set<string>();
    for (const s of tree) {
      const key = `${s.pid}:${s.starttime}`;
      present.add(key);
      const known = this.#seen.get(key);
      if (known) known.last = s;
      else {
        // Not there at the start: born within the window if it started after the window began (then all
        // of its CPU time is in the window); otherwise (reparented into the tree, or missed) from now.
        const born = !first && s.starttime >= this.#bootTicks0 - this.#hz / 10;
        this.#seen.set(key, { first: born ? { ...s, ticks: 0 } : s, last: s, born, alive: true });
      }
    }
    for (const [key, v] of this.#seen) if (!present.has(key)) v.alive = false;
  }

  /** Takes the last sample and ends the window. */
  stop(): TreeCpuResult {
    this.#sample(false);
    clearInterval(this.#timer);
    const wallS = (performance.now() - this.#t0) / 1000;
    const processes: ProcCpu[] = [...this.#seen.values()].map((v) => ({
      pid: v.last.pid,
      ppid: v.last.ppid,
      comm: v.last.comm,
      cpuS: round((v.last.ticks - v.first.ticks) / this.#hz, 2),
      born: v.born,
      exited: !v.alive,
    }));
    processes.sort((a, b) => b.cpuS - a.cpuS);
    const cpuS = processes.reduce((a, p) => a + p.cpuS, 0);
    return { root: this.#root, wallS: round(wallS, 2), cpuS: round(cpuS, 2), percentOfOneCore: round((cpuS / wallS) * 100, 1), processes };
  }
}

/** The processes of `result` that are `pid` or below it (by the ppids seen). */
export function subtree(result: TreeCpuResult, pid: number): ProcCpu[] {
  const byPid = new Map(result.processes.map((p) => [p.pid, p]));
  return result.processes.filter((p) => {
    for (let q: ProcCpu | undefined = p, hops = 0; q && hops < 64; q = byPid.get(q.ppid), hops++) if (q.pid === pid) return true;
    return false;
  });
}

function uptimeS(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

function round(x: number, d: number): number {
  return Number(x.toFixed(d));
}

/** The machine's aggregate CPU counters (the "cpu" line of /proc/stat), clock ticks. */
export interface MachineCpu {
  readonly busy: number;
  readonly total: number;
}

export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('cpu '))!;
  // user nice system idle iowait irq softirq steal (guest and guest_nice are already within user and nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = user + nice + system + idle + iowait + irq + softirq + (steal || 0);
  return { busy: total - idle - iowait, total };
}

/** Busy percentage of all CPUs between two readings (100 = every core busy). */
export function busyPercent(a: MachineCpu, b: MachineCpu): number {
  const total = b.total - a.total;
  return total > 0 ? round(((b.busy - a.busy) / total) * 100, 1) : Number.NaN;
}
