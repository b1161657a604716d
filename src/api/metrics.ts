import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { LiveTranscoder } from '../livetranscode/index.js';
import type { LivePackager } from '../packager/index.js';
import type { StreamHub } from '../stream/index.js';

export interface MetricSources {
  readonly hub: StreamHub;
  readonly packager: LivePackager;
  readonly transcoder?: LiveTranscoder;
  /** Ingest protocol counters, e.g. the RTMP server's. */
  readonly ingest: () => { badInput: number; authFailures: number; unsupportedCodec: number; activeConnections: number; connections: number };
}

/** A counter whose value is owned by a module and copied in at scrape time. */
function mirrored(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** Per-stream and per-rung transcoder figures (labels: stream, rung), and its counters. */
function registerTranscodeMetrics(registry: Registry, tc: LiveTranscoder): void {
  const perStream = (name: string, help: string, read: (s: ReturnType<LiveTranscoder['list']>[number]['status']) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { streamId, status } of tc.list()) {
          const v = read(status);
          if (v !== undefined) this.set({ stream: streamId }, v);
        }
      },
    });
  perStream('livepack_transcode_speed', 'FFmpeg speed over the last seconds (1 = real time)', (s) => s.speed);
  perStream('livepack_transcode_lag_ms', 'How far FFmpeg output lags its input', (s) => s.lagMs);
  perStream('livepack_transcode_restarts', 'FFmpeg exits not asked for during the stream', (s) => s.restarts);
  const perRung = (name: string, help: string, read: (r: ReturnType<LiveTranscoder['list']>[number]['status']['rungs'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['stream', 'rung'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { streamId, status } of tc.list()) for (const r of status.rungs) this.set({ stream: streamId, rung: r.name }, read(r));
      },
    });
  perRung('livepack_rung_fps', 'Frames per second each transcoded rung produces', (r) => r.fps);
  perRung('livepack_rung_bitrate_kbps', 'Bitrate each transcoded rung produces', (r) => r.bitrateKbps);
  perRung('livepack_rung_dropped', '1 while a rung is dropped for lack of CPU', (r) => (r.state === 'dropped' ? 1 : 0));
  const k = tc.counters;
  mirrored(registry, 'livepack_transcode_streams_total', 'Live streams whose ABR ladder was started', () => k.streams);
  mirrored(registry, 'livepack_transcode_exits_total', 'FFmpeg exits not asked for (crashes and failed starts)', () => k.exits);
  mirrored(registry, 'livepack_transcode_crashes_total', 'FFmpeg exits after it had been working', () => k.crashes);
  mirrored(registry, 'livepack_transcode_rungs_dropped_total', 'Rungs dropped because FFmpeg could not keep up in real time', () => k.rungsDropped);
  mirrored(registry, 'livepack_transcode_rungs_restored_total', 'Dropped rungs brought back', () => k.rungsRestored);
  mirrored(registry, 'livepack_transcode_over_limit_total', 'ABR streams served as passthrough because TRANSCODE_MAX_STREAMS were transcoding', () => k.overLimit);
}

/** One registry per app, so tests can run several apps in one process. */
export function buildMetrics(src: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'livepack_live_streams',
    help: 'Streams with a publisher or waiting for one to return',
    registers: [registry],
    collect() {
      this.set(src.hub.list().length);
    },
  });
  new Gauge({
    name: 'livepack_ingest_bitrate_kbps',
    help: 'Ingest bitrate per stream over the last second',
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of src.hub.list()) this.set({ stream: s.streamId }, s.bitrateKbps);
    },
  });
  new Gauge({
    name: 'livepack_ingest_fps',
    help: 'Ingest video frames per second per stream over the last second',
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of src.hub.list()) this.set({ stream: s.streamId }, s.fps);
    },
  });
  new Gauge({
    name: 'livepack_hls_blocking_requests_held',
    help: 'Blocking playlist and preload-hint requests being held',
    registers: [registry],
    collect() {
      this.set(src.packager.heldRequests());
    },
  });
  new Gauge({
    name: 'livepack_rtmp_connections',
    help: 'Open RTMP connections',
    registers: [registry],
    collect() {
      this.set(src.ingest().activeConnections);
    },
  });
  const tc = src.transcoder;
  if (tc) registerTranscodeMetrics(registry, tc);
  const c = src.packager.counters;
  mirrored(registry, 'livepack_hls_parts_total', 'LL-HLS parts produced', () => c.parts);
  mirrored(registry, 'livepack_hls_segments_total', 'HLS segments completed', () => c.segments);
  mirrored(registry, 'livepack_hls_oversized_parts_total', 'Parts longer than PART-TARGET (irregular source timing)', () => c.oversizedParts);
  mirrored(registry, 'livepack_hls_forced_cuts_total', 'Segments cut without a keyframe (source keyframe interval too long)', () => c.forcedCuts);
  mirrored(registry, 'livepack_hls_gap_segments_total', 'Rung segments listed as EXT-X-GAP (FFmpeg restarting, or the rung dropped)', () => c.gapSegments);
  mirrored(registry, 'livepack_hls_unaligned_segments_total', 'Rung segments not aligned with the source: cut on a non-keyframe, or unable to take the source media sequence number', () => c.unalignedSegments);
  mirrored(registry, 'livepack_packager_errors_total', 'Events the packager could not package', () => c.errors);
  mirrored(registry, 'livepack_ingest_bad_input_total', 'Ingest connections closed for malformed input', () => src.ingest().badInput);
  mirrored(registry, 'livepack_ingest_auth_failures_total', 'Publish attempts refused for a wrong stream key', () => src.ingest().authFailures);
  mirrored(registry, 'livepack_ingest_unsupported_codec_total', 'Publish attempts refused for an unsupported codec', () => src.ingest().unsupportedCodec);
  mirrored(registry, 'livepack_rtmp_connections_total', 'RTMP connections accepted', () => src.ingest().connections);
  mirrored(registry, 'livepack_ingest_frames_total', 'Frames received from publishers', () => src.hub.counters.frames);
  mirrored(registry, 'livepack_ingest_bytes_total', 'Media bytes received from publishers', () => src.hub.counters.bytes);
  mirrored(registry, 'livepack_timestamp_repairs_total', 'Source timestamps that went backwards or jumped and were repaired', () => src.hub.counters.timestampRepairs);
  mirrored(registry, 'livepack_reader_dropped_frames_total', 'Frames dropped by slow internal readers (packager, recorder, transcoder)', () => src.hub.counters.readerDrops);
  mirrored(registry, 'livepack_publisher_takeovers_total', 'Publish sessions replaced by a reconnecting publisher', () => src.hub.counters.takeovers);
  return registry;
}
