import { readFileSync } from 'node:fs';
import { AppError } from '../core/index.js';
import { SETTINGS, type Setting } from './settings.js';

export { SETTINGS } from './settings.js';
export type { Setting, SettingName } from './settings.js';

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
    readonly maxChunkSize: number;
    readonly maxMessageSize: number;
  };
}

export interface HlsConfig {
  readonly partTargetMs: number;
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
  readonly jitterBufferMs: number;
  readonly maxBitrateKbps: number;
}

export interface CatalogConfig {
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
}

/** Media storage: S3 when S3_BUCKET is set, else files under `<dataDir>/media`. */
export interface StorageConfig {
  readonly dataDir: string;
  readonly s3:
    | {
        readonly bucket: string;
        readonly endpoint: string | undefined;
        readonly region: string;
        readonly forcePathStyle: boolean;
      }
    | undefined;
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
}

type Raw = Record<string, string | undefined>;
type Value = string | number | boolean | undefined;

function parseOne(s: Setting, raw: string | undefined): Value {
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

/**
 * Read and validate every setting once: from `env`, over the optional JSON file named by CONFIG_FILE
 * (an object of the same names). Throws E_CONFIG_INVALID naming the setting and the reason.
 */
export function loadConfig(env: Raw = process.env): Config {
  let fileValues: Raw = {};
  if (env.CONFIG_FILE) {
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
    for (const [k, v] of Object.entries(parsed)) {
      if (!known.has(k)) throw new AppError('E_CONFIG_INVALID', `CONFIG_FILE has an unknown setting ${k}`);
      fileValues[k] = v === null || v === undefined ? undefined : String(v);
    }
  }
  const v: Record<string, Value> = {};
  // An empty variable counts as unset (as in parseOne), so it does not hide the file's value.
  for (const s of SETTINGS) v[s.env] = parseOne(s, env[s.env] || fileValues[s.env]);

  const str = (k: string) => v[k] as string | undefined;
  const num = (k: string) => v[k] as number;
  if (Boolean(str('RTMPS_CERT')) !== Boolean(str('RTMPS_KEY'))) {
    throw new AppError('E_CONFIG_INVALID', 'RTMPS_CERT and RTMPS_KEY must be set together');
  }
  if (num('HLS_SEGMENT_TARGET_MS') < 2 * num('HLS_PART_TARGET_MS')) {
    throw new AppError('E_CONFIG_INVALID', 'HLS_SEGMENT_TARGET_MS must be at least twice HLS_PART_TARGET_MS');
  }
  for (const k of ['PUBLIC_BASE_URL', 'PUBLIC_RTMP_URL', 'DATABASE_URL']) {
    const url = str(k);
    if (url !== undefined && !URL.canParse(url)) throw new AppError('E_CONFIG_INVALID', `${k}=${JSON.stringify(url)} is not a URL`);
  }
  // "localhost:8080" parses as a URL of scheme "localhost:"; the URLs handed to viewers and broadcasters need theirs.
  for (const [k, schemes] of [['PUBLIC_BASE_URL', ['http:', 'https:']], ['PUBLIC_RTMP_URL', ['rtmp:', 'rtmps:']]] as const) {
    const url = str(k);
    if (url !== undefined && !(schemes as readonly string[]).includes(new URL(url).protocol)) {
      throw new AppError('E_CONFIG_INVALID', `${k}=${JSON.stringify(url)} must start with ${schemes.map((x) => `${x}//`).join(' or ')}`);
    }
  }
  const logFormat = str('LOG_FORMAT')!;
  if (!['auto', 'json', 'pretty'].includes(logFormat)) {
    throw new AppError('E_CONFIG_INVALID', `LOG_FORMAT=${JSON.stringify(logFormat)} must be auto, json or pretty`);
  }
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(str('LOG_LEVEL')!)) {
    throw new AppError('E_CONFIG_INVALID', `LOG_LEVEL=${JSON.stringify(str('LOG_LEVEL'))} must be one of ${levels.join(', ')}`);
  }
  const presets = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo'];
  if (!presets.includes(str('TRANSCODE_X264_PRESET')!)) {
    throw new AppError('E_CONFIG_INVALID', `TRANSCODE_X264_PRESET=${JSON.stringify(str('TRANSCODE_X264_PRESET'))} must be one of ${presets.join(', ')}`);
  }
  // Bucket names as S3 allows them for new buckets (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
  const bucket = str('S3_BUCKET');
  if (bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new AppError('E_CONFIG_INVALID', `S3_BUCKET=${JSON.stringify(bucket)} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)`);
  }
  const s3Endpoint = str('S3_ENDPOINT');
  if (s3Endpoint !== undefined) {
    if (bucket === undefined) throw new AppError('E_CONFIG_INVALID', 'S3_ENDPOINT is set but S3_BUCKET is not (media would silently stay on disk)');
    if (!URL.canParse(s3Endpoint) || !['http:', 'https:'].includes(new URL(s3Endpoint).protocol)) {
      throw new AppError('E_CONFIG_INVALID', `S3_ENDPOINT=${JSON.stringify(s3Endpoint)} must be a URL starting with http:// or https://`);
    }
  }
  if (!/^[a-z0-9-]{1,32}$/.test(str('S3_REGION')!)) {
    throw new AppError('E_CONFIG_INVALID', `S3_REGION=${JSON.stringify(str('S3_REGION'))} is not a region name (such as us-east-1)`);
  }
  const playbackSecret = str('PLAYBACK_TOKEN_SECRET');
  if (playbackSecret !== undefined && playbackSecret.length < 32) throw new AppError('E_CONFIG_INVALID', 'PLAYBACK_TOKEN_SECRET must be at least 32 characters');
  const thumbEvery = v.LIVE_THUMBNAIL_INTERVAL_MS as number | undefined;
  if (thumbEvery !== undefined && thumbEvery > 0 && thumbEvery < 1000) throw new AppError('E_CONFIG_INVALID', 'LIVE_THUMBNAIL_INTERVAL_MS must be 0 (off) or at least 1000');
  const token = str('API_TOKEN');
  if (token !== undefined && token.length < 16) throw new AppError('E_CONFIG_INVALID', 'API_TOKEN must be at least 16 characters');

  if (num('WEBRTC_UDP_PORT_MIN') >= num('WEBRTC_UDP_PORT_MAX')) {
    throw new AppError('E_CONFIG_INVALID', 'WEBRTC_UDP_PORT_MIN must be below WEBRTC_UDP_PORT_MAX');
  }
  const ipLike = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$/;
  for (const k of ['WEBRTC_BIND_ADDRESS', 'WEBRTC_PUBLIC_ADDRESS']) {
    const a = str(k);
    if (a !== undefined && !ipLike.test(a)) throw new AppError('E_CONFIG_INVALID', `${k}=${JSON.stringify(a)} must be an IP address`);
  }
  const iceServers = (str('WEBRTC_ICE_SERVERS') ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (const u of iceServers) {
    if (!/^(stun|turns?):[^\s,]+$/.test(u)) throw new AppError('E_CONFIG_INVALID', `WEBRTC_ICE_SERVERS: ${JSON.stringify(u)} is not a stun:, turn: or turns: URL`);
  }

  const host = str('HOST')!;
  const dataDir = str('DATA_DIR')!;
  const cert = str('RTMPS_CERT');
  const key = str('RTMPS_KEY');
  const config: Config = {
    server: {
      host,
      httpPort: num('HTTP_PORT'),
      dataDir,
      apiToken: token,
      publicBaseUrl: (str('PUBLIC_BASE_URL') ?? `http://localhost:${num('HTTP_PORT')}`).replace(/\/+$/, ''),
      publicRtmpUrl: (str('PUBLIC_RTMP_URL') ?? `rtmp://localhost:${num('RTMP_PORT')}/live`).replace(/\/+$/, ''),
      logLevel: str('LOG_LEVEL')!,
      logFormat: logFormat as ServerConfig['logFormat'],
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
        maxChunkSize: num('RTMP_MAX_CHUNK_SIZE'),
        maxMessageSize: num('RTMP_MAX_MESSAGE_SIZE'),
      },
    },
    hls: {
      partTargetMs: num('HLS_PART_TARGET_MS'),
      segmentTargetMs: num('HLS_SEGMENT_TARGET_MS'),
      windowSeconds: num('HLS_WINDOW_SECONDS'),
      holdMs: num('HLS_HOLD_MS'),
      endedRetentionMs: num('HLS_ENDED_RETENTION_MS'),
      maxHeldRequests: num('HLS_MAX_HELD_REQUESTS'),
    },
    stream: { graceMs: num('RECONNECT_GRACE_MS'), unpublishGraceMs: num('UNPUBLISH_GRACE_MS'), readerQueueFrames: num('READER_QUEUE_FRAMES') },
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
        ? { bucket, endpoint: s3Endpoint, region: str('S3_REGION')!, forcePathStyle: v.S3_FORCE_PATH_STYLE as boolean }
        : undefined,
    },
    vod: {
      dataDir,
      uploadMaxBytes: num('UPLOAD_MAX_BYTES'),
      workers: num('VOD_WORKERS'),
      jobAttempts: num('VOD_JOB_ATTEMPTS'),
      jobLeaseMs: num('VOD_JOB_LEASE_MS'),
      playbackTokenSecret: playbackSecret,
      playbackTokenTtlSeconds: num('PLAYBACK_TOKEN_TTL_SECONDS'),
      liveThumbnailIntervalMs: v.LIVE_THUMBNAIL_INTERVAL_MS as number | undefined,
    },
    webrtc: {
      enabled: v.WEBRTC_ENABLED as boolean,
      // ICE gathers on HOST when it names one address (tests: 127.0.0.1), on every interface otherwise.
      bindAddress: str('WEBRTC_BIND_ADDRESS') ?? (host === '0.0.0.0' || host === '::' || !ipLike.test(host) ? undefined : host),
      portMin: num('WEBRTC_UDP_PORT_MIN'),
      portMax: num('WEBRTC_UDP_PORT_MAX'),
      publicAddress: str('WEBRTC_PUBLIC_ADDRESS'),
      iceServers,
      maxSessions: num('WEBRTC_MAX_SESSIONS'),
      jitterBufferMs: num('WEBRTC_JITTER_BUFFER_MS'),
      maxBitrateKbps: num('WEBRTC_MAX_BITRATE_KBPS'),
    },
  };
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
