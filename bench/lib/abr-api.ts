/**
 * The server's stream API as the ABR bench uses it: creating ABR streams, reading their live and
 * transcode status (once, until the transcode runs, or every second over a window), and the transcode
 * counters of /metrics.
 */
import { request } from '../../harness/http.js';
import type { ServerProcess } from '../../harness/server-process.js';
import { assertAlive, type Child } from './abr-children.js';
import type { BenchRun } from './run.js';

export const API_TOKEN = 'bench-token-0123456789abcdef';

const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };

interface RungView {
  name: string;
  height: number;
  width: number | null;
  state: string;
  fps: number;
  bitrateKbps: number;
  targetBitrateKbps: number;
}
interface TranscodeView {
  state: string;
  pid: number | null;
  speed: number | null;
  lagMs: number | null;
  restarts: number;
  lastError: string | null;
  droppedRungs: string[];
  rungs: RungView[];
}
export interface LiveView {
  state: string;
  fps: number;
  bitrateKbps: number;
  video: { width: number; height: number } | null;
  transcode: TranscodeView | null;
}

export async function createStream(base: string, name: string): Promise<{ id: string; streamKey: string; profile: string }> {
  const r = await request('POST', `${base}/api/v1/streams`, { headers: auth, body: JSON.stringify({ name }) });
  if (r.status !== 201) throw new Error(`creating stream "${name}" answered ${r.status}: ${r.body}`);
  const s = JSON.parse(r.body) as { id: string; streamKey: string; profile: string };
  if (s.profile !== 'abr') throw new Error(`stream "${name}" was created with profile ${s.profile}, not abr`);
  return s;
}

export async function liveOf(base: string, id: string): Promise<LiveView | undefined> {
  const r = await request('GET', `${base}/api/v1/streams/${id}/live`, { headers: auth, timeoutMs: 5000 }).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.body) as LiveView) : undefined;
}

export type TranscodeFigures = ReturnType<typeof transcodeFigures>;

/** The figures of a transcode status worth keeping. */
export function transcodeFigures(live: LiveView | undefined) {
  const t = live?.transcode;
  if (!t) return { sourceFps: live?.fps ?? null, sourceKbps: live?.bitrateKbps ?? null, transcode: null };
  return {
    sourceFps: live.fps,
    sourceKbps: live.bitrateKbps,
    transcode: {
      state: t.state,
      speed: t.speed === null ? null : Number(t.speed.toFixed(3)),
      lagMs: t.lagMs,
      restarts: t.restarts,
      lastError: t.lastError,
      droppedRungs: t.droppedRungs,
      rungs: t.rungs.map((r) => ({
        name: r.name,
        size: r.width ? `${r.width}x${r.height}` : `?x${r.height}`,
        state: r.state,
        fps: r.fps,
        bitrateKbps: r.bitrateKbps,
        targetKbps: r.targetBitrateKbps,
      })),
    },
  };
}

/** How long until stream `id`'s transcode runs; the error says what the status and the server said last. */
export async function waitTranscodeRunning(
  bench: BenchRun,
  server: ServerProcess,
  id: string,
  publisher: Child,
  timeoutMs: number,
): Promise<number> {
  const t0 = Date.now();
  let last: LiveView | undefined;
  try {
    await bench.waitFor(
      'transcode running',
      async () => {
        assertAlive(publisher, server);
        last = await liveOf(server.base, id);
        return last?.transcode?.state === 'running';
      },
      timeoutMs,
      { stepMs: 200 },
    );
  } catch (err) {
    if (bench.signal.aborted) throw err;
    throw new Error(
      `${(err as Error).message}; last status: ${JSON.stringify(last?.transcode ?? last ?? null)}; server stderr: ${server.stderrText().trim().slice(-1500)}`,
      {
        cause: err,
      },
    );
  }
  return Date.now() - t0;
}

/** Every second until `until`: [epoch ms, [state, speed, lagMs, dropped rungs] per stream]. */
export async function pollStatus(bench: BenchRun, base: string, until: number, ids: string[], into: unknown[]): Promise<void> {
  while (Date.now() < until) {
    const t = Date.now();
    const views = await Promise.all(ids.map((id) => liveOf(base, id)));
    into.push([
      t,
      ...views.map((v) =>
        v?.transcode
          ? [
              v.transcode.state,
              v.transcode.speed === null ? null : Number(v.transcode.speed.toFixed(3)),
              v.transcode.lagMs,
              v.transcode.droppedRungs.join('+'),
            ]
          : null,
      ),
    ]);
    await bench.sleep(Math.max(0, Math.min(1000 - (Date.now() - t), until - Date.now())));
    bench.check();
  }
}

/** The transcode counters of /metrics (rungs dropped and restored, exits, crashes, over the limit). */
export function transcodeMetrics(server: ServerProcess): Promise<Record<string, number>> {
  return request('GET', `${server.base}/metrics`, { timeoutMs: 5000 }).then(
    (r) =>
      Object.fromEntries(
        r.body
          .split('\n')
          .filter((l) => /^livepack_transcode_(rungs_dropped|rungs_restored|exits|crashes|over_limit)_total /.test(l))
          .map((l) => [l.split(' ')[0], Number(l.split(' ')[1])]),
      ),
    () => ({}),
  );
}
