import { createHash } from 'node:crypto';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { WebRtcCounters, WhipSessionStats } from '../ingest/webrtc/index.js';
import type { TranscodeStatus } from '../livetranscode/index.js';

/** Counters a module owns and the registry copies in at scrape time. */
type Counts<K extends string> = { readonly [P in K]: number };

/** What /metrics reads of the stream hub. */
export interface HubMetricsSource {
  list(): ReadonlyArray<{ readonly streamId: string; readonly bitrateKbps: number; readonly fps: number }>;
  readonly counters: Counts<'frames' | 'bytes' | 'timestampRepairs' | 'readerDrops' | 'takeovers'>;
}

/** What /metrics reads of the live packager. */
export interface PackagerMetricsSource {
  /** Blocking playlist and preload-hint requests being held. */
  heldRequests(): number;
  readonly counters: Counts<'parts' | 'segments' | 'oversizedParts' | 'forcedCuts' | 'gapSegments' | 'unalignedSegments' | 'errors'>;
}

/** What /metrics reads of the live transcoder. */
export interface TranscoderMetricsSource {
  list(): ReadonlyArray<{ readonly streamId: string; readonly status: TranscodeStatus }>;
  readonly counters: Counts<'streams' | 'exits' | 'crashes' | 'rungsDropped' | 'rungsRestored' | 'overLimit'>;
}

/** What /metrics reads of WHIP ingest. */
export interface WebRtcMetricsSource {
  list(): readonly WhipSessionStats[];
  readonly counters: WebRtcCounters;
}

export type RecorderMetrics = Counts<'segments' | 'bytes' | 'failedSegments' | 'finalized' | 'lastFinalizeMs' | 'lastFinalizeWorkMs'>;
export type VodWorkerMetrics = Counts<'ready' | 'failed' | 'retried'>;
export type IngestCounters = Counts<'badInput' | 'authFailures' | 'unsupportedCodec' | 'activeConnections' | 'connections'>;

/** Live ingest and packaging on this node (a node with the ingest role). */
export interface LiveMetricSources {
  readonly hub: HubMetricsSource;
  readonly packager: PackagerMetricsSource;
  /** Ingest protocol counters, e.g. the RTMP server's. */
  readonly ingest: () => IngestCounters;
}

/** What the node is and whether what it depends on answers: livepack_node_role, livepack_dependency_up. */
export interface NodeMetricsSource {
  /** Every role there is, and the ones this node has. */
  readonly allRoles: readonly string[];
  readonly roles: readonly string[];
  /** Each dependency's state; 'in-process' ones (no Redis configured) are left out. */
  dependencies(): Promise<Readonly<Record<string, 'ok' | 'down' | 'in-process'>>>;
}

export interface MetricSources {
  readonly node: NodeMetricsSource;
  /** Absent on a node without the ingest role. */
  readonly live?: LiveMetricSources;
  readonly transcoder?: TranscoderMetricsSource;
  /** The recorder's counters; absent in tests that build the app without one. */
  readonly recorder?: RecorderMetrics;
  /** The upload packaging worker's counters; absent without FFmpeg. */
  readonly vodWorker?: VodWorkerMetrics;
  /** WHIP ingest (absent when WebRTC is off). */
  readonly webrtc?: WebRtcMetricsSource;
  /** Failed-token limiters, one per surface (api, whip, rtmp): livepack_auth_failures_total{surface}. */
  readonly authLimiters?: () => readonly AuthLimiterSource[];
  /** The HTTP server's connection cap and slow-client closes. */
  readonly http?: HttpServerCounters;
}

/**
 * A failed-token limiter reporting into livepack_auth_failures_total and livepack_auth_refused_total under
 * its surface ('api', 'whip', 'rtmp'): a FailureLimiter fits as `{ surface: 'whip', counters: limiter.counters }`.
 */
export interface AuthLimiterSource {
  readonly surface: string;
  readonly counters: Counts<'failures' | 'refused'>;
}

/** What the HTTP server counts of its limits (http-limits.ts). */
export type HttpServerCounters = Counts<'openConnections' | 'refusedConnections' | 'slowBodies'>;

/** Failed token attempts and attempts refused without being tried, per surface. */
function registerAuthMetrics(registry: Registry, sources: () => readonly AuthLimiterSource[]): void {
  const perSurface = (name: string, help: string, read: (c: AuthLimiterSource['counters']) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['surface'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of sources()) this.inc({ surface: s.surface }, read(s.counters));
      },
    });
  perSurface('livepack_auth_failures_total', 'Wrong tokens or stream keys, per surface (api, whip, rtmp)', (c) => c.failures);
  perSurface(
    'livepack_auth_refused_total',
    'Attempts refused untried because their address had AUTH_FAILURE_LIMIT failures in the window (429)',
    (c) => c.refused,
  );
}

/** HTTP connections open, refused over HTTP_MAX_CONNECTIONS, and closed for a body arriving too slowly. */
function registerHttpMetrics(registry: Registry, http: HttpServerCounters): void {
  new Gauge({
    name: 'livepack_http_connections',
    help: 'HTTP connections open',
    registers: [registry],
    collect() {
      this.set(http.openConnections);
    },
  });
  mirrored(
    registry,
    'livepack_http_connections_refused_total',
    'HTTP connections closed at once because HTTP_MAX_CONNECTIONS were open',
    () => http.refusedConnections,
  );
  mirrored(
    registry,
    'livepack_http_slow_bodies_total',
    'HTTP connections closed because a request body arrived too slowly',
    () => http.slowBodies,
  );
}

/** The label a stream that is not public gets in /metrics without METRICS_TOKEN: never its id. */
export function hiddenStreamLabel(id: string): string {
  return `private:${createHash('sha256').update(id, 'utf8').digest('hex').slice(0, 12)}`;
}

/**
 * The exposition text with every `stream="<id>"` label of a stream that is not known to be public (private,
 * unlisted: its id is what opens it) replaced by hiddenStreamLabel. Works on the text, so a metric added
 * later with a stream label is covered too.
 */
export async function hideStreamIds(text: string, isPublic: (ids: readonly string[]) => Promise<ReadonlySet<string>>): Promise<string> {
  const label = /\bstream="((?:[^"\\]|\\.)*)"/g;
  const ids = [...new Set(Array.from(text.matchAll(label), (m) => m[1]))];
  if (ids.length === 0) return text;
  const open = await isPublic(ids);
  return text.replace(label, (all, id: string) => (open.has(id) ? all : `stream="${hiddenStreamLabel(id)}"`));
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

/** A gauge labelled by stream, filled at scrape time from `values` (undefined values are left out). */
function perStreamGauge(registry: Registry, name: string, help: string, values: () => Array<[string, number | undefined]>): Gauge {
  return new Gauge({
    name,
    help,
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [stream, v] of values()) if (v !== undefined) this.set({ stream }, v);
    },
  });
}

/** Per-stream and per-rung transcoder figures (labels: stream, rung), and its counters. */
function registerTranscodeMetrics(registry: Registry, tc: TranscoderMetricsSource): void {
  const perStream = (name: string, help: string, read: (s: TranscodeStatus) => number | undefined) =>
    perStreamGauge(registry, name, help, () => tc.list().map(({ streamId, status }) => [streamId, read(status)]));
  perStream('livepack_transcode_speed', 'FFmpeg speed over the last seconds (1 = real time)', (s) => s.speed);
  perStream('livepack_transcode_lag_ms', 'How far FFmpeg output lags its input', (s) => s.lagMs);
  perStream('livepack_transcode_restarts', 'FFmpeg exits not asked for during the stream', (s) => s.restarts);
  const perRung = (name: string, help: string, read: (r: TranscodeStatus['rungs'][number]) => number) =>
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
  mirrored(
    registry,
    'livepack_transcode_rungs_dropped_total',
    'Rungs dropped because FFmpeg could not keep up in real time',
    () => k.rungsDropped,
  );
  mirrored(registry, 'livepack_transcode_rungs_restored_total', 'Dropped rungs brought back', () => k.rungsRestored);
  mirrored(
    registry,
    'livepack_transcode_over_limit_total',
    'ABR streams served as passthrough because TRANSCODE_MAX_STREAMS were transcoding',
    () => k.overLimit,
  );
}

/** WHIP ingest: sessions, RTP reception (loss, NACK, PLI, FIR), per stream loss and jitter. */
function registerWebRtcMetrics(registry: Registry, w: WebRtcMetricsSource): void {
  const k = w.counters;
  new Gauge({
    name: 'livepack_webrtc_sessions',
    help: 'WHIP sessions open (connecting or live)',
    registers: [registry],
    collect() {
      this.set(k.activeSessions);
    },
  });
  mirrored(registry, 'livepack_webrtc_sessions_total', 'WHIP sessions created', () => k.sessions);
  mirrored(registry, 'livepack_webrtc_auth_failures_total', 'WHIP offers refused for a wrong stream key (401)', () => k.authFailures);
  mirrored(
    registry,
    'livepack_webrtc_bad_offers_total',
    'WHIP offers refused: malformed, too large, or no codec we take',
    () => k.badOffers,
  );
  mirrored(registry, 'livepack_webrtc_connect_timeouts_total', 'WHIP sessions whose ICE/DTLS never connected', () => k.connectTimeouts);
  mirrored(registry, 'livepack_webrtc_rtp_packets_total', 'RTP packets received', () => k.packets);
  mirrored(registry, 'livepack_webrtc_rtp_lost_total', 'RTP packets given up as lost after the jitter buffer waited', () => k.packetsLost);
  mirrored(registry, 'livepack_webrtc_malformed_total', 'Malformed RTP/RTCP packets and H.264 payloads', () => k.malformed);
  mirrored(registry, 'livepack_webrtc_nacks_total', 'Packets asked for again with NACK', () => k.nacks);
  mirrored(registry, 'livepack_webrtc_plis_total', 'Keyframes asked for with PLI (for loss, and to keep segments on time)', () => k.plis);
  mirrored(
    registry,
    'livepack_webrtc_loss_keyframe_requests_total',
    'Keyframe requests (PLI/FIR) sent because a picture was lost',
    () => k.keyframeRequestsForLoss,
  );
  mirrored(registry, 'livepack_webrtc_firs_total', 'Keyframes asked for with FIR', () => k.firs);
  mirrored(
    registry,
    'livepack_webrtc_frames_dropped_total',
    'Video frames dropped (damaged by loss, or waiting for a keyframe)',
    () => k.framesDropped,
  );
  const perStream = (name: string, help: string, read: (s: WhipSessionStats) => number | undefined) =>
    perStreamGauge(registry, name, help, () => w.list().map((s) => [s.streamId, s.state === 'live' ? read(s) : undefined]));
  perStream(
    'livepack_webrtc_loss_percent',
    'Video RTP packets never received (NACK retransmissions count as received), percent of expected',
    (s) => s.video?.lossPercent,
  );
  perStream('livepack_webrtc_jitter_ms', 'Video RTP interarrival jitter (RFC 3550)', (s) => s.video?.jitterMs);
}

/** Ingest, hub and packager figures: a node with the ingest role. */
function registerLiveMetrics(registry: Registry, live: LiveMetricSources): void {
  new Gauge({
    name: 'livepack_live_streams',
    help: 'Streams with a publisher or waiting for one to return',
    registers: [registry],
    collect() {
      this.set(live.hub.list().length);
    },
  });
  new Gauge({
    name: 'livepack_ingest_bitrate_kbps',
    help: 'Ingest bitrate per stream over the last second',
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of live.hub.list()) this.set({ stream: s.streamId }, s.bitrateKbps);
    },
  });
  new Gauge({
    name: 'livepack_ingest_fps',
    help: 'Ingest video frames per second per stream over the last second',
    labelNames: ['stream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of live.hub.list()) this.set({ stream: s.streamId }, s.fps);
    },
  });
  new Gauge({
    name: 'livepack_hls_blocking_requests_held',
    help: 'Blocking playlist and preload-hint requests being held',
    registers: [registry],
    collect() {
      this.set(live.packager.heldRequests());
    },
  });
  new Gauge({
    name: 'livepack_rtmp_connections',
    help: 'Open RTMP connections',
    registers: [registry],
    collect() {
      this.set(live.ingest().activeConnections);
    },
  });
  const c = live.packager.counters;
  mirrored(registry, 'livepack_hls_parts_total', 'LL-HLS parts produced', () => c.parts);
  mirrored(registry, 'livepack_hls_segments_total', 'HLS segments completed', () => c.segments);
  mirrored(
    registry,
    'livepack_hls_oversized_parts_total',
    'Parts longer than PART-TARGET (irregular source timing)',
    () => c.oversizedParts,
  );
  mirrored(
    registry,
    'livepack_hls_forced_cuts_total',
    'Segments cut without a keyframe (source keyframe interval too long)',
    () => c.forcedCuts,
  );
  mirrored(
    registry,
    'livepack_hls_gap_segments_total',
    'Rung segments listed as EXT-X-GAP (FFmpeg restarting, or the rung dropped)',
    () => c.gapSegments,
  );
  mirrored(
    registry,
    'livepack_hls_unaligned_segments_total',
    'Rung segments not aligned with the source: cut on a non-keyframe, or unable to take the source media sequence number',
    () => c.unalignedSegments,
  );
  mirrored(registry, 'livepack_packager_errors_total', 'Events the packager could not package', () => c.errors);
  mirrored(registry, 'livepack_ingest_bad_input_total', 'Ingest connections closed for malformed input', () => live.ingest().badInput);
  mirrored(
    registry,
    'livepack_ingest_auth_failures_total',
    'Publish attempts refused for a wrong stream key',
    () => live.ingest().authFailures,
  );
  mirrored(
    registry,
    'livepack_ingest_unsupported_codec_total',
    'Publish attempts refused for an unsupported codec',
    () => live.ingest().unsupportedCodec,
  );
  mirrored(registry, 'livepack_rtmp_connections_total', 'RTMP connections accepted', () => live.ingest().connections);
  mirrored(registry, 'livepack_ingest_frames_total', 'Frames received from publishers', () => live.hub.counters.frames);
  mirrored(registry, 'livepack_ingest_bytes_total', 'Media bytes received from publishers', () => live.hub.counters.bytes);
  mirrored(
    registry,
    'livepack_timestamp_repairs_total',
    'Source timestamps that went backwards or jumped and were repaired',
    () => live.hub.counters.timestampRepairs,
  );
  mirrored(
    registry,
    'livepack_reader_dropped_frames_total',
    'Frames dropped by slow internal readers (packager, recorder, transcoder)',
    () => live.hub.counters.readerDrops,
  );
  mirrored(
    registry,
    'livepack_publisher_takeovers_total',
    'Publish sessions replaced by a reconnecting publisher',
    () => live.hub.counters.takeovers,
  );
}

/** The node's roles (1 for each it has, 0 for the others) and its dependencies (1 up, 0 down). */
function registerNodeMetrics(registry: Registry, node: NodeMetricsSource): void {
  const roleGauge = new Gauge({
    name: 'livepack_node_role',
    help: 'Roles of this node (NODE_ROLES): 1 for each it has',
    labelNames: ['role'],
    registers: [registry],
  });
  for (const role of node.allRoles) roleGauge.set({ role }, node.roles.includes(role) ? 1 : 0);
  new Gauge({
    name: 'livepack_dependency_up',
    help: 'Whether a service this node depends on answered (catalog; redis when REDIS_URL is set)',
    labelNames: ['dependency'],
    registers: [registry],
    async collect() {
      const states = await node.dependencies();
      this.reset();
      for (const [dependency, state] of Object.entries(states))
        if (state !== 'in-process') this.set({ dependency }, state === 'ok' ? 1 : 0);
    },
  });
}

/** One registry per app, so tests can run several apps in one process. */
export function buildMetrics(src: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerNodeMetrics(registry, src.node);
  if (src.live) registerLiveMetrics(registry, src.live);
  if (src.transcoder) registerTranscodeMetrics(registry, src.transcoder);
  const rec = src.recorder;
  if (rec) {
    mirrored(registry, 'livepack_recorder_segments_total', 'Segments of live runs stored for their recording', () => rec.segments);
    mirrored(registry, 'livepack_recorder_bytes_total', 'Bytes of live runs stored for their recording', () => rec.bytes);
    mirrored(
      registry,
      'livepack_recorder_failed_segments_total',
      'Segments left out of a recording (storage failed or fell behind): gaps',
      () => rec.failedSegments,
    );
    mirrored(registry, 'livepack_recorder_finalized_total', 'Recorded runs turned into VOD assets', () => rec.finalized);
    new Gauge({
      name: 'livepack_recorder_last_finalize_seconds',
      help: 'Time from the last ended stream to its VOD asset being ready',
      registers: [registry],
      collect() {
        this.set(rec.lastFinalizeMs / 1000);
      },
    });
    new Gauge({
      name: 'livepack_recorder_last_finalize_work_seconds',
      help: 'Of that, the finalizing itself (playlists, poster, catalog); the rest was storing segments still waiting',
      registers: [registry],
      collect() {
        this.set(rec.lastFinalizeWorkMs / 1000);
      },
    });
  }
  const vw = src.vodWorker;
  if (vw) {
    mirrored(registry, 'livepack_vod_jobs_ready_total', 'Uploads packaged and made ready', () => vw.ready);
    mirrored(registry, 'livepack_vod_jobs_failed_total', 'Uploads failed for good (bad media, or out of attempts)', () => vw.failed);
    mirrored(registry, 'livepack_vod_jobs_retried_total', 'Packaging attempts that failed and were queued again', () => vw.retried);
  }
  if (src.webrtc) registerWebRtcMetrics(registry, src.webrtc);
  if (src.authLimiters) registerAuthMetrics(registry, src.authLimiters);
  if (src.http) registerHttpMetrics(registry, src.http);
  return registry;
}
