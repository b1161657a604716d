import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startServerProcess } from './server-proc.js';

/** Children this bench started; each is SIGKILLed if the bench exits while it still runs. */
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

export interface ColdStart {
  readonly command: string;
  /** What kind of start this was, e.g. "empty DATA_DIR". */
  readonly label: string;
  /** From spawn to the first 200 from /healthz. */
  readonly readyMs: number;
  /** RSS of the server process one second after it became ready, idle, bytes. */
  readonly idleRssBytes: number | undefined;
}

/**
 * Start the server the way `npm start` does, as its own process (`node <SERVER_NODE_FLAGS> --import tsx src/main.ts`) on free
 * ports with `dataDir` as DATA_DIR, and time it until /healthz answers 200. Stops it with SIGTERM afterwards.
 */
export async function coldStart(
  repoRoot: string,
  dataDir: string,
  signal: AbortSignal,
  label: string,
  extraEnv: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<ColdStart> {
  const t0 = performance.now();
  const server = await startServerProcess(repoRoot, dataDir, 'bench-token-0123456789abcdef', signal, extraEnv, timeoutMs, 10);
  try {
    const readyMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    return { command: server.command, label, readyMs, idleRssBytes: rssOf(server.pid) };
  } finally {
    await server.stop(10_000);
  }
}
