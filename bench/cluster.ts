/**
 * Cluster bench: `npm run bench:cluster -- [--streams 4] [--viewers 500] [--seconds 60] [--warmup 10]
 *                                          [--baseline-viewers 50] [--direct-viewers 20]`
 *
 * The topology of docker-compose.yml as processes on loopback (harness/cluster.ts: 2 ingest nodes, 2
 * origins, nginx with deploy/nginx.conf in front of the origins) on the machine's Redis (REDIS_URL, default
 * redis://127.0.0.1:6379, under a prefix of its own) and PostgreSQL (a database of its own on the server of
 * DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test, created and dropped). N synthetic
 * passthrough streams (bench/lib/synthetic.ts), published alternately to ingest-1 and ingest-2, and V
 * simulated LL-HLS viewers (harness/llhls-viewer.ts) spread over them, all through nginx. Beside them:
 *   - the single-node baseline in the same run: one more node with every role and no Redis (today's single
 *     process, embedded catalog), one stream of the same file, --baseline-viewers viewers straight at it;
 *   - --direct-viewers viewers straight at origin-1 (no nginx), on a stream another node ingests: what
 *     Redis adds without the edge.
 * Mid-window, stream 0's publisher is dropped on ingest-1 (SIGKILL, a lost connection) and started at once on
 * ingest-2, within RECONNECT_GRACE_MS: a handover.
 *
 * Prints, over the measured window (after --warmup): the cache hit ratio of parts and segments and the share
 * of viewer requests that reached an origin (nginx's access log, with $upstream_cache_status and
 * $upstream_addr); the part delivery delay through nginx, direct from an origin and from the single node
 * (p50/p99); Redis CPU, memory and bytes per second per stream (INFO deltas; the Redis is the machine's, so
 * other users count too); what the handover cost stream 0's viewers (each viewer's longest time between two
 * parts around the move, p50/p99). Writes bench/results/cluster-<date>.json. Bounded in time; stops every
 * process it started, deletes its Redis keys and drops its database.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startLocalCluster, type LocalCluster } from '../harness/cluster.js';
import { request } from '../harness/http.js';
import { newTotals, runViewer, type ViewerTotals } from '../harness/llhls-viewer.js';
import { createDatabase, dropDatabase } from '../harness/postgres.js';
import { withoutPassword } from '../harness/processes.js';
import { deleteKeysWithPrefix } from '../harness/redis.js';
import { startServerProcess, type ServerProcess } from '../harness/server-process.js';
import {
  ACCESS_LOG_FORMAT,
  countAccessLog,
  handoverCost,
  prefixMemory,
  recordedViewer,
  redisInfo,
  type AccessLogCounts,
  type RecordedViewer,
} from './lib/cluster-figures.js';
import { allStats, busyPercent, clockTicks, machineCpu, treeOf } from './lib/cpu.js';
import { partTargetOf } from './lib/ramp-server.js';
import { ViewerPool } from './lib/ramp-window.js';
import { printProvenance, printTable, provenance, round, writeRampResults } from './lib/ramp.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { rounded, summarize, type Summary } from './lib/stats.js';
import { describeSynthetic, dropPublisher, startPublisher, stopPublisher, syntheticFlv, type Publisher } from './lib/synthetic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE =
  'npm run bench:cluster -- [--streams N (4)] [--viewers V (500)] [--seconds S (60)] [--warmup S (10)] [--baseline-viewers N (50)] [--direct-viewers N (20)]';
const cli = parseBenchCli(
  USAGE,
  {},
  {
    streams: { default: 4, min: 1, max: 40 },
    viewers: { default: 500, min: 1, max: 5000 },
    'baseline-viewers': { default: 50, min: 0, max: 1000 },
    'direct-viewers': { default: 20, min: 0, max: 1000 },
  },
);
const { streams: STREAMS, viewers: VIEWERS } = cli.integers;
const BASELINE_VIEWERS = cli.integers['baseline-viewers'];
const DIRECT_VIEWERS = cli.integers['direct-viewers'];
const JOIN_SPREAD_MS = 5000;
/** Part arrivals are recorded from this long before the move; the handover is judged until this long after. */
const HANDOVER_BEFORE_MS = 3000;
const HANDOVER_AFTER_MS = 15_000;
const bench = startBenchRun({ budgetS: 300 + cli.warmup + cli.seconds, forceExitMs: 60_000 });
const log = (s: string) => console.error(`[cluster] ${s}`);

interface Stream {
  readonly id: string;
  readonly streamKey: string;
  publisher: Publisher;
}

async function createStream(base: string, token: string, name: string): Promise<{ id: string; streamKey: string }> {
  const r = await request('POST', `${base}/api/v1/streams`, {
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, profile: 'passthrough' }),
  });
  if (r.status !== 201) throw new Error(`creating a stream at ${base} answered ${r.status}: ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as { id: string; streamKey: string };
}

const rtmpUrl = (node: ServerProcess, key: string) => `rtmp://127.0.0.1:${node.rtmpPort}/live/${key}`;
const mediaPath = (id: string) => `/live/${id}/source/index.m3u8`;

async function waitForParts(url: string): Promise<void> {
  await bench.waitFor(
    `${url} listing a part`,
    async () => {
      const r = await request('GET', url, { timeoutMs: 5000 });
      return r.status === 200 && r.body.includes('#EXT-X-PART:');
    },
    45_000,
    { stepMs: 250, tolerateErrors: true },
  );
}

/** CPU ticks of process trees, read at the window's ends. */
function treeTicks(roots: Record<string, number | undefined>): Record<string, number> {
  const stats = allStats();
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(roots)) {
    if (pid === undefined) continue;
    out[name] = treeOf(pid, stats).reduce((a, s) => a + s.ticks, 0);
  }
  return out;
}

/** nginx's master (our child) and its workers. */
function nginxTicks(): number {
  const stats = allStats();
  const masters = stats.filter((s) => s.ppid === process.pid && s.comm === 'nginx');
  return masters.reduce((a, m) => a + treeOf(m.pid, stats).reduce((b, s) => b + s.ticks, 0), 0);
}

interface Group {
  readonly name: string;
  readonly totals: ViewerTotals[];
}

interface GroupFigures {
  readonly viewers: number;
  readonly playlistMs: Summary;
  readonly hintMs: Summary;
  readonly requests: number;
  readonly errors: number;
  readonly gaps: number;
  readonly lastErrors: string[];
}

/** Clear the delay samples and remember the counters at the window's start. */
function openGroup(g: Group): () => GroupFigures {
  for (const t of g.totals) {
    t.playlistDelaysMs.length = 0;
    t.hintDelaysMs.length = 0;
  }
  const sum = (k: 'requests' | 'errors' | 'gaps') => g.totals.reduce((a, t) => a + t[k], 0);
  const start = { requests: sum('requests'), errors: sum('errors'), gaps: sum('gaps') };
  return () => ({
    viewers: 0,
    playlistMs: rounded(summarize(g.totals.flatMap((t) => t.playlistDelaysMs)), 1),
    hintMs: rounded(summarize(g.totals.flatMap((t) => t.hintDelaysMs)), 1),
    requests: sum('requests') - start.requests,
    errors: sum('errors') - start.errors,
    gaps: sum('gaps') - start.gaps,
    lastErrors: g.totals.flatMap((t) => t.lastErrors).slice(-5),
  });
}

const pct = (a: number, b: number) => (b > 0 ? round((a / b) * 100, 2) : Number.NaN);

async function main(): Promise<void> {
  const startedAt = new Date();
  const prov = await provenance(startedAt, 'bench:cluster', ROOT);
  const flv = await syntheticFlv();
  const hz = await clockTicks();
  const tag = randomBytes(4).toString('hex');
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redisPrefix = `livepack-bench-cluster-${tag}:`;
  const pgServer = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const dbName = `livepack_bench_cluster_${tag}`;
  const databaseUrl = await createDatabase(pgServer, dbName);
  bench.cleanups.push(() => dropDatabase(pgServer, dbName));
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  bench.cleanups.push(() => redis.disconnect());
  bench.cleanups.push(() => deleteKeysWithPrefix(redisUrl, redisPrefix));
  const dir = mkdtempSync(join(tmpdir(), 'livepack-bench-cluster-'));
  bench.cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const accessLog = join(dir, 'access.log');
  const apiToken = randomBytes(24).toString('base64url');
  const before = await redisInfo(redis);

  log(`starting 2 ingest + 2 origin nodes and nginx (Redis ${withoutPassword(redisUrl)} prefix ${redisPrefix}, database ${dbName})`);
  const cluster: LocalCluster = await startLocalCluster({
    repoRoot: ROOT,
    dir,
    redisUrl,
    redisPrefix,
    databaseUrl,
    apiToken,
    playbackTokenSecret: randomBytes(32).toString('base64url'),
    signal: bench.signal,
    workers: 0,
    env: { LOG_LEVEL: 'warn' },
    accessLog: { file: accessLog, format: ACCESS_LOG_FORMAT },
  });
  bench.cleanups.push(() => cluster.stop());
  const [ingest1, ingest2] = cluster.ingest;

  let single: ServerProcess | undefined;
  let singleStream: Stream | undefined;
  if (BASELINE_VIEWERS > 0) {
    log('starting the single-node baseline (every role, no Redis, embedded catalog)');
    const singleDir = join(dir, 'single');
    mkdirSync(singleDir, { recursive: true });
    single = await startServerProcess(ROOT, singleDir, apiToken, bench.signal, { REDIS_URL: '', DATABASE_URL: '', NODE_ROLES: '' }, 60_000);
    bench.cleanups.push(() => single!.stop(15_000));
  }

  const streams: Stream[] = [];
  bench.cleanups.push(() => Promise.all([...streams, ...(singleStream ? [singleStream] : [])].map((s) => stopPublisher(s.publisher))));
  for (let i = 0; i < STREAMS; i++) {
    const s = await createStream(cluster.edge, apiToken, `bench-cluster-${i}`);
    streams.push({ ...s, publisher: startPublisher(flv, rtmpUrl(i % 2 === 0 ? ingest1 : ingest2, s.streamKey)) });
  }
  if (single) {
    const s = await createStream(single.base, apiToken, 'bench-single');
    singleStream = { ...s, publisher: startPublisher(flv, rtmpUrl(single, s.streamKey)) };
  }
  for (const s of streams) await waitForParts(cluster.edge + mediaPath(s.id));
  if (single && singleStream) await waitForParts(single.base + mediaPath(singleStream.id));
  const partTargetMs = (await partTargetOf(cluster.edge + mediaPath(streams[0].id))) * 1000;
  log(`${STREAMS} streams live; PART-TARGET ${partTargetMs} ms`);

  // ---- viewers ----
  const pool = new ViewerPool(bench.signal);
  bench.cleanups.push(() => pool.close());
  const moved: RecordedViewer[] = [];
  const edge: Group = { name: 'through nginx', totals: [] };
  const joins: Promise<void>[] = [];
  for (let i = 0; i < STREAMS; i++) {
    const count = Math.floor(VIEWERS / STREAMS) + (i < VIEWERS % STREAMS ? 1 : 0);
    const url = cluster.edge + mediaPath(streams[i].id);
    const shared = newTotals();
    if (i > 0) edge.totals.push(shared);
    joins.push(
      pool.add(
        count,
        (signal) => {
          if (i > 0) return runViewer(url, signal, shared);
          // Stream 0 moves: each of its viewers keeps its own part arrival times.
          const v = recordedViewer();
          moved.push(v);
          edge.totals.push(v.totals);
          return runViewer(url, signal, v.totals);
        },
        JOIN_SPREAD_MS,
      ),
    );
  }
  // A stream that is not the one that moves (when there is one), ingested by a node that is not the origin.
  const directStream = streams[STREAMS > 1 ? 1 : 0];
  const direct: Group = { name: 'straight at origin-1', totals: [newTotals()] };
  if (DIRECT_VIEWERS > 0)
    joins.push(
      pool.add(
        DIRECT_VIEWERS,
        (signal) => runViewer(cluster.origins[0].base + mediaPath(directStream.id), signal, direct.totals[0]),
        JOIN_SPREAD_MS,
      ),
    );
  const baseline: Group = { name: 'single node', totals: [newTotals()] };
  if (single && singleStream) {
    const url = single.base + mediaPath(singleStream.id);
    joins.push(pool.add(BASELINE_VIEWERS, (signal) => runViewer(url, signal, baseline.totals[0]), JOIN_SPREAD_MS));
  }
  await Promise.all(joins);
  log(
    `${VIEWERS} viewers through nginx, ${DIRECT_VIEWERS} straight at origin-1, ${single ? BASELINE_VIEWERS : 0} on the single node; warm-up ${cli.warmup} s`,
  );
  await bench.sleep(cli.warmup * 1000);
  bench.check();

  // ---- the measured window ----
  const groups = [edge, direct, baseline].map((g) => ({ g, end: openGroup(g) }));
  const roots = {
    'ingest-1': ingest1.pid,
    'ingest-2': ingest2.pid,
    'origin-1': cluster.origins[0].pid,
    'origin-2': cluster.origins[1].pid,
    'single node': single?.pid,
  };
  const t0 = Date.now();
  const ticks0: Record<string, number> = { ...treeTicks(roots), nginx: nginxTicks() };
  const machine0 = machineCpu();
  const client0 = process.cpuUsage();
  const info0 = await redisInfo(redis);
  const windowMs = cli.seconds * 1000;
  const moveAt = t0 + Math.round(windowMs / 3);
  await bench.sleep(Math.max(0, moveAt - HANDOVER_BEFORE_MS - Date.now()));
  for (const v of moved) v.recording = true;
  await bench.sleep(Math.max(0, moveAt - Date.now()));
  bench.check();
  const movedAt = Date.now();
  log(`handover: dropping stream 0's publisher on ingest-1, publishing it to ingest-2`);
  await dropPublisher(streams[0].publisher);
  streams[0].publisher = startPublisher(flv, rtmpUrl(ingest2, streams[0].streamKey));
  const handoverEnd = Math.min(movedAt + HANDOVER_AFTER_MS, t0 + windowMs);
  await bench.sleep(Math.max(0, handoverEnd - Date.now()));
  bench.check();
  for (const v of moved) v.recording = false;
  const afterMove = await request('GET', cluster.edge + mediaPath(streams[0].id), { timeoutMs: 5000 });
  const seam = /^#EXT-X-DISCONTINUITY$/m.test(afterMove.body);
  await bench.sleep(Math.max(0, t0 + windowMs - Date.now()));
  bench.check();
  const t1 = Date.now();
  const info1 = await redisInfo(redis);
  const ticks1 = { ...treeTicks(roots), nginx: nginxTicks() };
  const machineBusy = busyPercent(machine0, machineCpu());
  const client1 = process.cpuUsage(client0);
  const figures = groups.map(({ g, end }) => ({ name: g.name, ...end() }));
  const keys = await prefixMemory(redis, redisUrl, redisPrefix);
  const nginxLog = countAccessLog(accessLog, t0, t1);
  const handover = handoverCost(moved, movedAt, handoverEnd);
  await pool.close();

  const wallS = (t1 - t0) / 1000;
  const cpuPercent = Object.fromEntries(
    Object.entries(ticks1).map(([k, v]) => [k, round(((v - (ticks0[k] ?? v)) / hz / wallS) * 100, 1)]),
  ) as Record<string, number>;
  cpuPercent['bench client (this process)'] = round(((client1.user + client1.system) / 1e6 / wallS) * 100, 1);
  const redisFig = {
    cpuPercentPerStream: round((((info1.cpuS - info0.cpuS) / wallS) * 100) / STREAMS, 2),
    cpuPercent: round(((info1.cpuS - info0.cpuS) / wallS) * 100, 2),
    inBytesPerSPerStream: round((info1.netIn - info0.netIn) / wallS / STREAMS, 0),
    outBytesPerSPerStream: round((info1.netOut - info0.netOut) / wallS / STREAMS, 0),
    commandsPerSPerStream: round((info1.commands - info0.commands) / wallS / STREAMS, 0),
    usedMemoryGrowthPerStream: round((info1.usedMemory - before.usedMemory) / STREAMS, 0),
    prefixKeys: keys.keys,
    prefixBytesPerStream: round(keys.bytes / STREAMS, 0),
    usedMemory: info1.usedMemory,
    otherClientsBefore: before.connectedClients - 1,
  };
  report(prov, {
    partTargetMs,
    wallS,
    nginxLog,
    figures,
    cpuPercent,
    machineBusy,
    redis: redisFig,
    handover,
    seam,
    newPublisherAlive: streams[0].publisher.exitCode === null,
  });
}

function report(
  prov: Awaited<ReturnType<typeof provenance>>,
  r: {
    partTargetMs: number;
    wallS: number;
    nginxLog: AccessLogCounts;
    figures: (GroupFigures & { name: string })[];
    cpuPercent: Record<string, number>;
    machineBusy: number;
    redis: Record<string, number>;
    handover: ReturnType<typeof handoverCost>;
    seam: boolean;
    newPublisherAlive: boolean;
  },
): void {
  const k = r.nginxLog.byKind;
  const media = { requests: k.part.requests + k.segment.requests, hits: k.part.hits + k.segment.hits };
  const hitRatio = pct(media.hits, media.requests);
  const originShare = pct(r.nginxLog.toOrigin, r.nginxLog.requests);
  printProvenance('livepack cluster bench', prov);
  console.log(`  source: ${describeSynthetic()}, passthrough; PART-TARGET ${r.partTargetMs} ms`);
  console.log(
    `  topology: 2 ingest + 2 origin nodes + nginx (deploy/nginx.conf) on loopback; ${STREAMS} streams, ${VIEWERS} simulated LL-HLS viewers through nginx; window ${round(r.wallS, 1)} s after ${cli.warmup} s warm-up`,
  );
  console.log(`\n  nginx (access log, ${r.nginxLog.requests} viewer requests in the window, ${r.nginxLog.failed} not 2xx)`);
  printTable(
    ['request', 'count', 'HIT', 'hit %', 'to origin', 'cache statuses'],
    Object.entries(k)
      .filter(([, c]) => c.requests > 0)
      .map(([name, c]) => [
        name,
        c.requests,
        c.hits,
        pct(c.hits, c.requests),
        c.toOrigin,
        Object.entries(c.statuses)
          .map(([s, n]) => `${s} ${n}`)
          .join(', '),
      ]),
  );
  console.log(`  cache hit ratio, parts + segments: ${hitRatio} % (target >= 95 %)`);
  console.log(`  viewer requests that reached an origin: ${originShare} % (target < 5 %)`);

  console.log('\n  part delivery delay, ms (answer arrived - part complete by PDT; held answers only)');
  printTable(
    ['viewers', 'count', 'playlist p50', 'p99', 'hint p50', 'p99', 'samples', 'req', 'err', 'gaps'],
    r.figures.map((f) => [
      f.name,
      f.name === 'through nginx' ? VIEWERS : f.name === 'single node' ? BASELINE_VIEWERS : DIRECT_VIEWERS,
      f.playlistMs.p50,
      f.playlistMs.p99,
      f.hintMs.p50,
      f.hintMs.p99,
      f.playlistMs.n + f.hintMs.n,
      f.requests,
      f.errors,
      f.gaps,
    ]),
  );
  for (const f of r.figures) if (f.lastErrors.length) console.log(`  ${f.name}, last errors: ${f.lastErrors.join(' | ')}`);

  const x = r.redis;
  console.log(
    `\n  Redis (${x.otherClientsBefore} other clients connected before the bench: its INFO counts them too)\n` +
      `    CPU ${x.cpuPercent} % of a core, ${x.cpuPercentPerStream} % per stream; ${x.commandsPerSPerStream} commands/s per stream\n` +
      `    network per stream: in ${round(x.inBytesPerSPerStream / 1024, 1)} KiB/s, out ${round(x.outBytesPerSPerStream / 1024, 1)} KiB/s\n` +
      `    memory per stream: ${round(x.prefixBytesPerStream / 2 ** 20, 2)} MiB under the prefix (${x.prefixKeys} keys, MEMORY USAGE), used_memory growth ${round(x.usedMemoryGrowthPerStream / 2 ** 20, 2)} MiB`,
  );

  const h = r.handover;
  console.log(
    `\n  handover of stream 0 (ingest-1 -> ingest-2, publisher dropped and restarted at once), its ${h.viewers} viewers, ` +
      `${HANDOVER_BEFORE_MS / 1000} s before to ${HANDOVER_AFTER_MS / 1000} s after the move:`,
  );
  console.log(
    `    longest time between parts p50 ${round(h.longestGapMs.p50, 0)} / p99 ${round(h.longestGapMs.p99, 0)} / max ${round(h.longestGapMs.max, 0)} ms (usual ${round(h.usualGapMs, 0)} ms)`,
  );
  console.log(`    stall (that less the usual) p50 ${round(h.stallMs.p50, 0)} / p99 ${round(h.stallMs.p99, 0)} ms`);
  console.log(
    `    first part arrival after the move (old or new session) p50 ${round(h.firstPartAfterMs.p50, 0)} / p99 ${round(h.firstPartAfterMs.p99, 0)} ms; never resumed: ${h.neverResumed}; ` +
      `EXT-X-DISCONTINUITY in the playlist after: ${r.seam ? 'yes' : 'NO'}; publisher on ingest-2 running: ${r.newPublisherAlive ? 'yes' : 'NO'}`,
  );
  console.log(
    `\n  CPU, % of one core: ${Object.entries(r.cpuPercent)
      .map(([n, v]) => `${n} ${v}`)
      .join(', ')}; machine ${r.machineBusy} % busy`,
  );

  writeRampResults(ROOT, 'cluster', new Date(prov.date), {
    ...prov,
    setup: {
      source: describeSynthetic(),
      streams: STREAMS,
      viewers: VIEWERS,
      baselineViewers: BASELINE_VIEWERS,
      directViewers: DIRECT_VIEWERS,
      seconds: cli.seconds,
      warmup: cli.warmup,
      partTargetMs: r.partTargetMs,
      definitions: {
        hitRatio: 'nginx access log: part and segment requests with $upstream_cache_status HIT / all of them, in the window',
        originShare: 'nginx access log: requests with $upstream_addr set (passed to an origin) / all requests, in the window',
        delays: 'harness/llhls-viewer.ts: arrival of a held answer - (PDT + offset + duration of the part)',
        redis:
          "INFO deltas over the window / seconds / streams (the machine's Redis: other users count too); memory: MEMORY USAGE of the keys under the prefix at the window's end",
        handover:
          'per viewer of the moved stream: longest time between two part arrivals from 3 s before the move to 15 s after; stall = that less the median time between parts before the move',
      },
    },
    summary: { hitRatioPercent: hitRatio, originSharePercent: originShare, handover: r.handover, redis: r.redis },
    ...r,
  });
}

main().then(
  () => bench.shutdown(0),
  (err: unknown) => {
    if (!bench.signal.aborted) console.error(`bench failed: ${err instanceof Error ? (err.stack ?? String(err)) : String(err)}`);
    return bench.shutdown(bench.signal.aborted ? 130 : 1);
  },
);
