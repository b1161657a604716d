import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { LivePackager } from '../packager/index.js';
import type { StreamHub } from '../stream/index.js';

export interface MetricSources {
  readonly hub: StreamHub;
  readonly packager: LivePackager;
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
  const c = src.packager.counters;
  mirrored(registry, 'livepack_hls_parts_total', 'LL-HLS parts produced', () => c.parts);
  mirrored(registry, 'livepack_hls_segments_total', 'HLS segments completed', () => c.segments);
  mirrored(registry, 'livepack_hls_oversized_parts_total', 'Parts longer than PART-TARGET (irregular source timing)', () => c.oversizedParts);
  mirrored(registry, 'livepack_hls_forced_cuts_total', 'Segments cut without a keyframe (source keyframe interval too long)', () => c.forcedCuts);
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
