/**
 * Every setting the server reads: environment variable, type, default, limits, meaning, and the rule its
 * value must follow. The configuration reference lists the same table; keep them in step.
 */
import { parseRedisUrl } from '../core/index.js';

export type SettingType = 'int' | 'string' | 'bool';
export type SettingValue = string | number | boolean | undefined;

/** What a rule sees besides the value: the setting's name, and the other settings' values (already read). */
export interface CheckContext {
  readonly env: string;
  readonly get: (env: string) => SettingValue;
}

export interface Setting {
  readonly env: string;
  readonly type: SettingType;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  readonly doc: string;
  /**
   * The rule on the value once read by type, default and limits (undefined when unset without a default):
   * the message saying what is wrong, or undefined. Rules run in table order after every value is read.
   */
  readonly check?: (value: SettingValue, ctx: CheckContext) => string | undefined;
}

/** The value as an error message shows it. */
const shown = (v: SettingValue) => JSON.stringify(v);

/** A rule on a string setting that is set. */
const ifSet =
  (rule: (v: string, ctx: CheckContext) => string | undefined) =>
  (v: SettingValue, ctx: CheckContext): string | undefined =>
    typeof v === 'string' ? rule(v, ctx) : undefined;

/**
 * A URL, with one of `schemes` when given: "localhost:8080" parses as a URL of scheme "localhost:", and the
 * URLs handed to viewers and broadcasters need theirs.
 */
const url = (schemes?: readonly string[]) =>
  ifSet((v, { env }) => {
    if (!URL.canParse(v)) return `${env}=${shown(v)} is not a URL`;
    if (schemes && !schemes.includes(new URL(v).protocol))
      return `${env}=${shown(v)} must start with ${schemes.map((x) => `${x}//`).join(' or ')}`;
    return undefined;
  });

const oneOf = (values: readonly string[], said = `one of ${values.join(', ')}`) =>
  ifSet((v, { env }) => (values.includes(v) ? undefined : `${env}=${shown(v)} must be ${said}`));

const minLength = (n: number) => ifSet((v, { env }) => (v.length < n ? `${env} must be at least ${n} characters` : undefined));

/** An IPv4 or IPv6 address (as WebRTC binds and announces them). */
export const IP_LIKE = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$/;
const ipAddress = ifSet((v, { env }) => (IP_LIKE.test(v) ? undefined : `${env}=${shown(v)} must be an IP address`));

/** A comma-separated list, blanks dropped. */
export function listOf(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

/** What a node may do (NODE_ROLES); a node has one or more. */
export const NODE_ROLES = ['ingest', 'origin', 'worker'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo'];

export const SETTINGS = [
  { env: 'HOST', type: 'string', default: '0.0.0.0', doc: 'Address the RTMP and HTTP servers bind to.' },
  { env: 'HTTP_PORT', type: 'int', default: 8080, min: 0, max: 65535, doc: 'HTTP port: API, origin, player, metrics.' },
  { env: 'RTMP_PORT', type: 'int', default: 1935, min: 0, max: 65535, doc: 'RTMP ingest port.' },
  {
    env: 'RTMPS_PORT',
    type: 'int',
    default: 1936,
    min: 0,
    max: 65535,
    doc: 'RTMPS ingest port; used only when RTMPS_CERT and RTMPS_KEY are set.',
  },
  {
    env: 'RTMPS_CERT',
    type: 'string',
    doc: 'Path to the PEM certificate (chain) for RTMPS.',
    check: (v, { get }) => (Boolean(v) !== Boolean(get('RTMPS_KEY')) ? 'RTMPS_CERT and RTMPS_KEY must be set together' : undefined),
  },
  { env: 'RTMPS_KEY', type: 'string', doc: 'Path to the PEM private key for RTMPS.' },
  { env: 'DATA_DIR', type: 'string', default: './data', doc: 'Where the embedded catalog, the generated API token and media live.' },
  {
    env: 'API_TOKEN',
    type: 'string',
    doc: 'Operator bearer token for /api/v1. When unset, one is generated on first start, kept in DATA_DIR/api-token and printed once.',
    check: minLength(16),
  },
  {
    env: 'AUTH_FAILURE_LIMIT',
    type: 'int',
    default: 10,
    min: 1,
    max: 100000,
    doc: 'Failed token attempts (API token, WHIP and RTMP stream keys) one source address may make in AUTH_FAILURE_WINDOW_SECONDS; after that it is refused (HTTP 429 with Retry-After, E_RATE_LIMITED) until the window ends, even with a right token.',
  },
  {
    env: 'AUTH_FAILURE_WINDOW_SECONDS',
    type: 'int',
    default: 60,
    min: 1,
    max: 86400,
    doc: 'Length of the window in which AUTH_FAILURE_LIMIT failures are counted per source address.',
  },
  {
    env: 'METRICS_TOKEN',
    type: 'string',
    doc: 'Bearer token /metrics asks for. Unset: /metrics is open, and private streams appear under a hash of their id (private:<hash>), never the id.',
    check: minLength(16),
  },
  {
    env: 'HTTP_MAX_CONNECTIONS',
    type: 'int',
    default: 10000,
    min: 1,
    max: 1000000,
    doc: 'HTTP connections open at once (idle keep-alive ones included); further connections are closed at once, without an answer, and counted in /metrics. Keep the open-files limit (ulimit -n) above it.',
  },
  {
    env: 'TRUST_PROXY',
    type: 'string',
    doc: "Reverse proxies (nginx, a load balancer) whose X-Forwarded-For names the client: comma-separated addresses or CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8), or true for any hop (only when nothing else can reach the port). Unset: the socket's address is the client, so behind a proxy every per-address limit (failed auth, beacons, WHIP) sees the proxy.",
    check: ifSet((v, { env }) =>
      v === 'true' || listOf(v).every((a) => IP_LIKE.test(a.replace(/\/\d{1,3}$/, '')))
        ? undefined
        : `${env}=${shown(v)} must be true or a comma-separated list of IP addresses or CIDR ranges`,
    ),
  },
  {
    env: 'HTTP_HEADERS_TIMEOUT_MS',
    type: 'int',
    default: 10000,
    min: 1000,
    max: 120000,
    doc: "Time a client has to send a request's headers; a connection that has not finished them by then is closed (slowloris).",
  },
  {
    env: 'PUBLIC_BASE_URL',
    type: 'string',
    doc: 'Base URL viewers reach (CDN or origin), used in playback URLs the API returns. Default: http://localhost:HTTP_PORT.',
    check: url(['http:', 'https:']),
  },
  {
    env: 'PUBLIC_RTMP_URL',
    type: 'string',
    doc: 'Base RTMP URL broadcasters reach, used in ingest URLs the API returns. Default: rtmp://localhost:RTMP_PORT/live.',
    check: url(['rtmp:', 'rtmps:']),
  },
  {
    env: 'DATABASE_URL',
    type: 'string',
    doc: 'PostgreSQL connection string. When unset, the embedded PGlite catalog under DATA_DIR/catalog is used.',
    check: url(),
  },
  {
    env: 'S3_BUCKET',
    type: 'string',
    doc: 'S3 bucket for recordings and uploads. When unset, media is kept as files under DATA_DIR/media.',
    check: ifSet((v) =>
      // As S3 allows them for new buckets (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v)
        ? undefined
        : `S3_BUCKET=${shown(v)} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)`,
    ),
  },
  {
    env: 'S3_ENDPOINT',
    type: 'string',
    doc: 'URL of an S3-compatible service (MinIO...). Unset: AWS S3. Credentials come from the AWS SDK chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance role).',
    check: ifSet((v, { get }) => {
      if (get('S3_BUCKET') === undefined) return 'S3_ENDPOINT is set but S3_BUCKET is not (media would silently stay on disk)';
      if (!URL.canParse(v) || !['http:', 'https:'].includes(new URL(v).protocol))
        return `S3_ENDPOINT=${shown(v)} must be a URL starting with http:// or https://`;
      return undefined;
    }),
  },
  {
    env: 'S3_REGION',
    type: 'string',
    default: 'us-east-1',
    doc: 'Region of the S3 bucket.',
    check: ifSet((v) => (/^[a-z0-9-]{1,32}$/.test(v) ? undefined : `S3_REGION=${shown(v)} is not a region name (such as us-east-1)`)),
  },
  {
    env: 'S3_FORCE_PATH_STYLE',
    type: 'bool',
    default: false,
    doc: 'Address the bucket in the URL path (http://host/bucket/key) rather than the host name; MinIO needs it.',
  },
  {
    env: 'S3_REQUEST_TIMEOUT_MS',
    type: 'int',
    default: 10000,
    min: 500,
    max: 600000,
    doc: 'An S3 request whose connection carries no byte either way for this long is given up (opening a connection may take 3 s); the SDK tries a request twice. A VOD read then answers 503 E_UNAVAILABLE; the recorder tries its writes again (RECORDING_STORE_RETRY_MS).',
  },
  {
    env: 'NODE_ROLES',
    type: 'string',
    default: 'ingest,origin,worker',
    doc: 'What this node does, comma-separated: ingest (RTMP/WHIP, transcoder, packager, recorder, live thumbnails), origin (/live, /vod, the player, the API), worker (upload jobs). The default, all three, is the single-process server.',
    check: ifSet((v, { env }) => {
      const roles = v.split(',').map((r) => r.trim());
      if (roles.every((r) => r === ''))
        return `${env}=${shown(v)} names no role (use ${NODE_ROLES.join(', ')} or several, comma-separated)`;
      const bad = roles.find((r) => !(NODE_ROLES as readonly string[]).includes(r));
      if (bad === '') return `${env}=${shown(v)} has an empty role (a stray comma)`;
      return bad === undefined ? undefined : `${env}: ${shown(bad)} is not a role (use ${NODE_ROLES.join(', ')})`;
    }),
  },
  {
    env: 'NODE_ID',
    type: 'string',
    doc: "This node's id in the deployment (leases, recordings' heartbeats, the node registry). Default: the one kept in DATA_DIR/node-id, made on first start; set it on each node when nodes share one DATA_DIR.",
    check: ifSet((v, { env }) =>
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v)
        ? undefined
        : `${env}=${shown(v)} must be 1 to 64 letters, digits, dots, hyphens or underscores`,
    ),
  },
  {
    env: 'REDIS_URL',
    type: 'string',
    doc: 'Redis that the nodes of one deployment share: redis://[user:password@]host:port[/db], rediss://... for TLS, redis+cluster://host1:port1,host2:port2 (or a comma list of hosts) for Redis Cluster. When unset, coordination stays in this process: a single node.',
    // The forms coord/ connects to; the value is not shown in the message: it may carry a password.
    check: ifSet((v, { env }) => {
      try {
        parseRedisUrl(v);
        return undefined;
      } catch {
        return `${env} must look like redis://host:6379, rediss://host:6380 (TLS) or redis+cluster://host1:6379,host2:6379 (Redis Cluster)`;
      }
    }),
  },
  {
    env: 'REDIS_PREFIX',
    type: 'string',
    default: 'livepack:',
    doc: 'Prefix of every Redis key (several deployments may share one Redis).',
    check: ifSet((v, { env }) =>
      /^[^\s{}]{1,64}$/.test(v)
        ? undefined
        : `${env}=${shown(v)} must be 1 to 64 characters without spaces or braces (braces would put every key in the prefix's hash slot)`,
    ),
  },
  {
    env: 'STORAGE_SHARED',
    type: 'bool',
    default: false,
    doc: 'Without S3_BUCKET, says that DATA_DIR/media and DATA_DIR/uploads are one directory every node mounts; with REDIS_URL set and no S3_BUCKET the server refuses to start without it.',
    check: (v, { get }) =>
      get('REDIS_URL') !== undefined && get('S3_BUCKET') === undefined && v !== true
        ? 'REDIS_URL is set (several nodes) but media is kept as files under DATA_DIR on this node: every node must see the same recordings and uploads. Use S3 (S3_BUCKET), or mount one directory on every node and say so with STORAGE_SHARED=true'
        : undefined,
  },
  {
    env: 'LOG_FORMAT',
    type: 'string',
    default: 'auto',
    doc: 'json (one JSON object a line, for log shippers), pretty (for people), or auto: pretty when stdout is a terminal.',
    check: oneOf(['auto', 'json', 'pretty'], 'auto, json or pretty'),
  },
  {
    env: 'LOG_LEVEL',
    type: 'string',
    default: 'info',
    doc: 'pino log level: fatal, error, warn, info, debug, trace, silent.',
    check: oneOf(LOG_LEVELS),
  },
  {
    env: 'HLS_PART_TARGET_MS',
    type: 'int',
    default: 200,
    min: 50,
    max: 2000,
    doc: 'LL-HLS part target; fitted to whole frames (29.97 fps gives 0.201 s).',
  },
  {
    env: 'HLS_PART_HOLD_BACK_PARTS',
    type: 'int',
    default: 3,
    min: 2,
    max: 10,
    doc: 'PART-HOLD-BACK in parts: how far behind the live edge players start (RFC 8216bis: at least 2, should be 3). 2 starts stock hls.js one part closer to the edge, with one part less of buffer against a late part.',
  },
  {
    env: 'HLS_SEGMENT_TARGET_MS',
    type: 'int',
    default: 2000,
    min: 500,
    max: 10000,
    doc: 'Segment target; segments are cut at the first keyframe after it. Set the encoder keyframe interval to divide it.',
    check: (v, { get }) =>
      (v as number) < 2 * (get('HLS_PART_TARGET_MS') as number)
        ? 'HLS_SEGMENT_TARGET_MS must be at least twice HLS_PART_TARGET_MS'
        : undefined,
  },
  {
    env: 'HLS_WINDOW_SECONDS',
    type: 'int',
    default: 24,
    min: 6,
    max: 600,
    doc: 'Seconds of complete segments each live media playlist lists.',
  },
  {
    env: 'HLS_HOLD_MS',
    type: 'int',
    default: 6000,
    min: 500,
    max: 30000,
    doc: 'Longest a blocking playlist request or a preload-hint part request is held.',
  },
  {
    env: 'HLS_MAX_HELD_REQUESTS',
    type: 'int',
    default: 5000,
    min: 1,
    max: 1000000,
    doc: 'Blocking playlist and preload-hint requests held at once per rendition; more get 429 (put a CDN in front for large audiences).',
  },
  {
    env: 'HLS_ENDED_RETENTION_MS',
    type: 'int',
    default: 60000,
    min: 0,
    max: 3600000,
    doc: 'How long an ended stream keeps serving its final playlist (EXT-X-ENDLIST) before it is released.',
  },
  {
    env: 'RECONNECT_GRACE_MS',
    type: 'int',
    default: 30000,
    min: 0,
    max: 600000,
    doc: 'How long a stream whose publisher dropped (connection lost, no unpublish) waits for it to return before the playlist ends.',
  },
  {
    env: 'UNPUBLISH_GRACE_MS',
    type: 'int',
    default: 0,
    min: 0,
    max: 600000,
    doc: 'How long a stream waits after a clean stop (RTMP FCUnpublish/deleteStream, WHIP DELETE) before it ends; 0 ends it at once.',
  },
  {
    env: 'READER_QUEUE_FRAMES',
    type: 'int',
    default: 600,
    min: 16,
    max: 100000,
    doc: 'Frames a slow internal reader may queue before it drops to the next keyframe.',
  },
  {
    env: 'RTMP_MAX_CONNECTIONS',
    type: 'int',
    default: 500,
    min: 1,
    max: 100000,
    doc: 'RTMP connections accepted at once; more are refused.',
  },
  {
    env: 'RTMP_HANDSHAKE_TIMEOUT_MS',
    type: 'int',
    default: 10000,
    min: 100,
    max: 120000,
    doc: 'Time a client has to complete the RTMP handshake.',
  },
  {
    env: 'RTMP_IDLE_TIMEOUT_MS',
    type: 'int',
    default: 30000,
    min: 1000,
    max: 600000,
    doc: 'An RTMP connection that sends nothing for this long is closed.',
  },
  {
    env: 'RTMP_MEDIA_TIMEOUT_MS',
    type: 'int',
    default: 10000,
    min: 500,
    max: 600000,
    doc: 'An RTMP publish that delivers no frame within this long of publish, or none for this long later (while it still sends acks or pings), is closed as a dropped publisher.',
  },
  { env: 'RTMP_MAX_CHUNK_SIZE', type: 'int', default: 65536, min: 128, max: 16777215, doc: 'Largest chunk size a client may set.' },
  {
    env: 'RTMP_MAX_MESSAGE_SIZE',
    type: 'int',
    default: 8388608,
    min: 65536,
    max: 67108864,
    doc: 'Largest RTMP message (one video frame) accepted.',
  },
  {
    env: 'WEBRTC_ENABLED',
    type: 'bool',
    default: true,
    doc: 'Accept WebRTC publishers over WHIP (POST /whip) and serve the /publish page.',
  },
  {
    env: 'WEBRTC_UDP_PORT_MIN',
    type: 'int',
    default: 20000,
    min: 1024,
    max: 65535,
    doc: 'Lowest UDP port for WebRTC media (ICE); each WHIP session takes one port. Open the range in the firewall.',
    check: (v, { get }) =>
      (v as number) >= (get('WEBRTC_UDP_PORT_MAX') as number) ? 'WEBRTC_UDP_PORT_MIN must be below WEBRTC_UDP_PORT_MAX' : undefined,
  },
  {
    env: 'WEBRTC_UDP_PORT_MAX',
    type: 'int',
    default: 20999,
    min: 1024,
    max: 65535,
    doc: 'Highest UDP port for WebRTC media; the range bounds the sessions at once as well.',
  },
  {
    env: 'WEBRTC_BIND_ADDRESS',
    type: 'string',
    doc: 'Address WebRTC media binds to and announces as its host candidate. Default: HOST, or every interface when HOST is 0.0.0.0 or ::.',
    check: ipAddress,
  },
  {
    env: 'WEBRTC_PUBLIC_ADDRESS',
    type: 'string',
    doc: 'Public IP announced in WHIP answers instead of the host address: a server behind a 1:1 NAT (cloud VM with an elastic IP) forwarding the same UDP ports.',
    check: ipAddress,
  },
  {
    env: 'WEBRTC_ICE_SERVERS',
    type: 'string',
    doc: 'Comma-separated STUN/TURN URLs (stun:host:port, turn:user:password@host:port) used by the server and sent to WHIP clients in Link headers.',
    check: ifSet((v) => {
      const bad = listOf(v).find((u) => !/^(stun|turns?):[^\s,]+$/.test(u));
      return bad === undefined ? undefined : `WEBRTC_ICE_SERVERS: ${shown(bad)} is not a stun:, turn: or turns: URL`;
    }),
  },
  { env: 'WEBRTC_MAX_SESSIONS', type: 'int', default: 100, min: 1, max: 10000, doc: 'WHIP sessions at once; more are refused with 429.' },
  {
    env: 'WEBRTC_OFFERS_PER_KEY_PER_MINUTE',
    type: 'int',
    default: 30,
    min: 1,
    max: 10000,
    doc: 'WHIP offers (POST /whip) one stream key may make per minute; more are refused with 429 and Retry-After. A publisher that reconnects makes a few.',
  },
  {
    env: 'WEBRTC_JITTER_BUFFER_MS',
    type: 'int',
    default: 150,
    min: 20,
    max: 2000,
    doc: 'Longest a gap in the RTP sequence holds back the packets after it while NACKs ask for the missing ones (raise it for publishers with long round trips).',
  },
  {
    env: 'WEBRTC_MAX_BITRATE_KBPS',
    type: 'int',
    default: 8000,
    min: 300,
    max: 100000,
    doc: 'Bitrate a WebRTC publisher may use, announced to it with REMB (browsers otherwise stay near their start bitrate).',
  },
  {
    env: 'FFMPEG_PATH',
    type: 'string',
    doc: 'FFmpeg for the ABR ladder. Default: ffmpeg on PATH, else the one in @ffmpeg-installer/linux-x64 if installed; without any, ABR streams are served as passthrough.',
  },
  {
    env: 'TRANSCODE_X264_PRESET',
    type: 'string',
    default: 'veryfast',
    doc: 'libx264 preset of transcoded rungs (ultrafast ... veryslow): CPU per rung against quality per bit.',
    check: oneOf(X264_PRESETS),
  },
  {
    env: 'TRANSCODE_MAX_STREAMS',
    type: 'int',
    default: 8,
    min: 0,
    max: 1000,
    doc: 'FFmpeg ladders running at once; a further ABR stream is served source-only until one ends (counted in /metrics).',
  },
  {
    env: 'TRANSCODE_READY_TIMEOUT_MS',
    type: 'int',
    default: 10000,
    min: 1000,
    max: 120000,
    doc: 'Time FFmpeg has to produce its first frame of every rung before it counts as failed to start.',
  },
  {
    env: 'TRANSCODE_MIN_SPEED_PERCENT',
    type: 'int',
    default: 90,
    min: 10,
    max: 100,
    doc: 'FFmpeg slower than this percentage of real time (over a few seconds) is falling behind.',
  },
  {
    env: 'TRANSCODE_SLOW_SECONDS',
    type: 'int',
    default: 5,
    min: 1,
    max: 600,
    doc: 'Falling behind (too slow, or output lagging input by over 2 s) this long drops the most expensive rung.',
  },
  {
    env: 'TRANSCODE_RESTORE_SECONDS',
    type: 'int',
    default: 60,
    min: 5,
    max: 86400,
    doc: 'A dropped rung is tried again no sooner than this, and only while the CPUs are at least 35% idle.',
  },
  { env: 'VAAPI_DEVICE', type: 'string', default: '/dev/dri/renderD128', doc: 'DRM render node for rungs with encoder h264_vaapi.' },
  {
    env: 'UPLOAD_MAX_BYTES',
    type: 'int',
    default: 10737418240,
    min: 1024,
    max: 1099511627776,
    doc: 'Largest upload accepted (bytes, default 10 GiB); a bigger declared size is refused at initiate.',
  },
  {
    env: 'VOD_WORKERS',
    type: 'int',
    default: 1,
    min: 0,
    max: 64,
    doc: 'Upload packaging jobs this server runs at once (each runs one FFmpeg ladder); 0 runs none here (another node takes the queue).',
  },
  {
    env: 'VOD_JOB_ATTEMPTS',
    type: 'int',
    default: 3,
    min: 1,
    max: 20,
    doc: 'Tries of an upload packaging job before its video is failed (retried with backoff when FFmpeg or storage fail; bad media fails at once). An attempt made while FFmpeg does not run at all or the object store does not answer is not counted: the job waits for it.',
  },
  {
    env: 'VOD_JOB_LEASE_MS',
    type: 'int',
    default: 30000,
    min: 2000,
    max: 3600000,
    doc: 'Lease of a running upload job; its worker renews it every third of this, and a job whose worker died is taken again once the lease ran out.',
  },
  {
    env: 'RECORDING_STORE_RETRY_MS',
    type: 'int',
    default: 300000,
    min: 1000,
    max: 86400000,
    doc: "How long the recorder keeps trying to store a live run's segments while storage fails (backoff from 250 ms to 5 s; meanwhile they wait in memory, at most 256 MiB a run). Past it, and for what does not fit in those 256 MiB, a segment is a counted gap (EXT-X-GAP). A run that ends waits for its segments at most this long before it is finalized.",
  },
  {
    env: 'PLAYBACK_TOKEN_SECRET',
    type: 'string',
    doc: 'HMAC-SHA256 key for private playback tokens (at least 32 characters). When unset, one is generated on first start and kept in DATA_DIR/playback-secret; set the same on every origin.',
    check: minLength(32),
  },
  {
    env: 'PLAYBACK_TOKEN_TTL_SECONDS',
    type: 'int',
    default: 3600,
    min: 10,
    max: 2592000,
    doc: 'Default lifetime of a playback token (a request may ask for less or more, up to 30 days).',
  },
  {
    env: 'LIVE_THUMBNAIL_INTERVAL_MS',
    type: 'int',
    min: 0,
    max: 600000,
    doc: 'How often each live stream gets a new thumbnail (one small FFmpeg run on a keyframe of its lowest rendition). Default: 10000 (10 s); 0 turns live thumbnails off.',
    check: (v) => (typeof v === 'number' && v > 0 && v < 1000 ? 'LIVE_THUMBNAIL_INTERVAL_MS must be 0 (off) or at least 1000' : undefined),
  },
  {
    env: 'CREATE_DEFAULT_STREAM',
    type: 'bool',
    default: true,
    doc: 'On first start with an empty catalog, create a stream named "default" and print its URLs.',
  },
] as const satisfies readonly Setting[];

export type SettingName = (typeof SETTINGS)[number]['env'];
