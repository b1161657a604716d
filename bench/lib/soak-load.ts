/**
 * The soak's load: the server it runs against (its own process, the inspector open), its streams through
 * the API, and the Soak class that keeps their publishers and viewers going, churns them, and counts what
 * went wrong.
 */
import { setMaxListeners } from 'node:events';
import { request } from '../../harness/http.js';
import { newTotals, runViewer, type ViewerTotals } from '../../harness/llhls-viewer.js';
import { startServerProcess, type ServerProcess } from '../../harness/server-process.js';
import { inspectorUrl } from './inspector.js';
import type { BenchRun } from './run.js';
import { dropPublisher, startPublisher, stopPublisher, type Publisher } from './synthetic.js';

export const API_TOKEN = 'soak-token-0123456789abcdef';
/**
 * Server settings of the soak: a short retention, so that stopped streams are released soon, and a grace
 * (10 s, the default is 30) that a dropped publisher's replacement meets even on a loaded machine: with 3 s,
 * a replacement FFmpeg that took over 3 s to publish made a second run the soak did not expect.
 */
export const SERVER_ENV = { RECONNECT_GRACE_MS: '10000', HLS_ENDED_RETENTION_MS: '2000' };

// ---- the server and its streams ----

const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };

/** The server as its own process with the inspector open (for the full-GC memory readings). */
export async function startSoakServer(bench: BenchRun, root: string, dataDir: string): Promise<{ server: ServerProcess; ws: string }> {
  const server = await startServerProcess(root, dataDir, API_TOKEN, bench.signal, SERVER_ENV, 30_000, 50, ['--inspect=127.0.0.1:0']);
  bench.cleanups.push(() => server.stop(10_000));
  const ws = await bench.waitFor('the server inspector URL', async () => inspectorUrl(server.stderrText()), 5000);
  return { server, ws };
}

export interface Stream {
  readonly id: string;
  readonly rtmpUrl: string;
  readonly playlistUrl: string;
  publisher: Publisher | undefined;
  /** Set while the soak itself stops the publisher (churn, end). */
  stopping: boolean;
  /** Stopped cleanly (its run ended) and not published since. */
  stopped: boolean;
  /** When the churn last dropped its publisher, until a new one is published. */
  droppedAt?: number;
  readonly profile: 'passthrough' | 'abr';
  /** When the run in progress began (its first publish; a reconnect within the grace goes on with it). */
  runStartedAt: number | undefined;
  /** Runs ended by a clean unpublish: their wall time, for the VOD check. */
  readonly runs: { startedAt: number; endedAt: number }[];
}

export async function createStream(server: ServerProcess, name: string, profile: Stream['profile'] = 'passthrough'): Promise<Stream> {
  const res = await request('POST', `${server.base}/api/v1/streams`, {
    headers: auth,
    body: JSON.stringify({ name, profile }),
  });
  if (res.status !== 201) throw new Error(`creating stream ${name} answered ${res.status}: ${res.body}`);
  const s = JSON.parse(res.body) as { id: string; streamKey: string };
  return {
    id: s.id,
    rtmpUrl: `rtmp://127.0.0.1:${server.rtmpPort}/live/${s.streamKey}`,
    playlistUrl: `${server.base}/live/${s.id}/source/index.m3u8`,
    publisher: undefined,
    stopping: false,
    stopped: false,
    profile,
    runStartedAt: undefined,
    runs: [],
  };
}

/** Live streams according to the API (live status not null). */
export async function liveCount(server: ServerProcess): Promise<number> {
  const res = await request('GET', `${server.base}/api/v1/streams?limit=1000`, { headers: auth });
  if (res.status !== 200) throw new Error(`listing streams answered ${res.status}`);
  return (JSON.parse(res.body) as { items: { live: unknown }[] }).items.filter((s) => s.live).length;
}

/** Whether a stream's media playlist lists at least one part. */
export async function hasParts(s: Stream): Promise<boolean> {
  const r = await request('GET', s.playlistUrl, { timeoutMs: 3000 });
  return r.status === 200 && r.body.includes('#EXT-X-PART:');
}

// ---- the soak ----

/** The soak's streams, their publishers and viewers, and the count of what went wrong with them. */
export class Soak {
  readonly streams: Stream[] = [];
  readonly totals = newTotals();
  /** Aborted when the load ends: every viewer of the load stops. */
  readonly viewersStop = new AbortController();
  publisherFailures = 0;
  churns = 0;
  shortLivedDone = 0;
  readonly #bench: BenchRun;
  /** --churn-seconds (0: no churn). */
  readonly #churnSeconds: number;

  constructor(
    bench: BenchRun,
    readonly server: ServerProcess,
    readonly file: string,
    churnSeconds: number,
  ) {
    this.#bench = bench;
    this.#churnSeconds = churnSeconds;
    // Every request of every viewer listens on this one signal.
    setMaxListeners(0, this.viewersStop.signal, bench.signal);
    bench.cleanups.push(() => this.viewersStop.abort());
    bench.cleanups.push(() => Promise.all(this.streams.map((s) => this.unpublish(s))));
  }

  publish(s: Stream): void {
    s.runStartedAt ??= Date.now();
    s.stopped = false;
    s.droppedAt = undefined;
    const p = startPublisher(this.file, s.rtmpUrl);
    s.publisher = p;
    s.stopping = false;
    p.once('exit', (code, sig) => {
      if (s.stopping || this.#bench.signal.aborted) return;
      // A publisher that died on its own: count it (a FAIL) and put a new one in its place.
      this.publisherFailures++;
      console.error(`publisher of ${s.id} exited (${code ?? sig}): ${p.stderrText().trim().slice(-300)}`);
      if (!this.viewersStop.signal.aborted) this.publish(s);
    });
  }

  async unpublish(s: Stream, how: 'clean' | 'drop' = 'clean'): Promise<void> {
    // The run's media ends here, or, when the churn dropped the publisher and the load ended before its
    // replacement came (the server then ends the run after the grace), where it was dropped.
    let endedAt = s.droppedAt ?? Date.now();
    if (s.publisher) {
      s.stopping = true;
      await (how === 'drop' ? dropPublisher(s.publisher) : stopPublisher(s.publisher));
      s.publisher = undefined;
      endedAt = Date.now();
      if (how === 'drop') s.droppedAt = endedAt;
    }
    // A clean stop ends the run even then: its run is counted, and the churn does not bring it back.
    if (how === 'clean') s.stopped = true;
    if (how === 'clean' && s.runStartedAt !== undefined) {
      s.runs.push({ startedAt: s.runStartedAt, endedAt });
      s.runStartedAt = undefined;
    }
  }

  async watch(s: Stream, signal: AbortSignal, into: ViewerTotals): Promise<void> {
    // A viewer that gets an ended playlist joins again, as a page reload would.
    while (!signal.aborted) {
      await runViewer(s.playlistUrl, signal, into);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted changes across the await above
      if (!signal.aborted) await this.#bench.sleep(500);
    }
  }

  /** Until the API lists no live stream, and the ended playlists' retention is over. */
  waitEnded(): Promise<void> {
    return this.#bench
      .waitFor('every stream to end', async () => (await liveCount(this.server)) === 0, 30_000, { stepMs: 250 })
      .then(() => this.#bench.sleep(Number(SERVER_ENV.HLS_ENDED_RETENTION_MS) + 1500));
  }

  /**
   * Churn, every --churn-seconds: one steady publisher drops and reconnects (a new session within the grace), and one
   * short-lived stream is created, published, watched, stopped and deleted through the API.
   */
  startChurn(): { stop(): void; shortLived: Promise<void>[] } {
    let churnIndex = 0;
    const shortLived: Promise<void>[] = [];
    const churner = this.#churnSeconds
      ? setInterval(() => {
          const s = this.streams[churnIndex++ % this.streams.length];
          this.churns++;
          void this.unpublish(s, 'drop').then(() =>
            this.#bench.sleep(1000).then(() => !this.viewersStop.signal.aborted && !s.stopped && this.publish(s)),
          );
          shortLived.push(
            this.shortLivedStream(churnIndex).catch((err) => {
              if (this.#bench.signal.aborted) return;
              this.totals.errors++;
              this.totals.lastErrors.push(`short-lived stream: ${(err as Error).message}`);
            }),
          );
        }, this.#churnSeconds * 1000)
      : undefined;
    this.#bench.cleanups.push(() => clearInterval(churner));
    return { stop: () => clearInterval(churner), shortLived };
  }

  /** A stream created, published, watched for 1.5 churn periods, stopped and deleted through the API. */
  async shortLivedStream(n: number): Promise<void> {
    const s = await createStream(this.server, `soak-short-${n}`);
    const watching = new AbortController();
    setMaxListeners(0, watching.signal);
    const stopWatching = () => watching.abort();
    this.viewersStop.signal.addEventListener('abort', stopWatching, { once: true });
    try {
      this.publish(s);
      await this.#bench.waitFor(`short-lived stream ${n} to be live`, () => hasParts(s), 20_000, { stepMs: 200, tolerateErrors: true });
      const views = [this.watch(s, watching.signal, this.totals), this.watch(s, watching.signal, this.totals)];
      await this.#bench.sleep(this.#churnSeconds * 1500);
      watching.abort();
      await Promise.all(views);
    } finally {
      this.viewersStop.signal.removeEventListener('abort', stopWatching);
      await this.unpublish(s);
      const del = await request('DELETE', `${this.server.base}/api/v1/streams/${s.id}`, { headers: { authorization: auth.authorization } });
      // Thrown from finally as before: a stream that cannot be deleted fails the bench, and this error then
      // replaces one from the try.
      // eslint-disable-next-line no-unsafe-finally -- kept as it was, see above
      if (del.status !== 204) throw new Error(`deleting short-lived stream ${s.id} answered ${del.status}: ${del.body}`);
      this.shortLivedDone++;
    }
  }
}

// ---- what the runs left: their VODs ----

/** A stream's videos, newest first, as the API lists them. */
async function videosOf(server: ServerProcess, streamId: string): Promise<{ id: string; status: string; duration: number | null }[]> {
  const res = await request('GET', `${server.base}/api/v1/videos?streamId=${streamId}&limit=100`, { headers: auth });
  if (res.status !== 200) throw new Error(`listing the videos of ${streamId} answered ${res.status}`);
  return (JSON.parse(res.body) as { items: { id: string; status: string; duration: number | null }[] }).items;
}

/**
 * Every steady stream's runs became VODs that are ready, each lasting about as long as it was published:
 * at least 85 % of its wall time less 5 s (a publisher's start-up, the reconnect seconds of churn), at
 * most its wall time plus 5 s. Waits up to `timeoutMs` for the last ones to finish. Returns the problems.
 */
export async function checkRunVods(server: ServerProcess, streams: readonly Stream[], waitFor: BenchRun['waitFor'], timeoutMs = 60_000) {
  const problems: string[] = [];
  let checked = 0;
  for (const s of streams) {
    if (s.runs.length === 0) continue;
    const videos = await waitFor(
      `the VODs of ${s.id} to be ready`,
      async () => {
        const v = await videosOf(server, s.id);
        return v.length >= s.runs.length && v.every((x) => x.status === 'ready' || x.status === 'failed') ? v : undefined;
      },
      timeoutMs,
      { stepMs: 1000, tolerateErrors: true },
    ).catch(() => videosOf(server, s.id));
    // Newest first on both sides.
    const runs = [...s.runs].reverse();
    runs.forEach((run, i) => {
      const v = videos.at(i);
      const wallS = (run.endedAt - run.startedAt) / 1000;
      checked++;
      if (!v) return problems.push(`stream ${s.id}: no VOD for a run of ${wallS.toFixed(0)} s`);
      if (v.status !== 'ready') return problems.push(`stream ${s.id}: VOD ${v.id} is ${v.status}`);
      const d = v.duration ?? 0;
      if (d < wallS * 0.85 - 5 || d > wallS + 5)
        problems.push(`stream ${s.id}: VOD ${v.id} lasts ${d.toFixed(1)} s for a run of ${wallS.toFixed(1)} s`);
    });
  }
  return { checked, problems };
}
