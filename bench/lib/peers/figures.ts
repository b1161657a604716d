import { quantile, rounded, summarize, type Summary } from '../stats.js';
import type { SeenItem } from './hls-probe.js';
import type { RawRun } from './measure.js';

/**
 * The reported figures of one server, from its raw observations (lib/peers/measure.ts).
 *
 * Live-edge age. The poller notes when each segment (or part) first shows up in stream 0's playlist and
 * reads the decode time of its first video sample (TS: PTS of the first video PES; fMP4: tfdt of the video
 * track, timescale from the init segment). The segment's end on the media timeline is that time plus its
 * EXTINF (part: DURATION), counted from the first segment's first video sample, which is the source's
 * first video frame (media time `firstVideoS` in the publisher's output). The publisher sends media time t
 * at wall time C + t, C from its own progress reports (lib/peers/publisher-clock.ts). So:
 *
 *   edge age = appeared at - (C + firstVideoS + (first media time - first segment's first media time) + duration)
 *
 * i.e. how long after the sample that ends the segment left the publisher the segment could be seen in
 * the playlist. The same for every server: it reads only what the server serves and what FFmpeg reports.
 */

export interface EdgeFigures {
  readonly segment: Summary;
  /** LL-HLS parts (ours). */
  readonly part?: Summary;
  /** Ours only, as a cross-check: the same age from EXT-X-PROGRAM-DATE-TIME (the server's ingest clock) instead of C. */
  readonly segmentByPdt?: Summary;
  readonly targetDurationS?: number;
  readonly partHoldBackS?: number;
  /** Player latency estimates: edge age + the hold-back hls.js keeps, p50 and p95. */
  readonly latency: { rule: string; holdBackS: number; p50: number; p95: number; n: number }[];
  /** Sanity: the first segment the poller saw, its media sequence number and computed age (should be >= ~0). */
  readonly firstSeen: { msn: number; ageS: number } | undefined;
  readonly excludedWithoutMediaTime: number;
}

export interface ServerFigures {
  readonly cpu: {
    idlePercent: number;
    loadedPercent: number;
    perStreamPercent: number;
    idleWindowS: number;
    windowS: number;
    restOfMachineCores: number;
  };
  readonly rssMB: { idle: number; loaded: number; loadedMax: number; perStream: number; idleSettledAfterS: number };
  /** Seconds from spawning each publisher to its stream's first listed segment (or FLV key frame); null: none in time. */
  readonly firstMedia: { kind: string; perStreamS: (number | null)[]; median: number | null; missing: number };
  readonly clock: { mediaZeroAfterSpawnS: number | null; reports: number };
  readonly edge?: EdgeFigures;
  /** Servers with HTTP-FLV only: arrival time - (C + tag timestamp) of stream 0's video tags in the window. */
  readonly flvTagAge?: Summary;
  readonly notes: string[];
}

const r3 = (x: number) => Number(x.toFixed(3));
const mb = (b: number) => Number((b / 1048576).toFixed(1));

/** hls.js default liveSyncDurationCount: a plain-HLS player starts this many target durations behind the edge. */
export const HLSJS_LIVE_SYNC_COUNT = 3;

export function figuresOf(raw: RawRun, streams: number, firstVideoS: number): ServerFigures {
  const notes: string[] = [];
  const idlePercent = raw.idle.cpu.percentOfOneCore;
  const loadedPercent = raw.loaded.cpu.percentOfOneCore;
  const perStream = raw.firstMediaAtMs.map((t, i) => (t === undefined ? null : r3((t - raw.spawnedAtMs[i]) / 1000)));
  const got = perStream.filter((x): x is number => x !== null).sort((a, b) => a - b);
  const C = raw.mediaZeroAtMs;
  if (C === undefined) notes.push('the publisher of stream 0 gave no progress report: no edge age');
  const fig: ServerFigures = {
    cpu: {
      idlePercent,
      loadedPercent,
      perStreamPercent: r3((loadedPercent - idlePercent) / streams),
      idleWindowS: raw.idle.cpu.wallS,
      windowS: raw.loaded.cpu.wallS,
      restOfMachineCores: raw.outsideCores,
    },
    rssMB: {
      idle: mb(raw.idle.rssBytes),
      loaded: mb(raw.loaded.rssBytes),
      loadedMax: mb(raw.loaded.rssMaxBytes),
      perStream: r3((raw.loaded.rssBytes - raw.idle.rssBytes) / 1048576 / streams),
      idleSettledAfterS: raw.idle.settledAfterS,
    },
    firstMedia: {
      kind: raw.firstMediaKind,
      perStreamS: perStream,
      median: got.length ? r3(quantile(got, 0.5)) : null,
      missing: perStream.length - got.length,
    },
    clock: { mediaZeroAfterSpawnS: C === undefined ? null : r3((C - raw.spawnedAtMs[0]) / 1000), reports: raw.clockReports },
    edge: raw.edge && C !== undefined ? edgeFigures(raw, C, firstVideoS, notes) : undefined,
    flvTagAge: raw.flvTags && C !== undefined ? flvTagAge(raw, C) : undefined,
    notes,
  };
  if (raw.flvTags) {
    notes.push(
      'no HLS figures: this server has RTMP in and HTTP-/WebSocket-FLV out, no HLS packager; its first-media row is the first ' +
        'HTTP-FLV key frame instead, and its stream 0 viewer is an HTTP-FLV connection',
    );
  }
  if (fig.firstMedia.missing)
    notes.push(
      `${fig.firstMedia.missing} stream(s) showed no ${raw.firstMediaKind} within 20 s; the server's log ends: ${raw.logTail ?? ''}`,
    );
  return fig;
}

function edgeFigures(raw: RawRun, C: number, firstVideoS: number, notes: string[]): EdgeFigures {
  const e = raw.edge!;
  const inWindow = (x: SeenItem) => x.appearedAtMs >= raw.window.fromMs && x.appearedAtMs <= raw.window.toMs;
  // The origin of the media timeline: the first segment's (or part's) first video sample.
  const timed = [...e.segments, ...e.parts].filter((x) => x.firstMediaS !== undefined);
  const first = e.segments.at(0);
  const origin = first?.firstMediaS ?? Math.min(...timed.map((x) => x.firstMediaS!));
  if (first && first.msn !== 0)
    notes.push(`the poller's first segment has media sequence ${first.msn}, not 0: the edge ages may be off by the segments missed`);
  const ageS = (x: SeenItem) => (x.appearedAtMs - (C + (firstVideoS + x.firstMediaS! - origin + x.durationS) * 1000)) / 1000;
  const ages = (items: SeenItem[]) => items.filter((x) => x.firstMediaS !== undefined && inWindow(x)).map(ageS);
  const excludedWithoutMediaTime = [...e.segments, ...e.parts].filter((x) => inWindow(x) && x.firstMediaS === undefined).length;
  const segment = rounded(summarize(ages(e.segments)), 3);
  const part = e.parts.length ? rounded(summarize(ages(e.parts)), 3) : undefined;
  const withPdt = e.segments.filter((x) => x.pdtMs !== undefined && inWindow(x));
  const segmentByPdt = withPdt.length
    ? rounded(summarize(withPdt.map((x) => (x.appearedAtMs - (x.pdtMs! + x.durationS * 1000)) / 1000)), 3)
    : undefined;

  const latency: EdgeFigures['latency'] = [];
  const est = (rule: string, holdBackS: number, s: Summary) =>
    latency.push({ rule, holdBackS, p50: r3(s.p50 + holdBackS), p95: r3(s.p95 + holdBackS), n: s.n });
  if (part && e.partHoldBackS !== undefined)
    est('LL-HLS player (hls.js lowLatencyMode): part edge age + PART-HOLD-BACK', e.partHoldBackS, part);
  if (e.targetDurationS !== undefined) {
    est(
      `plain HLS player (hls.js liveSyncDurationCount ${HLSJS_LIVE_SYNC_COUNT}): segment edge age + ${HLSJS_LIVE_SYNC_COUNT} x TARGETDURATION`,
      HLSJS_LIVE_SYNC_COUNT * e.targetDurationS,
      segment,
    );
  }
  const firstAge = first?.firstMediaS !== undefined ? r3(ageS(first)) : undefined;
  if (firstAge !== undefined && firstAge < -0.05)
    notes.push(`the first segment's edge age is ${firstAge} s (< 0): the media-time origin or the publisher clock is off`);
  return {
    segment,
    part,
    segmentByPdt,
    targetDurationS: e.targetDurationS,
    partHoldBackS: e.partHoldBackS,
    latency,
    firstSeen: first && firstAge !== undefined ? { msn: first.msn, ageS: firstAge } : undefined,
    excludedWithoutMediaTime,
  };
}

function flvTagAge(raw: RawRun, C: number): Summary {
  const tags = raw.flvTags!.filter((t) => t.atMs >= raw.window.fromMs && t.atMs <= raw.window.toMs);
  return rounded(summarize(tags.map((t) => (t.atMs - (C + t.timestampMs)) / 1000)), 3);
}
