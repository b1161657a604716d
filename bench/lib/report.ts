import type { LatencyBreakdown } from './latency-breakdown.js';
import type { Summary } from './stats.js';

/** The compact table `npm run bench:latency` prints; `r` is the results object latency.ts writes as JSON. */
export function printReport(r: any, player: Summary, answer: Summary, aboveFastest: Summary): void {
  const f = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const row = (name: string, s: Summary, d: number) =>
    [name.padEnd(38), String(s.n).padStart(6), ...[s.p50, s.p95, s.p99, s.min, s.max].map((x) => f(x, d).padStart(8))].join('');
  const kv = (k: string, v: string) => console.log(`  ${k.padEnd(72)}${v}`);
  const e = r.environment;
  console.log(`\nlivepack latency bench  ${r.date}`);
  console.log(`  ${e.platform}, ${e.cpus} CPUs (${e.cpuModel}), node ${e.node}, Chromium ${e.chromium}, hls.js ${e.hlsjs}`);
  console.log(`  source: ${r.setup.source}`);
  console.log(
    `  server: ${r.setup.server}; PART-TARGET ${r.setup.partTargetS} s, PART-HOLD-BACK ${r.setup.partHoldBackS} s, segment target ${r.setup.segmentTargetS} s`,
  );
  console.log(`  profile ${r.setup.profile}; player ${r.setup.player}`);
  if (Object.keys(r.setup.hlsConfigOverride ?? {}).length)
    console.log(`  hls.js config merged over the page's: ${JSON.stringify(r.setup.hlsConfigOverride)}`);
  console.log(`  measured ${r.setup.measureS} s after ${r.setup.warmupS} s of player warm-up\n`);
  console.log(['  ' + 'latency'.padEnd(36), 'n'.padStart(6), ...['p50', 'p95', 'p99', 'min', 'max'].map((h) => h.padStart(8))].join(''));
  console.log('  ' + row('player latency (s)', player, 2));
  console.log('  ' + row('blocked playlist answer delay (ms)', answer, 1));
  console.log('  ' + row('  same, above the fastest answer (ms)', aboveFastest, 1));
  const pl = r.playerLatencyS;
  const bl = r.blockedAnswerDelayMs;
  console.log(
    `  player: ${pl.waitingEvents} stall(s), ${pl.samplesWithoutDate} sample(s) without a playing date, hls.js target latency ${pl.hlsTargetLatencyS?.toFixed(2)} s, ` +
      `${pl.hlsErrors.length} hls.js error event(s)${pl.hlsErrors.length ? ' (' + [...new Set(pl.hlsErrors.map((x: any) => x.details))].join(', ') + ')' : ''}`,
  );
  if (bl.pdtAnchorLateEstimateMs > 0) {
    const late = bl.pdtAnchorLateEstimateMs;
    console.log(
      `  PDT anchor: the fastest held answer came ${late} ms before its part's PDT end, so PDT likely runs ~${late} ms late ` +
        `and the ingest-to-screen latency is ~${(player.p50 + late / 1000).toFixed(2)} s (p50)`,
    );
  }
  console.log(
    `  playlist client: ${bl.requests} requests over ${bl.clientSeconds} s, ${bl.answersCounted} answers in the window, ` +
      `${bl.notHeldExcluded} not held (excluded), ${bl.errors} error(s), ${bl.missingPart} without the part asked for\n`,
  );
  printBreakdown(r.breakdown, kv);
  if (r.startup.measured) {
    console.log('\n  start-up and memory');
    kv('startServer() in-process (existing DATA_DIR)', `${r.startup.startServerMs} ms`);
    for (const c of r.startup.coldStart)
      kv(`${c.command} -> /healthz 200, ${c.label}`, `${c.untilHealthzMs} ms, idle RSS ${c.idleRssMB} MB`);
    kv('RSS in-process, idle (before publishing)', `${r.memory.inProcessIdleRssMB} MB`);
    kv(`RSS in-process, one stream (after ${r.memory.afterPublishingS} s)`, `${r.memory.inProcessOneStreamRssMB} MB`);
  }
  console.log('\n  definitions');
  console.log(`  - player latency: ${pl.definition}`);
  console.log(`  - blocked playlist answer delay: ${bl.definition}`);
  console.log(
    '  - above the fastest answer: the same delays minus the smallest one. An error of the PDT anchor (the ingest time of the ' +
      "session's first keyframe) shifts every delay equally; this row does not depend on it.",
  );
  if (r.startup.measured) console.log(`  - in-process RSS: ${r.memory.note}`);
}

/** Where the latency comes from (lib/latency-breakdown.ts). */
function printBreakdown(b: LatencyBreakdown, kv: (k: string, v: string) => void): void {
  const s = (x: number | null) => (x === null ? '-' : `${x.toFixed(3)} s`);
  console.log('  where the latency comes from');
  kv(`edge staleness of the first playlist (s0; level ${b.firstLevel ?? '-'}, at the end level ${b.levelAtEnd ?? '-'})`, s(b.edgeStaleS));
  kv(`hls.js target latency at the start (T; PART-HOLD-BACK ${s(b.partHoldBackS)})`, s(b.targetAtStartS));
  kv(
    `start-up delay: first media request to 'playing' (D${b.firstRequestWasBitrateTest ? '; bitrate test first' : ''})`,
    s(b.startupDelayS),
  );
  kv('  s0 + T + D', s(b.predictedAtStartS));
  kv("measured at the first 'playing'", s(b.atFirstPlayingS));
  kv(
    '  then, seconds after it',
    Object.entries(b.afterFirstPlaying)
      .map(([k, v]) => `${k} ${v ?? '-'}`)
      .join(', '),
  );
  kv("settled (1 s after the first 'playing')", s(b.settledS));
  kv(`window p50 minus settled (then ${b.waitingAfterStartS.toFixed(2)} s waiting, ${b.stallErrors} stall errors)`, s(b.driftAfterStartS));
  kv(`first part starts before the start position (independent: ${b.firstPartIndependent ?? '-'})`, s(b.loadedBeforeStartS));
  kv('time to first frame (player started -> first playing)', s(b.timeToFirstFrameS));
  kv('measured latency - hls.latency (p50)', s(b.hlsEstimateBelowMeasuredS));
  kv(
    'hls.js target latency at the end; playbackRate p50; buffered ahead p50',
    `${s(b.targetAtEndS)}; ${b.playbackRateP50 ?? '-'}; ${s(b.bufferedAheadP50S)}`,
  );
  kv('media seconds played per wall second in the window', `${b.playheadSpeed ?? '-'}`);
}
