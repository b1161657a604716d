import { execFile } from 'node:child_process';

/**
 * Memory of a Node process after a full garbage collection, read over its inspector (the server runs
 * with `--inspect=127.0.0.1:0`). Without the collection, heap figures of a quiet process say more about
 * when V8 last collected than about what it keeps.
 *
 * Node 20 has no WebSocket client without a flag, so a short child `node --experimental-websocket` speaks
 * the DevTools protocol: HeapProfiler.collectGarbage, then process.memoryUsage() in the target.
 */

export interface GcMemory {
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly rss: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** The inspector's WebSocket URL from what `node --inspect` printed to stderr. */
export function inspectorUrl(stderr: string): string | undefined {
  return /Debugger listening on (ws:\/\/[^\s]+)/.exec(stderr)?.[1];
}

const CLIENT = `
const ws = new WebSocket(process.argv[1]);
let id = 0;
const pending = new Map();
const call = (method, params = {}) => new Promise((resolve, reject) => {
  const n = ++id;
  pending.set(n, { resolve, reject });
  ws.send(JSON.stringify({ id: n, method, params }));
});
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  m.error ? p.reject(new Error(m.error.message)) : p.resolve(m.result);
};
ws.onerror = () => { console.error('inspector connection failed'); process.exit(1); };
ws.onopen = async () => {
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const r = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
  process.stdout.write(r.result.value);
  ws.close();
  process.exit(0);
};
`;

/** Collect garbage in the process behind `wsUrl` and return its memory usage then. */
export function memoryAfterGc(wsUrl: string, timeoutMs = 20_000): Promise<GcMemory> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--experimental-websocket', '--no-warnings', '-e', CLIENT, wsUrl],
      { timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`reading memory over the inspector failed: ${stderr.trim() || err.message}`));
        try {
          resolve(JSON.parse(stdout) as GcMemory);
        } catch {
          reject(new Error(`unexpected inspector answer: ${stdout.slice(0, 200)}`));
        }
      },
    );
  });
}
