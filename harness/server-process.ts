import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, dirname } from 'node:path';
import { request } from './http.js';
import { freePort, track } from './processes.js';

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly httpPort: number;
  readonly rtmpPort: number;
  readonly base: string;
  readonly command: string;
  /** The last few KB the server wrote to stderr. */
  stderrText(): string;
  /** Whether it is still running (a function property: callers pass it on unbound). */
  readonly alive: () => boolean;
  /** SIGTERM, then wait (SIGKILL after `timeoutMs`); resolves with how it ended and how long that took. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }>;
}

/**
 * The node flags `npm start` gives the server (scripts/start.sh's default NODE_FLAGS; a unit test keeps the two in step).
 * A larger initial old generation: with the default, V8 runs a full mark-compact about once a second
 * under ingest load although the live heap is under 40 MB; this took 40 passthrough streams from 10 % to
 * 7 % of a core for 40 MB more RSS (docs/BENCHMARKS.md). V8 refuses it in NODE_OPTIONS.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

/**
 * Start the server as its own process through the script `npm start` runs (scripts/start.sh: its allocator
 * and malloc settings, then `node <flags> --import tsx src/main.ts`), with free ports, `dataDir` as
 * DATA_DIR, the bench API token, no default stream and LOG_LEVEL=warn, and leave it running once /healthz
 * answers 200. The script execs node, so `pid` is the server's. `nodeArgs` go to node after `serverFlags`
 * (default SERVER_NODE_FLAGS; bench/node-flags.ts compares others), e.g. --inspect.
 */
export async function startServerProcess(
  repoRoot: string,
  dataDir: string,
  apiToken: string,
  signal: AbortSignal,
  extraEnv: Record<string, string> = {},
  timeoutMs = 30_000,
  pollMs = 50,
  nodeArgs: readonly string[] = [],
  serverFlags: readonly string[] = SERVER_NODE_FLAGS,
): Promise<ServerProcess> {
  const [httpPort, rtmpPort] = [await freePort(), await freePort()];
  const nodeFlags = [...serverFlags, ...nodeArgs].join(' ');
  const child = track(
    spawn('/bin/sh', ['scripts/start.sh'], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        // the script finds `node` on PATH: put this one first, so the server runs on the harness's node
        PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
        NODE_FLAGS: nodeFlags,
        HOST: '127.0.0.1',
        HTTP_PORT: String(httpPort),
        RTMP_PORT: String(rtmpPort),
        DATA_DIR: dataDir,
        API_TOKEN: apiToken,
        CREATE_DEFAULT_STREAM: 'false',
        LOG_LEVEL: 'warn',
        CONFIG_FILE: '',
        ...extraEnv,
      },
    }),
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop: ServerProcess['stop'] = (stopTimeoutMs = 15_000) => {
    const t0 = performance.now();
    if (!alive()) return Promise.resolve({ code: child.exitCode, signal: child.signalCode, ms: 0, killed: false });
    return new Promise((resolve) => {
      let killed = false;
      const t = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, stopTimeoutMs);
      child.once('exit', (code, sig) => {
        clearTimeout(t);
        resolve({ code, signal: sig, ms: Math.round(performance.now() - t0), killed });
      });
      child.kill('SIGTERM');
    });
  };
  const base = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (signal.aborted) throw new Error('aborted');
      if (!alive()) throw new Error(`server exited with ${child.exitCode ?? child.signalCode} before it was ready: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`server not ready within ${timeoutMs} ms: ${stderr.trim()}`);
      const ok = await request('GET', `${base}/healthz`, { timeoutMs: 1000 }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } catch (err) {
    await stop(5000);
    throw err;
  }
  return {
    child,
    pid: child.pid!,
    httpPort,
    rtmpPort,
    base,
    command: `NODE_FLAGS='${nodeFlags}' sh scripts/start.sh (${allocatorOf(child.pid!)})`,
    stderrText: () => stderr,
    alive,
    stop,
  };
}

/** Which malloc a running process uses, from what it has mapped (Linux; elsewhere "unknown"). */
export function allocatorOf(pid: number): string {
  try {
    return /libjemalloc/.test(readFileSync(`/proc/${pid}/maps`, 'utf8')) ? 'jemalloc' : 'system malloc';
  } catch {
    return 'unknown';
  }
}
