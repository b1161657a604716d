import { readFileSync } from 'node:fs';
import { AppError, type StorageSettings } from '../core/index.js';
import { IP_LIKE, listOf, NODE_ROLES, SETTINGS, type NodeRole, type Setting, type SettingValue } from './settings.js';

export { NODE_ROLES, SETTINGS } from './settings.js';
export type { NodeRole, Setting, SettingName, SettingValue } from './settings.js';

export interface ServerConfig {
  readonly host: string;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly apiToken: string | undefined;
  readonly publicBaseUrl: string;
  readonly publicRtmpUrl: string;
  readonly logLevel: string;
  readonly logFormat: 'auto' | 'json' | 'pretty';
  readonly createDefaultStream: boolean;
}

export interface RtmpConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly port: number; readonly certFile: string; readonly keyFile: string } | undefined;
  readonly limits: {
    readonly maxConnections: number;
    readonly handshakeTimeoutMs: number;
    readonly idleTimeoutMs: number;
    readonly mediaTimeoutMs: number;
    readonly maxChunkSize: number;
    readonly maxMessageSize: number;
  };
}

export interface HlsConfig {
  readonly partTargetMs: number;
  /** PART-HOLD-BACK as a multiple of PART-TARGET. */
  readonly partHoldBackParts: number;
  readonly segmentTargetMs: number;
  readonly windowSeconds: number;
  readonly holdMs: number;
  readonly endedRetentionMs: number;
  readonly maxHeldRequests: number;
}

export interface StreamConfig {
  /** A dropped publisher's wait for it to come back. */
  readonly graceMs: number;
  /** A publisher that stopped cleanly (unpublish): the wait before the stream ends. */
  readonly unpublishGraceMs: number;
  readonly readerQueueFrames: number;
}

export interface TranscodeConfig {
  /** Undefined: look for FFmpeg (PATH, then @ffmpeg-installer). */
  readonly ffmpegPath: string | undefined;
  readonly x264Preset: string;
  readonly maxStreams: number;
  readonly readyTimeoutMs: number;
  readonly minSpeed: number;
  readonly slowForMs: number;
  readonly restoreAfterMs: number;
  readonly vaapiDevice: string;
}

/** WebRTC ingest (WHIP): network settings and limits. */
export interface WebRtcConfig {
  readonly enabled: boolean;
  readonly bindAddress: string | undefined;
  readonly portMin: number;
  readonly portMax: number;
  readonly publicAddress: string | undefined;
  readonly iceServers: readonly string[];
  readonly maxSessions: number;
  readonly offersPerKeyPerMinute: number;
  readonly jitterBufferMs: number;
  readonly maxBitrateKbps: number;
}

/** HTTP server limits (slowloris, connection floods) and the /metrics token. */
export interface HttpConfig {
  readonly maxConnections: number;
  readonly headersTimeoutMs: number;
  /** TRUST_PROXY: true (any hop), the proxies' addresses and ranges, or undefined (the socket's address is the client). */
  readonly trustProxy: true | readonly string[] | undefined;
  /** METRICS_TOKEN; undefined: /metrics is open (private streams hashed). */
  readonly metricsToken: string | undefined;
}

/** Failed-token limiter shared by every surface (API token, WHIP and RTMP stream keys): per source address. */
export interface AuthConfig {
  readonly failureLimit: number;
  readonly failureWindowMs: number;
}

export interface CatalogConfig {
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
}

/**
 * Media storage (S3 or files under DATA_DIR): the type storage/ reads, declared once in core; `shared` says
 * the files are one directory every node mounts (STORAGE_SHARED).
 */
export type StorageConfig = StorageSettings & { readonly shared: boolean };

/** What this node is in the deployment. */
export interface NodeConfig {
  /** NODE_ROLES, in the order ingest, origin, worker, each once. */
  readonly roles: readonly NodeRole[];
  /** NODE_ID; undefined: the id kept in DATA_DIR/node-id. */
  readonly id: string | undefined;
}

/** Cross-node coordination (coord/): in-process without a Redis URL. */
export interface CoordConfig {
  readonly redisUrl: string | undefined;
  readonly prefix: string;
}

/** Recordings, uploads and playback authorization. */
export interface VodConfig {
  readonly dataDir: string;
  readonly uploadMaxBytes: number;
  readonly workers: number;
  readonly jobAttempts: number;
  readonly jobLeaseMs: number;
  readonly playbackTokenSecret: string | undefined;
  readonly playbackTokenTtlSeconds: number;
  /** LIVE_THUMBNAIL_INTERVAL_MS; undefined: the thumbnailer's default (10 s); 0: no live thumbnails. */
  readonly liveThumbnailIntervalMs: number | undefined;
  /** RECORDING_STORE_RETRY_MS: how long the recorder tries again a write storage failed. */
  readonly recordingStoreRetryMs: number;
}

export interface Config {
  readonly server: ServerConfig;
  readonly rtmp: RtmpConfig;
  readonly hls: HlsConfig;
  readonly stream: StreamConfig;
  readonly catalog: CatalogConfig;
  readonly transcode: TranscodeConfig;
  readonly storage: StorageConfig;
  readonly vod: VodConfig;
  readonly webrtc: WebRtcConfig;
  readonly node: NodeConfig;
  readonly coord: CoordConfig;
  readonly http: HttpConfig;
  readonly auth: AuthConfig;
}

type Raw = Record<string, string | undefined>;

function parseOne(s: Setting, raw: string | undefined): SettingValue {
  if (raw === undefined || raw === '') return s.default;
  switch (s.type) {
    case 'string':
      return raw;
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new AppError('E_CONFIG_INVALID', `${s.env}=${JSON.stringify(raw)} is not a boolean (use true or false)`);
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new AppError('E_CONFIG_INVALID', `${s.env}=${JSON.stringify(raw)} is not a whole number`);
      const n = Number(raw);
      if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) {
        throw new AppError('E_CONFIG_INVALID', `${s.env}=${n} is out of range (${s.min} to ${s.max})`);
      }
      return n;
    }
  }
}

/** The settings in the JSON file CONFIG_FILE names (an object of the same names), as strings; {} without one. */
function readConfigFile(env: Raw): Raw {
  if (!env.CONFIG_FILE) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(env.CONFIG_FILE, 'utf8'));
  } catch (err) {
    throw new AppError('E_CONFIG_INVALID', `CONFIG_FILE ${env.CONFIG_FILE} is not readable JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AppError('E_CONFIG_INVALID', `CONFIG_FILE ${env.CONFIG_FILE} must hold a JSON object`);
  }
  const known = new Set<string>(SETTINGS.map((s) => s.env));
  const values: Raw = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!known.has(k)) throw new AppError('E_CONFIG_INVALID', `CONFIG_FILE has an unknown setting ${k}`);
    values[k] = v === null || v === undefined ? undefined : String(v);
  }
  return values;
}

/**
 * Read and validate every setting once: from `env`, over the optional JSON file named by CONFIG_FILE
 * (an object of the same names). Throws E_CONFIG_INVALID naming the setting and the reason: first a value
 * of the wrong type or out of its limits, then the first setting whose row's rule refuses it.
 */
export function loadConfig(env: Raw = process.env): Config {
  const fileValues = readConfigFile(env);
  const values: Record<string, SettingValue> = {};
  // An empty variable counts as unset (as in parseOne), so it does not hide the file's value.
  for (const s of SETTINGS) values[s.env] = parseOne(s, env[s.env] || fileValues[s.env]);
  const get = (k: string) => values[k];
  for (const s of SETTINGS as readonly Setting[]) {
    const wrong = s.check?.(values[s.env], { env: s.env, get });
    if (wrong !== undefined) throw new AppError('E_CONFIG_INVALID', wrong);
  }
  return deepFreeze(toConfig(values));
}

/** Each module's section, from values already read and checked. */
/** TRUST_PROXY as Fastify's trustProxy takes it (already checked by its rule). */
function trustProxy(v: string | undefined): true | readonly string[] | undefined {
  if (v === undefined) return undefined;
  return v === 'true' ? true : listOf(v);
}

function toConfig(v: Record<string, SettingValue>): Config {
  const str = (k: string) => v[k] as string | undefined;
  const num = (k: string) => v[k] as number;
  const host = str('HOST')!;
  const dataDir = str('DATA_DIR')!;
  const cert = str('RTMPS_CERT');
  const key = str('RTMPS_KEY');
  const bucket = str('S3_BUCKET');
  return {
    server: {
      host,
      httpPort: num('HTTP_PORT'),
      dataDir,
      apiToken: str('API_TOKEN'),
      publicBaseUrl: (str('PUBLIC_BASE_URL') ?? `http://localhost:${num('HTTP_PORT')}`).replace(/\/+$/, ''),
      publicRtmpUrl: (str('PUBLIC_RTMP_URL') ?? `rtmp://localhost:${num('RTMP_PORT')}/live`).replace(/\/+$/, ''),
      logLevel: str('LOG_LEVEL')!,
      logFormat: str('LOG_FORMAT') as ServerConfig['logFormat'],
      createDefaultStream: v.CREATE_DEFAULT_STREAM as boolean,
    },
    rtmp: {
      host,
      port: num('RTMP_PORT'),
      tls: cert && key ? { port: num('RTMPS_PORT'), certFile: cert, keyFile: key } : undefined,
      limits: {
        maxConnections: num('RTMP_MAX_CONNECTIONS'),
        handshakeTimeoutMs: num('RTMP_HANDSHAKE_TIMEOUT_MS'),
        idleTimeoutMs: num('RTMP_IDLE_TIMEOUT_MS'),
        mediaTimeoutMs: num('RTMP_MEDIA_TIMEOUT_MS'),
        maxChunkSize: num('RTMP_MAX_CHUNK_SIZE'),
        maxMessageSize: num('RTMP_MAX_MESSAGE_SIZE'),
      },
    },
    hls: {
      partTargetMs: num('HLS_PART_TARGET_MS'),
      partHoldBackParts: num('HLS_PART_HOLD_BACK_PARTS'),
      segmentTargetMs: num('HLS_SEGMENT_TARGET_MS'),
      windowSeconds: num('HLS_WINDOW_SECONDS'),
      holdMs: num('HLS_HOLD_MS'),
      endedRetentionMs: num('HLS_ENDED_RETENTION_MS'),
      maxHeldRequests: num('HLS_MAX_HELD_REQUESTS'),
    },
    stream: {
      graceMs: num('RECONNECT_GRACE_MS'),
      unpublishGraceMs: num('UNPUBLISH_GRACE_MS'),
      readerQueueFrames: num('READER_QUEUE_FRAMES'),
    },
    catalog: { databaseUrl: str('DATABASE_URL'), dataDir },
    transcode: {
      ffmpegPath: str('FFMPEG_PATH'),
      x264Preset: str('TRANSCODE_X264_PRESET')!,
      maxStreams: num('TRANSCODE_MAX_STREAMS'),
      readyTimeoutMs: num('TRANSCODE_READY_TIMEOUT_MS'),
      minSpeed: num('TRANSCODE_MIN_SPEED_PERCENT') / 100,
      slowForMs: num('TRANSCODE_SLOW_SECONDS') * 1000,
      restoreAfterMs: num('TRANSCODE_RESTORE_SECONDS') * 1000,
      vaapiDevice: str('VAAPI_DEVICE')!,
    },
    storage: {
      dataDir,
      s3: bucket
        ? {
            bucket,
            endpoint: str('S3_ENDPOINT'),
            region: str('S3_REGION')!,
            forcePathStyle: v.S3_FORCE_PATH_STYLE as boolean,
            requestTimeoutMs: num('S3_REQUEST_TIMEOUT_MS'),
          }
        : undefined,
      shared: v.STORAGE_SHARED as boolean,
    },
    vod: {
      dataDir,
      uploadMaxBytes: num('UPLOAD_MAX_BYTES'),
      workers: num('VOD_WORKERS'),
      jobAttempts: num('VOD_JOB_ATTEMPTS'),
      jobLeaseMs: num('VOD_JOB_LEASE_MS'),
      playbackTokenSecret: str('PLAYBACK_TOKEN_SECRET'),
      playbackTokenTtlSeconds: num('PLAYBACK_TOKEN_TTL_SECONDS'),
      liveThumbnailIntervalMs: v.LIVE_THUMBNAIL_INTERVAL_MS as number | undefined,
      recordingStoreRetryMs: num('RECORDING_STORE_RETRY_MS'),
    },
    webrtc: {
      enabled: v.WEBRTC_ENABLED as boolean,
      // ICE gathers on HOST when it names one address (tests: 127.0.0.1), on every interface otherwise.
      bindAddress: str('WEBRTC_BIND_ADDRESS') ?? (host === '0.0.0.0' || host === '::' || !IP_LIKE.test(host) ? undefined : host),
      portMin: num('WEBRTC_UDP_PORT_MIN'),
      portMax: num('WEBRTC_UDP_PORT_MAX'),
      publicAddress: str('WEBRTC_PUBLIC_ADDRESS'),
      iceServers: listOf(str('WEBRTC_ICE_SERVERS')),
      maxSessions: num('WEBRTC_MAX_SESSIONS'),
      offersPerKeyPerMinute: num('WEBRTC_OFFERS_PER_KEY_PER_MINUTE'),
      jitterBufferMs: num('WEBRTC_JITTER_BUFFER_MS'),
      maxBitrateKbps: num('WEBRTC_MAX_BITRATE_KBPS'),
    },
    node: { roles: NODE_ROLES.filter((r) => listOf(str('NODE_ROLES')).includes(r)), id: str('NODE_ID') },
    coord: { redisUrl: str('REDIS_URL'), prefix: str('REDIS_PREFIX')! },
    http: {
      maxConnections: num('HTTP_MAX_CONNECTIONS'),
      headersTimeoutMs: num('HTTP_HEADERS_TIMEOUT_MS'),
      trustProxy: trustProxy(str('TRUST_PROXY')),
      metricsToken: str('METRICS_TOKEN'),
    },
    auth: { failureLimit: num('AUTH_FAILURE_LIMIT'), failureWindowMs: num('AUTH_FAILURE_WINDOW_SECONDS') * 1000 },
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
