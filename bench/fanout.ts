/**
 * Viewer fan-out bench: `npm run bench:fanout -- [--steps 50,100,200,400,800] [--step-seconds S]`.
 *
 * How many concurrent LL-HLS viewers one origin core serves with the p99 part delivery delay at most
 * 50 ms. The server runs as its own process pinned to core 0 with one passthrough stream (the synthetic
 * publisher on core 1); simulated hls.js viewers (harness/llhls-viewer.ts: blocking playlist reloads
 * and held preload-hint parts) run in this process on core 1, ramped in steps. Per step: delivery delay
 * of held playlist answers and of hinted parts, errors, gaps, requests/s, server CPU, client CPU (a
 * saturated client core makes the step client-bound, and says so).
 *
 * Beside it, the floor on this machine: nginx (one worker, pinned to core 0, sendfile, keep-alive) serving
 * a snapshot of the same stream from disk to the same request pattern at the part rate
 * (bench/lib/static-viewer.ts); its figure is the response time. Each ramp stops at its first step over
 * the limit. Prints tables and writes bench/results/fanout-<date>.json. Bounded in time; kills its
 * children on exit.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, pinTree } from './lib/cpu.js';
import { newTotals, parseLivePlaylist, runViewer } from '../harness/llhls-viewer.js';
import { request } from '../harness/http.js';
import {
  LOAD_CORE,
  parseRampCli,
  printProvenance,
  printTable,
  provenance,
  requireTwoCores,
  round,
  SATURATED_PERCENT,
  SERVER_CORE,
  writeRampResults,
  type Provenance,
} from './lib/ramp.js';
import { assertRunning, partTargetOf, startLiveStreams, startPinnedServer } from './lib/ramp-server.js';
import { DISTURBED_PERCENT, disturbance, measureFor, openWindow, viewerWindow, ViewerPool, type WindowResult } from './lib/ramp-window.js';
import { startBenchRun } from './lib/run.js';
import { snapshotPlaylist, startNginx, staticSnapshot, type SnapshotFiles } from './lib/static-origin.js';
import { newStaticTotals, runStaticViewer, staticWindow } from './lib/static-viewer.js';
import type { Summary } from './lib/stats.js';
import { describeSynthetic, stopPublisher, syntheticFlv } from './lib/synthetic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NGINX = '/usr/sbin/nginx';
const LIMIT_MS = 50;
/** Window with no viewer before each ramp: the origin's own CPU, subtracted from the viewers' cost. */
const IDLE_SECONDS = 5;
/** Joins are spread over this much time, then the viewers settle before the window opens. */
const JOIN_SPREAD_MS = 1000;
const SETTLE_MS = 3000;
/**
 * A step is client-bound when the client's own work stands in for the origin's: the viewers are answered in
 * a burst each part, and the client times the last answers of a burst only after it has dealt with the
 * others. So: the client busy for half the limit or more per part (its CPU share times PART-TARGET), its
 * event loop lagging that much (p99), or its core saturated.
 */
const CLIENT_BUDGET_MS = LIMIT_MS / 2;

const cli = parseRampCli(
  'npm run bench:fanout -- [--steps N,N,... (default 50,100,200,400,800)] [--step-seconds S (default 20)]',
  { 'step-seconds': { default: 20, min: 5, max: 600 } },
  { steps: { default: 0, min: 1, max: 5000 } },
);
const steps = cli.steps.length ? cli.steps : [50, 100, 200, 400, 800];
const stepSeconds = cli['step-seconds'];
// Two ramps of up to every step (window, joins, settling) plus start-up, the snapshot and nginx.
const bench = startBenchRun({ budgetS: 180 + 2 * steps.length * (stepSeconds + 15), forceExitMs: 30_000 });
const log = (s: string) => console.error(`[fanout] ${s}`);

/** One step of a ramp, ours or nginx's, in the same terms. */
interface Step {
  readonly viewers: number;
  /** Ours: held playlist answers' delivery delay. nginx: playlist response time. ms. */
  readonly playlistMs: Summary;
  /** Ours: hinted parts' delivery delay. nginx: part response time. ms. */
  readonly partMs: Summary;
  /** The worse of the two p99s: what the limit applies to. */
  readonly p99Ms: number;
  readonly errors: number;
  /** Ours: parts a viewer never saw. nginx: ticks skipped because the last answers were still out. */
  readonly gaps: number;
  readonly requestsPerS: number;
  /** Server CPU per request, µs. */
  readonly serverUsPerRequest: number;
  /** This process's CPU time per PART-TARGET, ms: how long it is busy with each burst of answers. */
  readonly clientMsPerPart: number;
  readonly window: WindowResult;
  readonly clientBound: boolean;
  readonly within: boolean;
  readonly lastErrors: string[];
  /** An over-limit first measurement disturbed by other work on the machine, measured again. */
  readonly firstAttempt?: Step;
}

interface Ramp {
  /** The origin with no viewer, before the ramp. */
  readonly idle: WindowResult;
  readonly steps: Step[];
}

interface Counted {
  readonly playlistMs: Summary;
  readonly partMs: Summary;
  readonly requests: number;
  readonly errors: number;
  readonly gaps: number;
  readonly lastErrors: string[];
}

/** The origin being ramped: its process tree, its /metrics (ours only), and a check that it still runs. */
interface Target {
  readonly name: string;
  readonly pid: number;
  readonly metricsBase?: string;
  readonly alive: () => void;
}

/** One measured window at `viewers` viewers. */
async function measureStep(
  target: Target,
  viewers: number,
  count: () => { end(): Counted },
  idle: WindowResult,
  partTargetMs: number,
  hz: number,
): Promise<Step> {
  const win = await openWindow(target.pid, hz, target.metricsBase);
  const seen = count();
  await measureFor(bench, stepSeconds, target.alive);
  const c = seen.end();
  const window = await win.stop();
  const p99Ms = Math.max(c.playlistMs.p99, c.partMs.p99);
  const clientMsPerPart = round((window.clientCpuPercent / 100) * partTargetMs, 1);
  const clientBound =
    clientMsPerPart >= CLIENT_BUDGET_MS || window.clientLoopP99Ms >= CLIENT_BUDGET_MS || window.loadCoreBusyPercent >= SATURATED_PERCENT;
  const requestsPerS = c.requests / window.wallS;
  // The origin's CPU time per request served, above what it spends idle: what viewers cost it.
  const serverUsPerRequest = round(((Math.max(0, window.serverCpuPercent - idle.serverCpuPercent) / 100) * 1e6) / requestsPerS, 0);
  const within = p99Ms <= LIMIT_MS && c.errors === 0 && c.gaps === 0;
  return { viewers, ...c, p99Ms, requestsPerS: round(requestsPerS, 0), serverUsPerRequest, clientMsPerPart, window, clientBound, within };
}

/**
 * Ramp viewers against one origin: a window with none first, then grow to each step's count (`add` starts
 * that many more), settle, measure, and stop after the first step over the limit.
 */
async function ramp(
  target: Target,
  add: (count: number) => Promise<void>,
  count: () => { end(): Counted },
  partTargetMs: number,
  hz: number,
): Promise<Ramp> {
  // What the origin spends with nobody watching (ours ingests and packages the stream): not a viewer's cost.
  const idleWin = await openWindow(target.pid, hz, target.metricsBase);
  await measureFor(bench, IDLE_SECONDS, target.alive);
  const idle = await idleWin.stop();
  const out: Step[] = [];
  for (const n of steps) {
    await add(n - (out[out.length - 1]?.viewers ?? 0));
    await bench.sleep(SETTLE_MS);
    bench.check();
    let step = await measureStep(target, n, count, idle, partTargetMs, hz);
    const disturbed = disturbance(step.window);
    if (!step.within && disturbed) {
      // Others share this machine: an over-limit step while they took a core says little about the origin.
      log(`${target.name}, ${n} viewers: over the limit while ${disturbed}; measuring again`);
      step = { ...(await measureStep(target, n, count, idle, partTargetMs, hz)), firstAttempt: step };
    }
    out.push(step);
    log(
      `${target.name}, ${n} viewers: p99 ${step.playlistMs.p99} / ${step.partMs.p99} ms (playlist / part), ${step.errors} errors, ${step.gaps} gaps, ` +
        `${step.requestsPerS} req/s; server ${step.window.serverCpuPercent} %, ${step.serverUsPerRequest} µs/request; ` +
        `client ${step.clientMsPerPart} ms/part, lag p99 ${step.window.clientLoopP99Ms} ms${step.clientBound ? ' (client-bound)' : ''}`,
    );
    if (step.lastErrors.length) log(`  last errors: ${step.lastErrors.slice(-3).join(' | ')}`);
    if (!step.within) break;
  }
  return { idle, steps: out };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const prov = await provenance(startedAt, 'bench:fanout', ROOT);
  requireTwoCores();
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found (Debian nginx-light): it serves the static floor`);
  await pinTree(process.pid, LOAD_CORE);
  const flv = await syntheticFlv();
  const hz = await clockTicks();
  const snapDir = mkdtempSync(join(tmpdir(), 'livepack-fanout-snapshot-'));
  // nginx's worker (user nobody when started as root) must get through it to the files.
  chmodSync(snapDir, 0o755);
  bench.cleanups.push(() => rmSync(snapDir, { recursive: true, force: true }));

  const { ours, snap, partTargetMs } = await runOurs(flv, join(snapDir, 'root'), hz);
  const { floor, command } = await runFloor(snapDir, snap, partTargetMs, hz);
  report(prov, ours, floor, { partTargetMs, snapshotParts: snap.partPaths.length, snapshotFiles: snap.files, nginxCommand: command });
}

/** Our server with one stream: snapshot the stream for nginx, then ramp LL-HLS viewers; stops the server after. */
async function runOurs(flv: string, snapRoot: string, hz: number): Promise<{ ours: Ramp; snap: SnapshotFiles; partTargetMs: number }> {
  const server = await startPinnedServer(bench, ROOT);
  const streams = await startLiveStreams(bench, server, flv, 1, 0);
  const mediaUrl = streams[0].mediaUrl;
  const partTargetMs = (await partTargetOf(mediaUrl)) * 1000;
  // Taken once the playlist lists parts of a few segments, before any viewer loads the server.
  await bench.waitFor(
    'a playlist listing 10 parts',
    async () => parseLivePlaylist((await request('GET', mediaUrl)).body).parts.length >= 10,
    20_000,
    { stepMs: 500 },
  );
  const snap = await snapshotPlaylist(mediaUrl, snapRoot);
  log(`snapshot: ${snap.files} files, ${snap.partPaths.length} parts, ${round(snap.bytes / 1024, 0)} KiB; PART-TARGET ${partTargetMs} ms`);

  const totals = newTotals();
  const pool = new ViewerPool(bench.signal);
  bench.cleanups.push(() => pool.close());
  const ours = await ramp(
    { name: 'ours', pid: server.pid, metricsBase: server.base, alive: () => assertRunning(server, streams) },
    (n) => pool.add(n, (signal) => runViewer(mediaUrl, signal, totals, { fetchParts: true }), JOIN_SPREAD_MS),
    () => {
      const w = viewerWindow(totals);
      return {
        end: () => {
          const v = w.end();
          return {
            playlistMs: v.playlistDelayMs,
            partMs: v.hintDelayMs,
            requests: v.requests,
            errors: v.errors,
            gaps: v.gaps,
            lastErrors: v.lastErrors,
          };
        },
      };
    },
    partTargetMs,
    hz,
  );
  await pool.close();
  // Free core 0 for nginx.
  await stopPublisher(streams[0].publisher);
  await server.stop(10_000);
  return { ours, snap, partTargetMs };
}

/** nginx serving the snapshot from disk to static viewers at the part rate. */
async function runFloor(snapDir: string, snap: SnapshotFiles, partTargetMs: number, hz: number): Promise<{ floor: Ramp; command: string }> {
  const nginx = await startNginx({
    nginxPath: NGINX,
    prefix: join(snapDir, 'nginx'),
    root: join(snapDir, 'root'),
    cpuList: SERVER_CORE,
    probePath: snap.playlistPath,
    signal: bench.signal,
  });
  bench.cleanups.push(() => nginx.stop());
  const totals = newStaticTotals();
  const pool = new ViewerPool(bench.signal);
  bench.cleanups.push(() => pool.close());
  const site = staticSnapshot(nginx.base, snap, partTargetMs);
  const alive = () => {
    if (!nginx.alive()) throw new Error(`nginx stopped: ${nginx.stderrText().trim()}`);
  };
  const floor = await ramp(
    { name: 'nginx', pid: nginx.pid, alive },
    (n) => pool.add(n, (signal) => runStaticViewer(site, signal, totals), JOIN_SPREAD_MS),
    () => {
      const w = staticWindow(totals);
      return {
        end: () => {
          const s = w.end();
          return {
            playlistMs: s.playlistMs,
            partMs: s.partMs,
            requests: s.requests,
            errors: s.errors,
            gaps: s.missedTicks,
            lastErrors: s.lastErrors,
          };
        },
      };
    },
    partTargetMs,
    hz,
  );
  await pool.close();
  await nginx.stop();
  return { floor, command: nginx.command };
}

/** The most viewers of a ramp within the limit, and whether the ramp ended before finding the limit. */
function maxWithin({ steps: ramp }: Ramp): { viewers: number; lowerBound: boolean; clientBound: boolean } {
  const ok = ramp.filter((s) => s.within);
  const last = ok.at(-1);
  const failed = ramp.find((s) => !s.within);
  // Without a failing step the limit is above the last step; a client-bound failure is the client's limit.
  return { viewers: last?.viewers ?? 0, lowerBound: !failed || failed.clientBound, clientBound: ramp.some((s) => s.clientBound) };
}

/** The origin's CPU per request above idle, µs, at the step with the most requests (fixed costs weigh least there). */
const usPerRequest = (ramp: Ramp) => ramp.steps[ramp.steps.length - 1]?.serverUsPerRequest ?? Number.NaN;

/**
 * Viewers at which the origin's own work per part reaches the limit: every viewer costs two requests per
 * part (playlist and part), answered in one burst. A projection from CPU time, not a measurement: it
 * leaves the client out, and assumes the burst is served back to back.
 */
const originOnlyViewers = (us: number) => (us > 0 ? Math.floor((LIMIT_MS * 1000) / (2 * us)) : undefined);

function printRamp(title: string, { idle, steps: ramp }: Ramp, playlistHead: string, partHead: string, gapsHead: string): void {
  console.log(`\n  ${title}`);
  console.log(
    `  with no viewer: origin ${idle.serverCpuPercent} % CPU (subtracted in srv µs/req), others on core ${SERVER_CORE} ${idle.othersOnServerCorePercent} %`,
  );
  printTable(
    [
      'viewers',
      `${playlistHead} p50`,
      'p99',
      `${partHead} p50`,
      'p99',
      'err',
      gapsHead,
      'req/s',
      'srv CPU %',
      'srv µs/req',
      'srv lag p99',
      `others c${SERVER_CORE} %`,
      'client CPU %',
      'client ms/part',
      'client lag p99',
      `others c${LOAD_CORE} %`,
      `<= ${LIMIT_MS} ms`,
    ],
    ramp.map((s) => [
      s.viewers,
      s.playlistMs.p50,
      s.playlistMs.p99,
      s.partMs.p50,
      s.partMs.p99,
      s.errors,
      s.gaps,
      s.requestsPerS,
      s.window.serverCpuPercent,
      s.serverUsPerRequest,
      s.window.serverLoopP99Ms,
      s.window.othersOnServerCorePercent,
      s.window.clientCpuPercent,
      s.clientMsPerPart,
      s.window.clientLoopP99Ms,
      s.window.othersOnLoadCorePercent,
      (s.within ? 'yes' : 'NO') + (s.clientBound ? ' (client-bound)' : '') + (s.firstAttempt ? ' (2nd try)' : ''),
    ]),
  );
}

function report(
  prov: Provenance,
  ours: Ramp,
  floor: Ramp,
  setup: { partTargetMs: number; snapshotParts: number; snapshotFiles: number; nginxCommand: string },
): void {
  const a = maxWithin(ours);
  const b = maxWithin(floor);
  const ratio = b.viewers > 0 ? round(a.viewers / b.viewers, 2) : undefined;
  const fig = (m: ReturnType<typeof maxWithin>) =>
    `${m.lowerBound ? '>= ' : ''}${m.viewers}${m.clientBound ? ' (client-bound steps: the client, not the origin, may be the limit)' : ''}`;

  printProvenance('livepack viewer fan-out bench', prov);
  console.log(`  source: ${describeSynthetic()}, publisher pinned to core ${LOAD_CORE}`);
  console.log(
    `  origin pinned to core ${SERVER_CORE}; viewers in this process on core ${LOAD_CORE}; PART-TARGET ${setup.partTargetMs} ms; ${stepSeconds} s per step after ${JOIN_SPREAD_MS / 1000} s of joins and ${SETTLE_MS / 1000} s settling`,
  );
  console.log(`  limit: p99 <= ${LIMIT_MS} ms for both columns, no errors, no gaps (each ramp stops at its first step over)`);
  printRamp(
    'ours: simulated hls.js LL-HLS viewers (blocking playlist reload + preload-hint part), delivery delay in ms',
    ours,
    'playlist',
    'hint',
    'gaps',
  );
  printRamp(
    `floor: nginx 1 worker, same files from disk (${setup.snapshotParts} parts looped); playlist + part every PART-TARGET, response time in ms`,
    floor,
    'playlist',
    'part',
    'missed',
  );
  console.log(
    '  (CPU in % of one core; "lag p99" = event loop lag p99 in ms; "others" = busy time of that core not ours: other work on the machine;\n' +
      `   "missed" = part ticks skipped because answers were still out; client-bound = the client busy >= ${CLIENT_BUDGET_MS} ms per part (client ms/part),\n` +
      `   its lag p99 >= ${CLIENT_BUDGET_MS} ms or core ${LOAD_CORE} >= ${SATURATED_PERCENT} %; "2nd try" = measured again after an over-limit window while others took\n` +
      `   >= ${DISTURBED_PERCENT} % of a core)\n`,
  );
  console.log(`  max viewers within ${LIMIT_MS} ms, ours:  ${fig(a)}`);
  console.log(`  max viewers within ${LIMIT_MS} ms, nginx: ${fig(b)}`);
  console.log(`  ratio ours / nginx: ${ratio ?? '-'}${a.lowerBound || b.lowerBound ? ' (at least one side is a lower bound)' : ''}`);
  const cost = { ours: usPerRequest(ours), nginx: usPerRequest(floor) };
  const projected = { ours: originOnlyViewers(cost.ours), nginx: originOnlyViewers(cost.nginx) };
  console.log(
    `  origin CPU per request: ours ${cost.ours} µs, nginx ${cost.nginx} µs (ratio ${round(cost.ours / cost.nginx, 1)}); ` +
      `projected from it, viewers whose burst of 2 requests each fits in ${LIMIT_MS} ms of one core: ours ${projected.ours ?? '-'}, nginx ${projected.nginx ?? '-'} (not measured)`,
  );

  writeRampResults(ROOT, 'fanout', new Date(prov.date), {
    ...prov,
    setup: {
      source: describeSynthetic(),
      serverCore: SERVER_CORE,
      loadCore: LOAD_CORE,
      steps,
      stepSeconds,
      joinSpreadMs: JOIN_SPREAD_MS,
      settleMs: SETTLE_MS,
      limitMs: LIMIT_MS,
      partTargetMs: setup.partTargetMs,
      nginx: { command: setup.nginxCommand, snapshotFiles: setup.snapshotFiles, snapshotParts: setup.snapshotParts },
      definitions: {
        ours: 'part delivery delay (harness/llhls-viewer.ts): arrival of the held answer - (PDT + offset + duration of the part); playlistMs for blocking playlist reloads, partMs for preload-hint part fetches',
        nginx:
          'response time (bench/lib/static-viewer.ts): request sent to whole answer, playlist and part requested side by side every PART-TARGET on a shared grid',
        p99Ms: 'the worse of the playlist and part p99',
        clientBound: `this process busy >= ${CLIENT_BUDGET_MS} ms per PART-TARGET (its CPU share x PART-TARGET), its event loop lag p99 >= ${CLIENT_BUDGET_MS} ms, or core ${LOAD_CORE} >= ${SATURATED_PERCENT} % busy`,
        serverUsPerRequest: 'CPU time of the origin process tree per request answered, microseconds',
      },
    },
    summary: {
      oursMaxViewers: a,
      nginxMaxViewers: b,
      ratio,
      originUsPerRequest: cost,
      originOnlyProjectedViewers: projected,
      projectionNote:
        'LIMIT / (2 requests per viewer per part x CPU per request): the client left out, the burst assumed served back to back; not measured',
    },
    ours,
    nginx: floor,
  });
}

main().then(
  () => bench.shutdown(0),
  (err: unknown) => {
    if (!bench.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return bench.shutdown(bench.signal.aborted ? 130 : 1);
  },
);
