import type { Summary } from '../stats.js';
import type { ServerFigures } from './figures.js';

/** One server's entry in the results: what ran, and its figures or why it has none. */
export interface ServerResult {
  readonly name: string;
  readonly version?: string;
  readonly command?: string;
  readonly settings?: string;
  readonly hls?: 'll-hls' | 'hls' | 'none';
  readonly readyMs?: number;
  readonly figures?: ServerFigures;
  /** Set when the server was skipped or failed. */
  readonly skipped?: string;
}

export interface Ratios {
  readonly peer: string;
  /** ours / peer: below 1 means ours uses less. */
  readonly cpuPerStream: number | null;
  readonly rssPerStream: number | null;
  /** peer / ours: above 1 means ours is faster. */
  readonly firstSegment: number | null;
  readonly latencyP50: number | null;
}

export interface PeersReport {
  readonly date: string;
  readonly commit: string;
  readonly command: string;
  readonly machine: { cpus: number; cpuModel: string; memoryGB: number; platform: string; node: string; ffmpeg: string };
  readonly setup: Record<string, unknown> & {
    streams: number;
    seconds: number;
    warmup: number;
    idleSeconds: number;
    workload: string;
    pinning: string;
  };
  readonly servers: ServerResult[];
  readonly ratios: Ratios[];
  readonly definitions: Record<string, string>;
}

const COL = 22;
const NA = 'n/a';
const f = (x: number | null | undefined, d: number) => (x === null || x === undefined || !Number.isFinite(x) ? NA : x.toFixed(d));
const pair = (s: Summary | undefined, d: number) => (s && s.n ? `${f(s.p50, d)} / ${f(s.p95, d)}` : NA);

/** Print the side-by-side table (`r` is what bench/peers.ts writes as JSON). */
export function printPeersReport(r: PeersReport): void {
  const servers = r.servers;
  console.log(`\nlivepack peers bench  ${r.date}  (commit ${r.commit})`);
  const m = r.machine;
  console.log(`  machine: ${m.platform}, ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGB} GB, node ${m.node}, ${m.ffmpeg}`);
  console.log(`  command: ${r.command}`);
  console.log(`  workload: ${r.setup.streams} publishers per server: ${r.setup.workload}`);
  console.log(
    `  ${r.setup.pinning}; servers measured one after another; idle ${r.setup.idleSeconds} s, warm-up ${r.setup.warmup} s, window ${r.setup.seconds} s\n`,
  );

  const header = ['  ' + ''.padEnd(44), ...servers.map((s) => s.name.padStart(COL))].join('');
  console.log(header);
  const row = (label: string, cell: (s: ServerResult, fig: ServerFigures) => string) =>
    console.log(['  ' + label.padEnd(44), ...servers.map((s) => (s.figures ? cell(s, s.figures) : 'skipped').padStart(COL))].join(''));
  const n = r.setup.streams;
  row('CPU idle (% of one core)', (_, x) => f(x.cpu.idlePercent, 1));
  row(`CPU with ${n} streams (% of one core)`, (_, x) => f(x.cpu.loadedPercent, 1));
  row('CPU per ingest stream (%)', (_, x) => f(x.cpu.perStreamPercent, 2));
  row('RSS idle (MB)', (_, x) => f(x.rssMB.idle, 1));
  row(`RSS with ${n} streams (MB)`, (_, x) => f(x.rssMB.loaded, 1));
  row('RSS per ingest stream (MB)', (_, x) => f(x.rssMB.perStream, 2));
  row('first HLS segment after publish, median (s)', (s, x) => (s.hls === 'none' ? 'n/a (no HLS)' : f(x.firstMedia.median, 2)));
  if (servers.some((s) => s.hls === 'none'))
    row('first HTTP-FLV key frame, median (s)', (s, x) => (s.hls === 'none' ? f(x.firstMedia.median, 2) : NA));
  row('segment edge age p50 / p95 (s)', (_, x) => pair(x.edge?.segment, 2));
  row('LL part edge age p50 / p95 (s)', (_, x) => pair(x.edge?.part, 2));
  row('latency estimate p50 / p95 (s)', (_, x) => {
    const l = x.edge?.latency[0];
    return l ? `${f(l.p50, 2)} / ${f(l.p95, 2)}` : NA;
  });
  row('  same for a plain-HLS (non-LL) player', (_, x) => {
    const l = x.edge?.latency.find((e) => e.rule.startsWith('plain'));
    return x.edge?.part && l ? `${f(l.p50, 2)} / ${f(l.p95, 2)}` : NA;
  });
  if (servers.some((s) => s.hls === 'none')) row('HTTP-FLV tag age p50 / p95 (s)', (_, x) => pair(x.flvTagAge, 3));
  row('  cross-check: segment age by PDT p50 (s)', (_, x) => (x.edge?.segmentByPdt ? f(x.edge.segmentByPdt.p50, 2) : NA));

  if (r.ratios.length) {
    console.log(
      '\n  ratios                                       ' +
        ['CPU/stream', 'RSS/stream', '1st segment', 'latency p50'].map((h) => h.padStart(13)).join(''),
    );
    for (const q of r.ratios) {
      console.log(
        `  ${`vs ${q.peer}`.padEnd(44)} ` +
          [q.cpuPerStream, q.rssPerStream, q.firstSegment, q.latencyP50].map((x) => f(x, 2).padStart(13)).join(''),
      );
    }
    console.log(
      '  (CPU and RSS: ours / peer, below 1 = ours uses less; first segment and latency: peer / ours, above 1 = ours is quicker)',
    );
  }

  console.log('\n  servers');
  for (const s of servers) {
    console.log(`  - ${s.name}${s.version ? ` ${s.version}` : ''}${s.skipped ? `: SKIPPED, ${s.skipped}` : ''}`);
    if (s.command) console.log(`      ${s.command}`);
    if (s.settings) console.log(`      ${s.settings}`);
    const x = s.figures;
    if (!x) continue;
    const e = x.edge;
    if (e) {
      const hb = e.latency.map((l) => `${l.holdBackS} s hold-back (${l.rule.split(':')[0]})`).join('; ');
      console.log(
        `      TARGETDURATION ${e.targetDurationS ?? '?'} s${e.partHoldBackS !== undefined ? `, PART-HOLD-BACK ${e.partHoldBackS} s` : ''}; ${hb}`,
      );
      console.log(
        `      edge: ${e.segment.n} segments${e.part ? ` and ${e.part.n} parts` : ''} in the window; first segment seen: msn ${e.firstSeen?.msn ?? '?'}, age ${f(e.firstSeen?.ageS, 3)} s`,
      );
    }
    console.log(
      `      RSS: idle settled ${x.rssMB.idleSettledAfterS} s after ready (within 1 MB for 10 s); with ${n} streams median ${f(x.rssMB.loaded, 1)} MB, largest ${f(x.rssMB.loadedMax, 1)} MB`,
    );
    console.log(`      the rest of the machine (outside this bench) used ${f(x.cpu.restOfMachineCores, 2)} cores during the window`);
    console.log(
      `      publisher clock: media time 0 sent ${f(x.clock.mediaZeroAfterSpawnS, 3)} s after spawn (${x.clock.reports} progress reports); ready ${s.readyMs ?? '?'} ms after spawn`,
    );
    for (const note of x.notes) console.log(`      note: ${note}`);
  }
  console.log('\n  definitions');
  for (const [k, v] of Object.entries(r.definitions)) console.log(`  - ${k}: ${v}`);
}
