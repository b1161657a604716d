/**
 * Secrets out of log lines. Request URLs carry them (`/publish?key=sk_…`, `/watch/<id>?token=…`,
 * `/t/<token>/live/…`), so do RTMP URLs (`rtmp://host/live/<key>`), service URLs (`redis://:pass@host`)
 * and Authorization headers. Every logger of the server goes through `redactingLogger`: its serializers
 * rewrite `req` and `err`, and its log formatter rewrites every other string and secret-named field, so
 * a module that logs a URL or a header cannot leak what is in it.
 */
import { pino } from 'pino';

/** What stands in for a secret in a log line. */
export const REDACTED = '[REDACTED]';

/** Query parameters whose value is a secret: key, streamKey, stream_key, token, access_token, X-Amz-Signature… */
const SECRET_PARAM = /([?&;][^=&#\s"'<>]*?(?:key|token|secret|password|passwd|signature|credential|auth)[^=&#\s"'<>]*=)[^&#\s"'<>]*/gi;
/** The token segment of tokenised playback, `/t/<token>/vod/…` and `/t/<token>/live/…`. */
const TOKEN_SEGMENT = /(\/t\/)[^/?#\s"'<>]+/g;
/** The stream name of an RTMP URL is the stream key: `rtmp://host[:port]/<app>/<key>`. */
const RTMP_KEY = /(rtmps?:\/\/[^/\s"'<>]+\/[^/\s"'<>?]+\/)[^\s"'<>?]+/gi;
/** The user and password of a service URL: `redis://:pass@host`, `postgres://user:pass@host/db`. */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/\s"'<>@]+@/gi;
/** An Authorization header's credentials. */
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
/** A stream key wherever it stands (they are made by newStreamKey: `sk_` and 32 base64url characters). */
const STREAM_KEY = /\bsk_[A-Za-z0-9_-]{8,}/g;
/** The signature of a playback token (`<kind>.<id>.<expiry>.<HMAC>`) wherever it stands. */
const TOKEN_SIGNATURE = /\b([vs]\.[A-Za-z0-9_-]{1,64}\.\d{1,12}\.)[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g;
/** Fields whose whole value is a secret, by name (headers are lower case, options camel case). */
const SECRET_FIELD =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?token|stream[-_]?key|(access|refresh|playback)?[-_]?token|password|passwd|secret|\w*secret(access)?key|\w*[-_]?secret)$/i;

/** `text` with every secret it carries replaced by [REDACTED]. */
export function redactText(text: string): string {
  return text
    .replace(URL_USERINFO, `$1${REDACTED}@`)
    .replace(RTMP_KEY, `$1${REDACTED}`)
    .replace(SECRET_PARAM, `$1${REDACTED}`)
    .replace(TOKEN_SEGMENT, `$1${REDACTED}`)
    .replace(AUTH_SCHEME, `$1 ${REDACTED}`)
    .replace(STREAM_KEY, `sk_${REDACTED}`)
    .replace(TOKEN_SIGNATURE, `$1${REDACTED}`);
}

/** Deeper than this a logged value is not walked (log objects are small; a cycle must not hang a log call). */
const MAX_DEPTH = 6;

const isPlain = (v: object): boolean => {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/**
 * `value` with its strings redacted and its secret-named fields replaced, through plain objects and
 * arrays. Other objects (errors, requests) are left to their serializers, which run after this.
 */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null || depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (!isPlain(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELD.test(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redactValue(v, depth + 1);
  }
  return out;
}

/** A request as it is logged: fastify's shape (method, url, host, remote address), the URL redacted. */
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, unknown>;
  socket?: { remoteAddress?: string; remotePort?: number } | null;
}

/**
 * A request URL, redacted. A client may percent-encode what names a secret (`?to%6Ben=…`, `/%74/<token>/`)
 * and the server decodes it all the same, so when the decoded URL shows a secret, that form is logged.
 */
export function redactUrl(url: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(url);
  } catch {
    return redactText(url);
  }
  const redacted = redactText(decoded);
  return redacted === decoded ? redactText(url) : redacted;
}

function serializeRequest(req: LoggedRequest) {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? redactUrl(req.url) : undefined,
    version: req.headers?.['accept-version'],
    host: req.host,
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
    remotePort: req.socket?.remotePort,
  };
}

/** pino's error serializer (type, message, stack, cause, own fields), its strings redacted. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return redactValue(err);
  return redactValue({ ...pino.stdSerializers.err(err) });
}

/** The options a logger needs to keep secrets out: serializers for `req`/`err`, a formatter for the rest. */
export const REDACTING_OPTIONS = {
  serializers: { req: serializeRequest, err: serializeError },
  formatters: { log: (obj: object) => redactValue(obj) as object },
} as const;

/**
 * `base` with secrets kept out of what it writes (a child: the caller's destination and level stay).
 * Fastify builds its request loggers as children of the logger it is given, and a child keeps these
 * serializers over fastify's own, so request URLs are redacted too.
 */
export function redactingLogger(base: pino.Logger): pino.Logger {
  return base.child({}, REDACTING_OPTIONS);
}

/**
 * Wraps a pino `logMethod` hook so that messages written as strings are redacted too (the serializers
 * and the formatter see only the object of a log call, not its message).
 */
export function redactMessages(this: pino.Logger, args: Parameters<pino.LogFn>, method: pino.LogFn): void {
  const redacted = args.map((a: unknown) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<pino.LogFn>;
  method.apply(this, redacted);
}
