/**
 * Child processes of the tests and benches: tracking (a bench kills what it started when it exits),
 * spawning with the tail of stderr kept, stopping (signal, then SIGKILL), running a command to its end,
 * and two readings of the machine (a free port, a process's RSS).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Children this process started and tracked; each is SIGKILLed by killTracked() if it still runs. */
const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Kill every tracked child that is still running (synchronous, safe in an 'exit' handler). */
export function killTracked(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}

/** A child whose stderr is kept: the last `tailChars` characters, spawn errors included. */
export type LoggedChild = ChildProcess & { stderrText(): string };

/** Spawn a tracked command with stdin and stdout ignored and the tail of its stderr kept. */
export function spawnLogged(cmd: string, args: readonly string[], opts: { cwd?: string; tailChars?: number } = {}): LoggedChild {
  const tail = opts.tailChars ?? 6000;
  const child = track(spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'] })) as LoggedChild;
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-tail)));
  child.on('error', (e) => (err += `\n${e.message}`));
  child.stderrText = () => err;
  return child;
}

export function waitExit(child: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('process did not exit in time')), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** Send `signal` (SIGKILL by default) and wait for the exit (at most 30 s). */
export function kill(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<unknown> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const done = waitExit(child).catch(() => undefined);
  child.kill(signal);
  return done;
}

/**
 * Send `signal` (SIGTERM by default: FFmpeg finishes its outputs), SIGKILL after `timeoutMs`, and resolve
 * once the child has exited.
 */
export function terminate(child: ChildProcess | undefined, timeoutMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(signal);
  });
}

/**
 * Run a command (tracked) and collect stdout/stderr. Rejects when it cannot start or runs past
 * `timeoutMs` (then it is killed); `signal` kills it too (it then resolves with the kill's exit).
 */
export function run(
  cmd: string,
  args: string[],
  timeoutMs = 30_000,
  opts: { signal?: AbortSignal; cwd?: string } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const abort = () => child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', abort, { once: true });
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} timed out`));
    }, timeoutMs);
    const settle = () => {
      clearTimeout(t);
      opts.signal?.removeEventListener('abort', abort);
    };
    child.on('error', (err) => {
      settle();
      reject(err);
    });
    child.on('exit', (code, sig) => {
      settle();
      resolve({ code, signal: sig, stdout, stderr });
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process in bytes, from /proc (Linux); undefined elsewhere. */
export function rssOf(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** A URL as it may be printed: its password (a Redis or PostgreSQL URL may carry one) replaced by "***". */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(a URL that does not parse)';
  }
}
