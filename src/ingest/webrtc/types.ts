import type { FailureLimiter, Logger } from '../../core/index.js';
import type { StreamHub } from '../../stream/index.js';

/** Network settings for real deployments (documented in README "WebRTC network"). */
export interface WebRtcNetwork {
  /** Address ICE binds to (and gathers host candidates on); undefined: every interface. */
  readonly bindAddress: string | undefined;
  /** UDP ports for ICE, inclusive. Each session takes one port (audio and video are bundled). */
  readonly portMin: number;
  readonly portMax: number;
  /** Announced instead of the host address in answers: the public address of a 1:1 NAT. */
  readonly publicAddress: string | undefined;
  /** STUN/TURN servers: `stun:host:port`, `turn:user:pass@host:port`. Also sent to clients in Link headers. */
  readonly iceServers: readonly string[];
}

export interface WebRtcLimits {
  /** WHIP sessions at once (each holds a UDP port, a PeerConnection and possibly an FFmpeg). */
  readonly maxSessions: number;
  /** Time from the answer to a connected PeerConnection. */
  readonly connectTimeoutMs: number;
  /** A connected session that receives no RTP this long is closed. */
  readonly idleTimeoutMs: number;
  /** Longest a gap in the RTP sequence holds back the packets after it while NACKs ask for it. */
  readonly jitterBufferMs: number;
  /** Bitrate the sender may use (announced with REMB). */
  readonly maxBitrateKbps: number;
  /**
   * Longest time between keyframes: WebRTC senders make one only when asked (Chrome's interval is minutes),
   * but HLS cuts segments on keyframes, so one is asked for (PLI) this long after the last. The segment
   * target: the keyframe then comes just after it, where the segmenter cuts.
   */
  readonly keyframeIntervalMs: number;
  /**
   * Offers one stream may make per minute (WEBRTC_OFFERS_PER_KEY_PER_MINUTE). A publisher that reconnects
   * makes one every few seconds at most; more is a loop or someone holding the key.
   */
  readonly offersPerStreamPerMinute: number;
}

export const DEFAULT_WEBRTC_LIMITS: WebRtcLimits = Object.freeze({
  maxSessions: 100,
  connectTimeoutMs: 15_000,
  idleTimeoutMs: 10_000,
  jitterBufferMs: 150,
  maxBitrateKbps: 8000,
  keyframeIntervalMs: 2000,
  offersPerStreamPerMinute: 30,
});

export interface WebRtcAuthResult {
  readonly streamId: string;
}

export interface WebRtcIngestOptions {
  readonly network: WebRtcNetwork;
  readonly limits: WebRtcLimits;
  /** Resolves the stream of a key, or throws AppError('E_STREAM_KEY_INVALID'). Same lookup as RTMP. */
  authorize(streamKey: string, remoteAddress: string): Promise<WebRtcAuthResult>;
  /** Its wall clock (default the system's) dates the frames of a publish, from which PDT follows. */
  readonly hub: Pick<StreamHub, 'publish'> & Partial<Pick<StreamHub, 'clock'>>;
  /** FFmpeg for Opus -> AAC; without it sessions publish video only. */
  readonly ffmpegPath: string | undefined;
  /** AAC bitrate of the transcoded audio. */
  readonly aacBitrateKbps?: number;
  /**
   * Wrong stream keys per source address (AUTH_FAILURE_LIMIT in AUTH_FAILURE_WINDOW_SECONDS); may be the
   * limiter the other surfaces share. Default: 10 a minute, WHIP's own.
   */
  readonly authFailures?: FailureLimiter;
  readonly logger: Logger;
}

/** Totals since start, for /metrics. */
export interface WebRtcCounters {
  sessions: number;
  activeSessions: number;
  authFailures: number;
  /** Offers refused without a key lookup: their address made too many wrong ones (429). */
  authRefused: number;
  /** Offers refused because their stream made too many this minute (429). */
  offersRateLimited: number;
  /** Sessions still connecting that a newer offer for their stream replaced. */
  pendingReplaced: number;
  /** Offers refused: malformed, too large, or without a codec we take. */
  badOffers: number;
  unsupportedCodec: number;
  /** Sessions refused over maxSessions. */
  overLimit: number;
  connectTimeouts: number;
  packets: number;
  bytes: number;
  /** RTP packets declared lost after the jitter buffer waited for them. */
  packetsLost: number;
  /** Malformed RTP/RTCP packets and H.264 payloads. */
  malformed: number;
  nacks: number;
  /** Keyframe requests sent (PLI or FIR), for loss and for the keyframe interval together. */
  plis: number;
  firs: number;
  /** Of those, the ones sent because a picture was lost (the rest keep the keyframe interval). */
  keyframeRequestsForLoss: number;
  /** Video frames dropped: damaged by loss, or waiting for a keyframe. */
  framesDropped: number;
}

export function newWebRtcCounters(): WebRtcCounters {
  return {
    sessions: 0,
    activeSessions: 0,
    authFailures: 0,
    authRefused: 0,
    offersRateLimited: 0,
    pendingReplaced: 0,
    badOffers: 0,
    unsupportedCodec: 0,
    overLimit: 0,
    connectTimeouts: 0,
    packets: 0,
    bytes: 0,
    packetsLost: 0,
    malformed: 0,
    nacks: 0,
    plis: 0,
    firs: 0,
    keyframeRequestsForLoss: 0,
    framesDropped: 0,
  };
}

/** What the API shows about one WHIP session. */
export interface WhipSessionStats {
  readonly sessionId: string;
  readonly streamId: string;
  readonly state: 'connecting' | 'live' | 'closed';
  readonly remoteAddress: string;
  readonly startedAt: number;
  readonly connectedAt: number | undefined;
  /** Timeline domain: 'sr' (lined up by RTCP sender reports) or 'arrival'. */
  readonly sync: 'sr' | 'arrival' | undefined;
  readonly video: StreamStats | undefined;
  readonly audio: (StreamStats & { readonly aacFrames: number; readonly transcoder: string }) | undefined;
}

export interface StreamStats {
  readonly ssrc: number | undefined;
  readonly codec: string;
  readonly packets: number;
  readonly bytes: number;
  /** Packets never received (sequence numbers skipped), whether recovered by NACK or not... */
  readonly packetsLost: number;
  /** ...and of those, the ones the jitter buffer gave up waiting for. */
  readonly packetsGivenUp: number;
  readonly lossPercent: number;
  readonly jitterMs: number;
  readonly nacks: number;
  readonly plis: number;
  readonly firs: number;
  /** Keyframe requests (PLI/FIR) sent because of loss; the others keep the keyframe interval. */
  readonly keyframeRequestsForLoss: number;
  readonly framesDropped: number;
  readonly bitrateKbps: number;
}
