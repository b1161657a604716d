import type { FailureLimiter, Logger } from '../../core/index.js';
import type { IngestProtocol, StreamHub } from '../../stream/index.js';

export interface RtmpLimits {
  /** Open connections at once; more are destroyed on accept. */
  maxConnections: number;
  /** Time for C0/C1/C2 to arrive after accept. */
  handshakeTimeoutMs: number;
  /** A connection that sends nothing for this long is closed. */
  idleTimeoutMs: number;
  /** Largest chunk size a peer may set with Set Chunk Size. */
  maxChunkSize: number;
  /** Largest RTMP message (a whole video frame) a peer may send. */
  maxMessageSize: number;
  /**
   * A publish must deliver its first frame within this long of `publish`, and then a frame at least this
   * often; otherwise it is closed as a dropped publisher. The idle timeout does not catch this: a peer that
   * sends only acknowledgements or pings is not idle, but its viewers see a frozen stream.
   */
  mediaTimeoutMs: number;
}

/**
 * Defaults:
 * - 500 connections: far above the publishers one node can package, low enough to bound memory
 *   (each connection may hold up to 2 x maxMessageSize of partial messages, usually far less).
 * - 10 s handshake: generous for RTMPS over a slow link, short enough to shed idle port scans.
 * - 30 s idle: encoders send media continuously; OBS's own send timeout is 30 s as well.
 * - 64 KiB chunks: OBS and FFmpeg use 4096, GStreamer 128; the RTMP maximum (2^31-1) is never needed.
 * - 8 MiB messages: a 4K intra frame at a high bitrate is 1-3 MiB; the 24-bit length field allows 16 MiB.
 * - 10 s media: OBS sends its first frame at once after publish (it encodes before it connects), FFmpeg and
 *   GStreamer after the encoder's lookahead (x264 slow presets, SVT-AV1: 2-4 s at 24-30 fps); 10 s leaves
 *   room for that and for a slow link, and bounds a frozen playlist to 10 s plus the reconnect grace.
 */
export const DEFAULT_RTMP_LIMITS: RtmpLimits = Object.freeze({
  maxConnections: 500,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxChunkSize: 65_536,
  maxMessageSize: 8 * 1024 * 1024,
  mediaTimeoutMs: 10_000,
});

export interface RtmpAuthResult {
  streamId: string;
}

export interface RtmpServerOptions {
  /** Bind address; port 0 picks a free port. */
  host: string;
  port: number;
  /** RTMPS on its own port when given. */
  tls?: { port: number; cert: string | Buffer; key: string | Buffer };
  limits: RtmpLimits;
  /** Resolves the stream for app + key, or throws AppError('E_STREAM_KEY_INVALID'). Only app "live" is accepted. */
  authorize: (app: string, streamKey: string, remoteAddress: string) => Promise<RtmpAuthResult>;
  /** Its wall clock (default the system's) dates the frames of a publish, from which PDT follows. */
  hub: Pick<StreamHub, 'publish'> & Partial<Pick<StreamHub, 'clock'>>;
  /**
   * Failed publishes (wrong app or stream key) per source address; a source over its limit is refused at
   * once, before any key lookup. Default: 10 failures in 60 s. Pass one to share it with other surfaces.
   */
  authLimiter?: FailureLimiter;
  logger: Logger;
}

export interface RtmpCounters {
  /** Connections accepted since start (including refused ones over the limit). */
  connections: number;
  activeConnections: number;
  /** Connections closed for malformed or over-limit input. */
  badInput: number;
  /** Publishes refused for a wrong app or stream key. */
  authFailures: number;
  /** Connections and publishes refused untried: their source had too many auth failures. */
  authRefused: number;
  /** Publishes refused for a codec we do not take. */
  unsupportedCodec: number;
  /** Connections closed by the handshake, idle or media timeout. */
  timeouts: number;
  bytesIn: number;
}

export function newCounters(): RtmpCounters {
  return {
    connections: 0,
    activeConnections: 0,
    badInput: 0,
    authFailures: 0,
    authRefused: 0,
    unsupportedCodec: 0,
    timeouts: 0,
    bytesIn: 0,
  };
}

/** The socket as a session sees it; the server adapts a net/tls socket, tests a fake. */
export interface SessionTransport {
  readonly remoteAddress: string;
  /** Bytes queued for the peer and not yet sent. */
  readonly writableLength: number;
  write(data: Buffer): void;
  pause(): void;
  resume(): void;
  /** Flush what was written, then close. */
  close(): void;
}

export interface SessionOptions extends Pick<RtmpServerOptions, 'authorize' | 'hub'> {
  /** The server's limiter; absent (tests of one session): no limit. */
  readonly authLimiter?: Pick<FailureLimiter, 'check' | 'fail'>;
  readonly transport: SessionTransport;
  readonly protocol: Extract<IngestProtocol, 'rtmp' | 'rtmps'>;
  readonly limits: RtmpLimits;
  readonly counters: RtmpCounters;
  readonly logger: Logger;
  readonly onHandshake?: () => void;
  readonly onClose?: (reason: string) => void;
}
