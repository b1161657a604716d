/**
 * Node flags bench: `npm run bench:node-flags -- [--streams 40] [--seconds 60] [--warmup 10]`.
 *
 * CPU and RSS of the server with N passthrough streams under different node (V8) flag sets, one after
 * another: the server pinned to core 0 (taskset, all threads), the synthetic publishers on core 1. It is
 * the measurement behind SERVER_NODE_FLAGS (the flags `npm start` passes): with V8's default heap sizing
 * the server ran a full mark-compact about once a second under ingest load. Prints a table and writes
 * bench/results/node-flags-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicks, TreeCpu } from './lib/cpu.js';
import { request } from '../harness/http.js';
import { rssOf } from '../harness/processes.js';
import { parseBenchCli, startBenchRun } from './lib/run.js';
import { SERVER_NODE_FLAGS, startServerProcess } from '../harness/server-process.js';
import { describeSynthetic, startPublisher, stopPublisher, syntheticFlv, type Publisher } from './lib/synthetic.js';
import { gitCommit, resultsDir, writeResults } from './lib/results.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'bench-token-0123456789abcdef';
const FLAG_SETS: readonly (readonly string[])[] = [
  [],
  ['--initial-old-space-size=64'],
  ['--initial-old-space-size=128'],
  ['--initial-old-space-size=256'],
  ['--max-semi-space-size=32'],
];

const cli = parseBenchCli(
  'npm run bench:node-flags -- [--streams N (default 40)] [--seconds N (default 60)] [--warmup N (default 10)]',
  {},
  {
    streams: { default: 40, min: 1, max: 200 },
  },
);
const { seconds, warmup } = cli;
const streams = cli.integers.streams;
const bench = startBenchRun({ budgetS: FLAG_SETS.length * (60 + warmup + seconds + streams * 0.2) + 60, forceExitMs: 20_000 });

interface Row {
  readonly flags: string;
  readonly cpuPercent: number;
  readonly rssMB: number;
}

async function measure(flags: readonly string[], file: string): Promise<Row> {
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-node-flags-'));
  const server = await startServerProcess(ROOT, dataDir, TOKEN, bench.signal, {}, 30_000, 50, [], flags);
  const publishers: Publisher[] = [];
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(server.pid)], { stdio: 'ignore' });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    for (let i = 0; i < streams; i++) {
      const r = await request('POST', `${server.base}/api/v1/streams`, {
        headers,
        body: JSON.stringify({ name: `s${i}`, profile: 'passthrough' }),
      });
      if (r.status !== 201) throw new Error(`creating a stream answered ${r.status}: ${r.body}`);
      publishers.push(
        startPublisher(file, `rtmp://127.0.0.1:${server.rtmpPort}/live/${(JSON.parse(r.body) as { streamKey: string }).streamKey}`, {
          taskset: '1',
        }),
      );
    }
    await bench.sleep(warmup * 1000);
    bench.check();
    const cpu = new TreeCpu(server.pid, await clockTicks());
    cpu.start();
    await bench.sleep(seconds * 1000);
    bench.check();
    const result = cpu.stop();
    if (!server.alive()) throw new Error(`the server exited: ${server.stderrText().slice(-500)}`);
    return {
      flags: flags.join(' ') || '(none)',
      cpuPercent: result.percentOfOneCore,
      rssMB: Math.round((rssOf(server.pid) ?? Number.NaN) / 2 ** 20),
    };
  } finally {
    await Promise.all(publishers.map((p) => stopPublisher(p)));
    await server.stop(10_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const file = await syntheticFlv();
  const rows: Row[] = [];
  for (const flags of FLAG_SETS) {
    const row = await measure(flags, file);
    console.error(`[node-flags] ${row.flags}: ${row.cpuPercent} % of a core, RSS ${row.rssMB} MB`);
    rows.push(row);
  }
  const commit = gitCommit(ROOT);
  console.log(`\nlivepack node flags bench  ${startedAt.toISOString()}  commit ${commit}`);
  console.log(
    `  ${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}; ${streams} passthrough streams of ${describeSynthetic()}`,
  );
  console.log(
    `  server pinned to core 0, publishers on core 1; CPU over ${seconds} s after ${warmup} s; npm start uses: ${SERVER_NODE_FLAGS.join(' ')}\n`,
  );
  console.log(`  ${'node flags'.padEnd(34)}${'CPU % of a core'.padStart(16)}${'RSS MB'.padStart(9)}`);
  for (const r of rows) console.log(`  ${r.flags.padEnd(34)}${r.cpuPercent.toFixed(1).padStart(16)}${String(r.rssMB).padStart(9)}`);
  writeResults(resultsDir(ROOT), 'node-flags', startedAt, {
    date: startedAt.toISOString(),
    commit,
    streams,
    seconds,
    warmup,
    serverNodeFlags: SERVER_NODE_FLAGS,
    rows,
  });
  await bench.shutdown(0);
}

main().catch((err) => {
  console.error(`bench failed: ${(err as Error).message}`);
  void bench.shutdown(1);
});
