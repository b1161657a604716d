import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '../../harness/http.js';
import { pinTree } from './cpu.js';
import { LOAD_CORE, SERVER_CORE } from './ramp.js';
import type { BenchRun } from './run.js';
import { startServerProcess, type ServerProcess } from '../../harness/server-process.js';
import { startPublisher, type Publisher } from './synthetic.js';

/** The server under test for the ramp benches, pinned to its core, and the passthrough streams they load it with. */

export const API_TOKEN = 'bench-token-0123456789abcdef';

/**
 * The server as its own process on a fresh DATA_DIR, pinned to SERVER_CORE; stopped and removed on shutdown.
 * It is started twice: the first start creates the embedded catalog, which leaves memory behind that a
 * server restarted on an existing DATA_DIR (the usual case) does not carry, and that would bend the RSS fit.
 */
export async function startPinnedServer(bench: BenchRun, repoRoot: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-bench-'));
  bench.cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const first = await startServerProcess(repoRoot, dataDir, API_TOKEN, bench.signal, extraEnv);
  await first.stop(10_000);
  const server = await startServerProcess(repoRoot, dataDir, API_TOKEN, bench.signal, extraEnv);
  bench.cleanups.push(() => server.stop(10_000));
  await pinTree(server.pid, SERVER_CORE);
  return server;
}

export interface LiveStream {
  readonly id: string;
  readonly mediaUrl: string;
  readonly publisher: Publisher;
}

/**
 * Create `count` passthrough streams through the API, push `flv` to each from LOAD_CORE and wait until
 * every media playlist lists a part (so that a viewer joining then finds the live edge, not a 404).
 */
export async function startLiveStreams(
  bench: BenchRun,
  server: ServerProcess,
  flv: string,
  count: number,
  firstIndex: number,
): Promise<LiveStream[]> {
  const headers = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
  const out: LiveStream[] = [];
  for (let i = 0; i < count; i++) {
    const r = await request('POST', `${server.base}/api/v1/streams`, {
      headers,
      body: JSON.stringify({ name: `bench-${firstIndex + i}`, profile: 'passthrough' }),
    });
    if (r.status !== 201) throw new Error(`creating a stream answered ${r.status}: ${r.body}`);
    const { id, streamKey } = JSON.parse(r.body) as { id: string; streamKey: string };
    const publisher = startPublisher(flv, `rtmp://127.0.0.1:${server.rtmpPort}/live/${streamKey}`, { taskset: LOAD_CORE });
    out.push({ id, mediaUrl: `${server.base}/live/${id}/source/index.m3u8`, publisher });
  }
  for (const s of out) {
    await bench.waitFor(
      `stream ${s.id} listing a part`,
      async () => {
        assertRunning(server, [s]);
        const r = await request('GET', s.mediaUrl, { timeoutMs: 5000 });
        return r.status === 200 && r.body.includes('#EXT-X-PART:');
      },
      30_000,
      { stepMs: 200, tolerateErrors: false },
    );
  }
  return out;
}

/** Throws when the server or a publisher has stopped, with what it last wrote to stderr. */
export function assertRunning(server: ServerProcess, streams: readonly LiveStream[]): void {
  if (!server.alive())
    throw new Error(`the server stopped (${server.child.exitCode ?? server.child.signalCode}): ${server.stderrText().trim().slice(-1500)}`);
  for (const s of streams) {
    const p = s.publisher;
    if (p.exitCode !== null || p.signalCode !== null)
      throw new Error(`the publisher of ${s.id} stopped (${p.exitCode ?? p.signalCode}): ${p.stderrText().trim().slice(-800)}`);
  }
}

/** PART-TARGET (s) from a media playlist's EXT-X-PART-INF. */
export async function partTargetOf(mediaUrl: string): Promise<number> {
  const r = await request('GET', mediaUrl, { timeoutMs: 5000 });
  const s = Number(/#EXT-X-PART-INF:.*PART-TARGET=([\d.]+)/.exec(r.body)?.[1]);
  if (!(s > 0)) throw new Error(`no EXT-X-PART-INF PART-TARGET in ${mediaUrl}: ${r.body.slice(0, 300)}`);
  return s;
}

/** Unlabelled samples of the server's Prometheus /metrics (enough for the process and event loop gauges). */
export async function scrapeMetrics(base: string): Promise<Map<string, number>> {
  const r = await request('GET', `${base}/metrics`, { timeoutMs: 5000 });
  const out = new Map<string, number>();
  for (const line of r.body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*) ([-+\d.eE]+|NaN)$/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}
