import net from 'node:net';
import tls from 'node:tls';
import { AppError, FailureLimiter, monotonicNow, type Logger } from '../../core/index.js';
import { RtmpSession, type SessionTransport } from './session.js';
import { newCounters, type RtmpCounters, type RtmpServerOptions } from './types.js';

/** How long a closed connection may take to flush its last replies before it is destroyed. */
const LINGER_MS = 2000;
/** Refusals over maxConnections are counted each, logged at most this often. */
const REFUSED_LOG_INTERVAL_MS = 10_000;
/** Failed publishes a source address may make per window when no limiter is given (AUTH_FAILURE_LIMIT's defaults). */
const DEFAULT_AUTH_LIMIT = { max: 10, windowMs: 60_000 } as const;

interface Connection {
  readonly socket: net.Socket;
  readonly session: RtmpSession;
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new AppError('E_CONFIG_INVALID', `RTMP cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

function closeServer(server: net.Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * RTMP (and RTMPS on its own port) listener. Owns its connections: `close()` stops listening and
 * closes every session, which closes its publisher.
 */
export class RtmpServer {
  readonly counters: RtmpCounters = newCounters();
  readonly #opts: RtmpServerOptions;
  readonly #log: Logger;
  readonly #authLimiter: FailureLimiter;
  readonly #connections = new Set<Connection>();
  #plain: net.Server | undefined;
  #secure: tls.Server | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #refusedLogAt = -Infinity;
  /** TCP sockets under the TLS server, so close() can end handshakes still in progress. */
  readonly #tlsRaw = new Set<net.Socket>();

  constructor(opts: RtmpServerOptions) {
    const l = opts.limits;
    for (const [k, v] of Object.entries(l)) {
      if (!Number.isInteger(v) || v <= 0) throw new AppError('E_CONFIG_INVALID', `RTMP limit ${k} must be a positive integer, got ${v}`);
    }
    if (l.maxChunkSize > 0x7fffffff) throw new AppError('E_CONFIG_INVALID', 'RTMP limit maxChunkSize must be below 2^31');
    this.#opts = opts;
    this.#log = opts.logger;
    this.#authLimiter = opts.authLimiter ?? new FailureLimiter(DEFAULT_AUTH_LIMIT);
  }

  /** Failures recorded and attempts refused by the auth limiter (shared with other surfaces when given). */
  get authLimiterCounters(): Readonly<{ failures: number; refused: number }> {
    return this.#authLimiter.counters;
  }

  async start(): Promise<{ port: number; tlsPort?: number }> {
    if (this.#started || this.#closed) throw new AppError('E_CONFIG_INVALID', 'RTMP server already started or closed');
    this.#started = true;
    const o = this.#opts;
    this.#plain = net.createServer((s) => this.#accept(s, 'rtmp'));
    const port = await listen(this.#plain, o.host, o.port);
    let tlsPort: number | undefined;
    if (o.tls) {
      this.#secure = tls.createServer({ cert: o.tls.cert, key: o.tls.key, handshakeTimeout: o.limits.handshakeTimeoutMs });
      // Bounds TLS handshakes in progress too, which #accept does not see yet.
      this.#secure.maxConnections = o.limits.maxConnections;
      this.#secure.on('connection', (raw: net.Socket) => {
        this.#tlsRaw.add(raw);
        raw.once('close', () => this.#tlsRaw.delete(raw));
      });
      this.#secure.on('secureConnection', (s) => this.#accept(s, 'rtmps'));
      this.#secure.on('tlsClientError', (err, socket) => {
        this.counters.badInput++;
        this.#log.warn({ remote: socket.remoteAddress, reason: err.message }, 'rtmps connection closed: bad input');
      });
      tlsPort = await listen(this.#secure, o.host, o.tls.port);
    }
    this.#log.info({ host: o.host, port, tlsPort }, 'rtmp listening');
    return tlsPort === undefined ? { port } : { port, tlsPort };
  }

  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const done = Promise.all([closeServer(this.#plain), closeServer(this.#secure)]);
    for (const c of [...this.#connections]) {
      c.session.close('server shutting down');
      c.socket.destroy();
    }
    for (const raw of this.#tlsRaw) raw.destroy();
    await done;
  }

  #accept(socket: net.Socket, protocol: 'rtmp' | 'rtmps'): void {
    const o = this.#opts;
    this.counters.connections++;
    let socketError: string | undefined;
    // Errors (ECONNRESET...) end in 'close', which closes the session with this as the reason.
    socket.on('error', (err) => (socketError ??= `socket error: ${err.message}`));
    if (this.#closed || this.#connections.size >= o.limits.maxConnections) {
      socket.destroy();
      const now = monotonicNow();
      if (!this.#closed && now - this.#refusedLogAt > REFUSED_LOG_INTERVAL_MS) {
        this.#refusedLogAt = now;
        this.#log.warn({ maxConnections: o.limits.maxConnections }, 'rtmp connection refused: too many connections');
      }
      return;
    }
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    if (this.#authLimiter.check(remoteAddress).refused) {
      // A source guessing keys is cut off before the handshake; logged once, when it reached the limit.
      this.counters.authRefused++;
      socket.destroy();
      return;
    }
    this.counters.activeConnections++;
    socket.setNoDelay(true);
    let linger: NodeJS.Timeout | undefined;
    const transport: SessionTransport = {
      remoteAddress,
      get writableLength() {
        return socket.writableLength;
      },
      write: (data) => {
        if (!socket.destroyed) socket.write(data);
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      close: () => {
        if (socket.destroyed) return;
        socket.end();
        linger = setTimeout(() => socket.destroy(), LINGER_MS);
        linger.unref();
      },
    };
    const timedOut = (what: string) => {
      if (session.closed) return void socket.destroy(); // already on its way out
      this.counters.timeouts++;
      this.#log.info({ session: session.id, remote: remoteAddress }, `rtmp connection closed: ${what} timeout`);
      session.close(`${what} timeout`);
      socket.destroy();
    };
    const handshakeTimer = setTimeout(() => timedOut('handshake'), o.limits.handshakeTimeoutMs);
    handshakeTimer.unref();
    const session = new RtmpSession({
      transport,
      protocol,
      limits: o.limits,
      counters: this.counters,
      authorize: o.authorize,
      authLimiter: this.#authLimiter,
      hub: o.hub,
      logger: this.#log,
      onHandshake: () => clearTimeout(handshakeTimer),
      onClose: () => clearTimeout(handshakeTimer),
    });
    const conn: Connection = { socket, session };
    this.#connections.add(conn);
    socket.setTimeout(o.limits.idleTimeoutMs, () => timedOut('idle'));
    socket.on('data', (data: Buffer) => session.feed(data));
    socket.once('close', () => {
      clearTimeout(handshakeTimer);
      if (linger) clearTimeout(linger);
      session.close(socketError ?? 'connection closed');
      this.#connections.delete(conn);
      this.counters.activeConnections--;
    });
  }
}
