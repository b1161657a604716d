import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { request } from './http.js';

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

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
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
 * Start the server the way `npm start` does, as its own process (`node --import tsx src/main.ts`) on free
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
  const [httpPort, rtmpPort] = [await freePort(), await freePort()];
  const args = ['--import', 'tsx', 'src/main.ts'];
  const t0 = performance.now();
  const child = track(
    spawn(process.execPath, args, {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        HTTP_PORT: String(httpPort),
        RTMP_PORT: String(rtmpPort),
        DATA_DIR: dataDir,
        API_TOKEN: 'bench-token-0123456789abcdef',
        CREATE_DEFAULT_STREAM: 'false',
        LOG_LEVEL: 'warn',
        CONFIG_FILE: '',
        ...extraEnv,
      },
    }),
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal.aborted) throw new Error('aborted');
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before it was ready: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`server not ready within ${timeoutMs} ms: ${stderr.trim()}`);
      const ok = await request('GET', `http://127.0.0.1:${httpPort}/healthz`, { timeoutMs: 1000 }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const readyMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    return { command: `node ${args.join(' ')}`, label, readyMs, idleRssBytes: rssOf(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await exited(child, 10_000);
  }
}
