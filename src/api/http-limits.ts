import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/*
 * Limits of the HTTP server against clients that hold connections without using them.
 *
 * - Headers: a client has `headersTimeoutMs` (HTTP_HEADERS_TIMEOUT_MS, default 10 s) from its connection
 *   (or the end of its previous request) to finish a request's headers; then Node answers 408 and closes.
 *   Real clients send their headers in one packet; 10 s leaves room for a slow mobile link.
 * - Bodies: Node's requestTimeout (the whole request) must stay long, 15 minutes, because a tus PATCH
 *   carries a chunk of an upload (clients send large files in chunks that each fit, and resume). So a body
 *   must also keep arriving: at least `minBodyBytes` (16 KiB) in each `bodyPeriodMs` (10 s) while it is
 *   being read, or the connection is closed. A body trickled at 1 byte/s is cut after 10 s; an upload on
 *   a 2 KiB/s link still passes. A period in which the server itself holds the body back (backpressure: the
 *   request stream is paused while storage catches up) does not count.
 * - Connections: at most `maxConnections` (HTTP_MAX_CONNECTIONS) open at once, idle keep-alive ones
 *   included. Further connections are closed at once by Node, before any byte is read or written (its
 *   `maxConnections`): a refusal costs nothing, so a flood cannot spend the server's time or memory on its
 *   refusals, and the client (a load balancer, a CDN, hls.js) sees a failed connection and retries
 *   elsewhere or later. Connections already open keep working.
 */

export interface HttpLimits {
  readonly maxConnections: number;
  readonly headersTimeoutMs: number;
  /** A body must bring at least this many bytes in each period while it is read. */
  readonly minBodyBytes?: number;
  readonly bodyPeriodMs?: number;
  /** TRUST_PROXY: whose X-Forwarded-For gives req.ip (the address every per-address limit counts); absent: nobody's. */
  readonly trustProxy?: true | readonly string[] | undefined;
}

export const DEFAULT_HTTP_LIMITS = {
  maxConnections: 10_000,
  headersTimeoutMs: 10_000,
  minBodyBytes: 16 * 1024,
  bodyPeriodMs: 10_000,
} as const satisfies Required<Omit<HttpLimits, 'trustProxy'>>;

/** Longest time to receive one request (a tus PATCH of a chunk of an upload): 15 minutes. */
export const UPLOAD_REQUEST_TIMEOUT_MS = 15 * 60_000;

/** Options for Node's http.createServer (through Fastify's `http`): the headers timeout, checked every second. */
export function serverOptions(limits: HttpLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: UPLOAD_REQUEST_TIMEOUT_MS,
    // Node checks the timeouts on this interval (default 30 s, which would triple a 10 s headers timeout).
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
}

/** Counters for /metrics. */
export interface HttpLimitCounters {
  openConnections: number;
  refusedConnections: number;
  slowBodies: number;
}

/** Applies the connection cap and the body rate rule to `server`; returns the counters. */
export function applyHttpLimits(server: Server, limits: HttpLimits): HttpLimitCounters {
  const counters: HttpLimitCounters = { openConnections: 0, refusedConnections: 0, slowBodies: 0 };
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => counters.refusedConnections++);
  server.on('connection', (socket) => {
    counters.openConnections++;
    socket.once('close', () => counters.openConnections--);
  });
  const minBytes = limits.minBodyBytes ?? DEFAULT_HTTP_LIMITS.minBodyBytes;
  const periodMs = limits.bodyPeriodMs ?? DEFAULT_HTTP_LIMITS.bodyPeriodMs;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => watchBody(req, res, minBytes, periodMs, counters));
  return counters;
}

/** Whether the request announces a body (Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Closes the connection when the request's body arrives slower than `minBytes` per `periodMs`. */
function watchBody(req: IncomingMessage, res: ServerResponse, minBytes: number, periodMs: number, counters: HttpLimitCounters): void {
  if (!hasBody(req) || req.complete) return;
  const socket = req.socket;
  let last = socket.bytesRead;
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) return stop();
    const now = socket.bytesRead;
    // Paused: the server holds the body back itself (a pipe waiting for storage); not the client's fault.
    const heldBack = req.readableFlowing === false && !res.writableEnded;
    if (!heldBack && now - last < minBytes) {
      counters.slowBodies++;
      stop();
      socket.destroy();
      return;
    }
    last = now;
  }, periodMs);
  timer.unref();
  const stop = () => clearInterval(timer);
  req.once('end', stop);
  req.once('close', stop);
}
