import net from 'node:net';

/**
 * A bare HTTP/1.1 keep-alive connection for load clients: one request at a time, GET only, bodies framed
 * by Content-Length. It does a fraction of the work of node:http's client (no header objects, no streams
 * per response), so that a one-core load generator can keep up with more simulated viewers: in the fan-out
 * bench the client, not the origin, was the limit. A response it cannot frame (chunked, no length) is an
 * error, never a guess.
 */

export interface RawAnswer {
  readonly status: number;
  readonly body: Buffer;
  /** Date.now() when the last byte of the body arrived. */
  readonly arrivedAt: number;
  /** performance.now() at the same instant, for sub-millisecond response times. */
  readonly arrivedPerf: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
/** Longest header block accepted (the origin's are a few hundred bytes). */
const MAX_HEADER = 16 * 1024;

interface Pending {
  resolve(a: RawAnswer): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class RawHttpConnection {
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  #pending: Pending | undefined;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Once the header block is parsed: status and the whole response's length (header + body). */
  #framing: { status: number; headerLen: number; total: number } | undefined;

  constructor(origin: URL) {
    this.#host = origin.hostname;
    this.#port = Number(origin.port || 80);
  }

  /** GET `path` (with its query); rejects on a network error, a timeout or an unframeable answer. */
  get(path: string, timeoutMs: number): Promise<RawAnswer> {
    if (this.#pending) return Promise.reject(new Error('a request is already in flight on this connection'));
    const socket = this.#socket ?? this.#connect();
    return new Promise<RawAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new Error('timed out')), timeoutMs);
      this.#pending = { resolve, reject, timer };
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}:${this.#port}\r\n\r\n`);
    });
  }

  close(): void {
    this.#fail(new Error('connection closed'));
  }

  #connect(): net.Socket {
    const socket = net.connect({ host: this.#host, port: this.#port, noDelay: true });
    // Events of a socket already dropped (a close after a timeout) must not touch its successor.
    socket.on('data', (d: Buffer) => this.#socket === socket && this.#onData(d));
    socket.on('error', (err) => this.#socket === socket && this.#fail(err));
    socket.on('close', () => this.#socket === socket && this.#fail(new Error('connection closed by the server')));
    this.#socket = socket;
    return socket;
  }

  #onData(d: Buffer): void {
    this.#chunks.push(d);
    this.#buffered += d.length;
    if (!this.#pending) return this.#fail(new Error('bytes arrived with no request in flight'));
    if (!this.#framing) {
      const head = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
      this.#chunks = [head];
      const end = head.indexOf(HEADER_END);
      if (end < 0) {
        if (head.length > MAX_HEADER) this.#fail(new Error('response header too long'));
        return;
      }
      const text = head.toString('latin1', 0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1];
      if (!status || length === undefined)
        return this.#fail(new Error(`cannot frame the response (${text.split('\r\n')[0]}; no Content-Length)`));
      this.#framing = { status, headerLen: end + 4, total: end + 4 + Number(length) };
    }
    const f = this.#framing;
    if (this.#buffered < f.total) return;
    if (this.#buffered > f.total) return this.#fail(new Error('more bytes than the response framed'));
    const all = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    const p = this.#pending;
    this.#reset();
    clearTimeout(p.timer);
    p.resolve({ status: f.status, body: all.subarray(f.headerLen), arrivedAt: Date.now(), arrivedPerf: performance.now() });
  }

  #reset(): void {
    this.#pending = undefined;
    this.#chunks = [];
    this.#buffered = 0;
    this.#framing = undefined;
  }

  /** Drop the connection (the next request opens a new one) and reject what was in flight. */
  #fail(err: Error): void {
    const p = this.#pending;
    this.#reset();
    this.#socket?.destroy();
    this.#socket = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
