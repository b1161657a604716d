import type { Summary } from './stats.js';

/** The compact table `npm run bench:abr` prints; `r` is the results object abr.ts writes as JSON. */
export function printAbrReport(r: any, one: Summary, two: Summary): void {
  const f = (x: number | null | undefined, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
  const kv = (k: string, v: string) => console.log(`  ${k.padEnd(50)}${v}`);
  const cpu = (s: number, wall: number) => `${f(s, 2).padStart(7)} CPU s  ${f((s / wall) * 100, 1).padStart(6)} %`;
  const e = r.environment;
  const c = r.cpu;
  console.log(`\nlivepack ABR ladder bench  ${r.date}`);
  console.log(
    `  ${e.platform}, ${e.cpus} CPUs (${e.cpuModel}), node ${e.node}, ${e.ffmpeg.replace(/ Copyright.*/, '')}, Chromium ${e.chromium}, hls.js ${e.hlsjs}`,
  );
  console.log(
    '  source: 1280x720 30 fps libx264 veryfast 3000 kb/s, GOP 2 s, AAC 96 kb/s, a 30 s file published in a loop with -re -c copy',
  );
  console.log(`  ladder: ${r.setup.ladder.join(', ')}`);
  console.log(`  each window ${r.setup.measureS} s after ${r.setup.warmupS} s of warm-up\n`);

  console.log('  1. CPU ratio (100 % = one core)');
  kv('ours: server process + its FFmpeg', `${cpu(c.ours.cpuS, c.ours.wallS)}   (over ${f(c.ours.wallS, 1)} s)`);
  for (const [k, v] of Object.entries(c.ours.cpuByRole as Record<string, number>)) {
    if (k.startsWith('server')) kv(`  ${k}`, cpu(v, c.ours.wallS));
  }
  kv('floor: plain FFmpeg, same ladder to HLS, RTMP in', `${cpu(c.floor.cpuS, c.floor.wallS)}   (over ${f(c.floor.wallS, 1)} s)`);
  kv(
    '  the same reading the file (no network input)',
    `${cpu(c.floorFromFile.cpuS, c.floorFromFile.wallS)}   (over ${f(c.floorFromFile.wallS, 1)} s)`,
  );
  kv('ratio ours / floor, RTMP in (target <= 1.10)', `${f(c.ratio, 3)}${c.ratio > c.ratioTarget ? '   ABOVE TARGET' : ''}`);
  kv('ratio ours / floor reading the file', f(c.ratioToFileFloor, 3));
  const pub = c.ours.cpuByRole['publishers (ffmpeg -c copy)'];
  if (pub !== undefined) kv('(publisher, not counted)', cpu(pub, c.ours.wallS));
  kv(
    'server node threads (CPU s)',
    Object.entries(c.ours.threadsOfServer as Record<string, number>)
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(', '),
  );
  kv(
    'rest of the machine meanwhile (cores)',
    `ours ${f(c.ours.outsideBenchCores, 2)}, floor ${f(c.floor.outsideBenchCores, 2)}, file floor ${f(c.floorFromFile.outsideBenchCores, 2)}`,
  );
  const st = c.ours.statusAtEnd.transcode;
  if (st) {
    kv(
      'transcode at the end of the window',
      `${st.state}, speed ${f(st.speed, 2)}, lag ${st.lagMs ?? '-'} ms, restarts ${st.restarts}, dropped [${st.droppedRungs.join(', ')}]`,
    );
    kv('  rungs', st.rungs.map((x: any) => `${x.name} ${x.size} ${f(x.fps, 1)} fps ${Math.round(x.bitrateKbps)} kb/s`).join('; '));
  }
  if (c.ours.ladderChangedInWindow) kv('  NOTE', 'the ladder restarted or dropped a rung within the window');

  const row = (name: string, s: Summary) =>
    ['  ' + name.padEnd(36), String(s.n).padStart(6), ...[s.p50, s.p95, s.p99, s.min, s.max].map((x) => f(x, 2).padStart(8))].join('');
  console.log('\n  2./3. player latency of stream 1 (s)');
  console.log(['  ' + ''.padEnd(36), 'n'.padStart(6), ...['p50', 'p95', 'p99', 'min', 'max'].map((h) => h.padStart(8))].join(''));
  console.log(row('one ABR stream (target p50 <= 1.5)', one));
  console.log(row('two ABR streams', two));
  const levels = (r.player.levels as any[]).map((l, i) => `${i}: ${l.height}p ${Math.round(l.bitrate / 1000)} kb/s`).join(', ');
  console.log(`  hls.js levels: ${levels}; bandwidth estimate at the end ${f(r.player.bandwidthEstimateBps / 1e6, 1)} Mb/s`);
  for (const [name, p] of [
    ['one stream', r.player.oneStream],
    ['two streams', r.player.twoStreams],
  ] as const) {
    const share = Object.entries(p.levelShare as Record<string, number>)
      .map(([k, v]) => `${k} ${Math.round(v * 100)} %`)
      .join(', ');
    const errs = p.hlsErrors as { details: string }[];
    console.log(
      `  ${name}: ${p.waitingEvents} stall(s) (${f(p.stalledS, 1)} s stalled), ${errs.length} hls.js error(s)` +
        `${errs.length ? ' (' + [...new Set(errs.map((x) => x.details))].join(', ') + ')' : ''}, ${p.samplesWithoutDate} sample(s) without a playing date, ` +
        `hls.js target latency ${f(p.hlsTargetLatencyS.atStart, 1)} -> ${f(p.hlsTargetLatencyS.atEnd, 1)} s`,
    );
    console.log(
      `    level played: ${share || '-'} (${p.levelSwitches} switch(es)), at the end ${p.levelAtEnd ? `${p.levelAtEnd.level} = ${p.levelAtEnd.height}p` : '-'}`,
    );
    const slow = p.slowRequests as { sentAtMsInWindow: number; ms: number; url: string; failure?: string }[];
    if (slow.length) {
      const shown = slow.slice(0, 4).map((x) => `${x.url} at ${f(x.sentAtMsInWindow / 1000, 1)} s: ${x.failure ?? `${x.ms} ms`}`);
      console.log(`    page requests over 1 s or failed: ${slow.length} (${shown.join('; ')}${slow.length > 4 ? '; ...' : ''})`);
    }
    const roles = Object.entries(p.cpuByRole as Record<string, number>)
      .filter(([, v]) => v >= 0.05)
      .map(([k, v]) => `${k} ${f((v / r.setup.measureS) * 100, 0)} %`)
      .join(', ');
    console.log(
      `    machine CPU busy ${f(p.machineBusyPercent, 1)} % of ${e.cpus} cores (rest of the machine ${f(p.outsideBenchCores, 2)} cores); % of one core: ${roles}`,
    );
  }

  console.log('\n  3. two ABR streams: transcode status');
  const t3 = r.player.twoStreams;
  (t3.statusAtEnd as any[]).forEach((s, i) => {
    const t = s.transcode;
    if (!t) return kv(`stream ${i + 1} at the end`, 'no transcode (passthrough)');
    kv(
      `stream ${i + 1} at the end`,
      `${t.state}, speed ${f(t.speed, 2)}, lag ${t.lagMs ?? '-'} ms, restarts ${t.restarts}, droppedRungs [${t.droppedRungs.join(', ')}]`,
    );
    kv('  rungs', t.rungs.map((x: any) => `${x.name} ${x.state} ${f(x.fps, 1)} fps ${Math.round(x.bitrateKbps)} kb/s`).join('; '));
  });
  for (const col of [1, 2]) {
    const rows = (t3.statusSamples as any[]).map((row) => row[col]).filter(Boolean);
    const sp = rows.map((x) => x[1]).filter((x): x is number => typeof x === 'number');
    const lg = rows.map((x) => x[2]).filter((x): x is number => typeof x === 'number');
    const dropped = [...new Set(rows.map((x) => x[3]).filter(Boolean))];
    if (sp.length) {
      const mean = sp.reduce((a, b) => a + b, 0) / sp.length;
      kv(
        `stream ${col} over the window`,
        `speed mean ${f(mean, 2)} min ${f(Math.min(...sp), 2)}, lag max ${lg.length ? Math.max(...lg) : '-'} ms, dropped ${dropped.length ? dropped.join(' ') : 'none'}`,
      );
    }
  }
  if (t3.secondStream.error) kv('stream 2', String(t3.secondStream.error).slice(0, 200));
  const m = t3.metrics as Record<string, number>;
  if (Object.keys(m).length)
    kv(
      'counters',
      Object.entries(m)
        .map(([k, v]) => `${k.replace(/^livepack_transcode_|_total$/g, '')} ${v}`)
        .join(', '),
    );
  console.log(`\n  - CPU: ${c.definition}`);
  console.log(`  - latency: ${r.player.definition}`);
  console.log(`  - ${r.setup.note}`);
}
