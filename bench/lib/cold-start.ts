import { rssOf } from '../../harness/processes.js';
import { startServerProcess } from '../../harness/server-process.js';

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
