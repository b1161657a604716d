/**
 * One WHIP publish: a libdatachannel PeerConnection (ICE, DTLS-SRTP) that receives H.264 and Opus, and the
 * path from its RTP packets to the hub: reorder buffer with NACKs, H.264 depacketizer, keyframe requests,
 * sender-report timing, Opus -> AAC through FFmpeg. Everything that can go wrong with one publisher
 * (malformed packets, loss, a dead FFmpeg) stays inside this session.
 */
import ndc from 'node-datachannel';
import {
  anchoredClock,
  AppError,
  TIMESCALE,
  type AudioTrackInfo,
  type Clock,
  type Logger,
  type TrackSet,
  type VideoTrackInfo,
} from '../../core/index.js';
import type { Publisher, SessionEnd } from '../../stream/index.js';
import { AacTranscoder } from './aac.js';
import { SessionTimeline, StreamClock } from './clock.js';
import { H264Assembler, H264Depacketizer, type AssembledFrame } from './h264.js';
import { DEFAULT_JITTER, JitterBuffer, type JitterEvent } from './jitter.js';
import { OPUS_RATE } from './opus.js';
import { buildFir, buildNack, buildPli, buildReceiverReport, buildRemb, isRtcp, parseRtcp, parseRtp, type ReportBlock } from './rtp.js';
import { answerH264Fmtp, announceAddress, type Negotiated } from './sdp.js';
import type { StreamStats, WebRtcCounters, WebRtcIngestOptions, WhipSessionStats } from './types.js';

/** Keyframe requests at most this often: a sender answers one within a frame or two; more only add load. */
const KEYFRAME_REQUEST_INTERVAL_MS = 500;
/** The reorder buffers are polled (NACKs, given-up gaps) this often. */
const POLL_MS = 20;
/** Receiver reports and REMB this often (RFC 3550 allows more often than 5 s for a single receiver). */
const REPORT_MS = 1000;
/** Longest the ICE gathering may take before the answer is sent with what was gathered. */
const GATHER_TIMEOUT_MS = 5000;
/** The AAC configuration FFmpeg is asked for: AAC-LC, 48 kHz, stereo. */
const AAC_ASC = Uint8Array.of(0x11, 0x90);

export interface WhipSessionOptions {
  readonly id: string;
  readonly streamId: string;
  readonly authorizedAt: number;
  readonly remoteAddress: string;
  readonly offer: string;
  readonly negotiated: Negotiated;
  readonly ingest: WebRtcIngestOptions;
  readonly counters: WebRtcCounters;
  readonly logger: Logger;
  /** Test only: drop every n-th RTP packet on arrival (0: none). */
  readonly dropEvery: () => number;
  readonly onClosed: (reason: string) => void;
}

type Kind = 'video' | 'audio';

/** One received RTP stream (one m-section). */
class Receiver {
  readonly jitter: JitterBuffer;
  readonly clock: StreamClock;
  ssrc: number | undefined;
  packets = 0;
  bytes = 0;
  nacks = 0;
  plis = 0;
  firs = 0;
  forLoss = 0;
  framesDropped = 0;
  #lastBytes = 0;
  #lastAt = Date.now();
  bitrateKbps = 0;

  constructor(
    readonly kind: Kind,
    readonly pt: number,
    readonly track: ndc.Track,
    rate: number,
    jitterMs: number,
  ) {
    this.clock = new StreamClock(rate);
    this.jitter = new JitterBuffer({ ...DEFAULT_JITTER, maxDelayMs: jitterMs, clockRate: rate });
  }

  measure(now: number): void {
    const dt = (now - this.#lastAt) / 1000;
    if (dt <= 0) return;
    this.bitrateKbps = Math.round(((this.bytes - this.#lastBytes) * 8) / 1000 / dt);
    this.#lastBytes = this.bytes;
    this.#lastAt = now;
  }

  stats(codec: string): StreamStats {
    const lost = this.jitter.cumulativeLost;
    const expected = this.jitter.received + lost;
    return {
      ssrc: this.ssrc,
      codec,
      packets: this.packets,
      bytes: this.bytes,
      packetsLost: lost,
      packetsGivenUp: this.jitter.lost,
      lossPercent: expected > 0 ? Math.round((lost / expected) * 10_000) / 100 : 0,
      jitterMs: Math.round(this.jitter.jitterMs * 10) / 10,
      nacks: this.nacks,
      plis: this.plis,
      firs: this.firs,
      keyframeRequestsForLoss: this.forLoss,
      framesDropped: this.framesDropped,
      bitrateKbps: this.bitrateKbps,
    };
  }
}

export class WhipSession {
  readonly id: string;
  readonly streamId: string;
  readonly startedAt = Date.now();
  readonly #o: WhipSessionOptions;
  /**
   * The hub's wall clock at the session's start, advanced by the monotonic clock: the idle timeout, keyframe
   * intervals, jitter buffer and RTCP never see a wall-clock jump, and the PDTs of the session stay continuous.
   */
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #pc: ndc.PeerConnection;
  readonly #video: Receiver;
  readonly #audio: Receiver | undefined;
  readonly #depacketizer = new H264Depacketizer();
  readonly #assembler: H264Assembler;
  readonly #timeline = new SessionTimeline();
  #aac: AacTranscoder | undefined;
  #publisher: Publisher | undefined;
  #state: 'connecting' | 'live' | 'closed' = 'connecting';
  #connectedAt: number | undefined;
  #lastPacketAt = 0;
  #lastKeyframeRequest = 0;
  /** When the last keyframe was published (the interval is kept from it). */
  #lastKeyframeAt = 0;
  #firSeq = 0;
  #tracks: TrackSet | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  #closeReason: string | undefined;

  constructor(opts: WhipSessionOptions) {
    this.#o = opts;
    this.#clock = anchoredClock(opts.ingest.hub.clock);
    this.id = opts.id;
    this.streamId = opts.streamId;
    this.#log = opts.logger;
    const net = opts.ingest.network;
    const neg = opts.negotiated;
    this.#assembler = new H264Assembler(neg.video.sprop);
    this.#pc = new ndc.PeerConnection(`whip-${opts.id}`, {
      iceServers: [...net.iceServers],
      ...(net.bindAddress ? { bindAddress: net.bindAddress } : {}),
      portRangeBegin: net.portMin,
      portRangeEnd: net.portMax,
      disableAutoNegotiation: true,
      // We answer; audio and video share one transport (max-bundle, as every WHIP client offers).
      forceMediaTransport: true,
    });
    // Our answer, m-section by m-section: what we receive and the feedback we send for it. No transport-cc
    // (we give the sender its budget with REMB), no RTX (a retransmission comes on the original SSRC).
    const v = new ndc.Video(neg.video.mid, 'RecvOnly');
    v.addH264Codec(neg.video.pt, answerH264Fmtp(neg.video.fmtp)); // rtcp-fb nack, nack pli, goog-remb
    if (neg.video.feedback.has('ccm fir')) v.parseSdpLine(`a=rtcp-fb:${neg.video.pt} ccm fir`);
    const vt = this.#pc.addTrack(v);
    this.#video = new Receiver('video', neg.video.pt, vt, TIMESCALE, opts.ingest.limits.jitterBufferMs);
    vt.onMessage((m) => this.#onMessage(this.#video, m));
    if (neg.audio) {
      const a = new ndc.Audio(neg.audio.mid, 'RecvOnly');
      a.addOpusCodec(neg.audio.pt, 'minptime=10;useinbandfec=1');
      const at = this.#pc.addTrack(a);
      this.#audio = new Receiver('audio', neg.audio.pt, at, OPUS_RATE, opts.ingest.limits.jitterBufferMs);
      at.onMessage((m) => this.#onMessage(this.#audio!, m));
    }
    this.#pc.onStateChange((s) => this.#onState(s));
  }

  get state(): 'connecting' | 'live' | 'closed' {
    return this.#state;
  }

  /** Applies the offer and returns the answer once ICE gathering is complete (bounded). */
  async answer(): Promise<string> {
    this.#pc.setRemoteDescription(this.#o.offer, 'offer');
    this.#pc.setLocalDescription('answer');
    await new Promise<void>((resolve) => {
      if (this.#pc.gatheringState() === 'complete') return resolve();
      const t = setTimeout(resolve, GATHER_TIMEOUT_MS);
      this.#pc.onGatheringStateChange((s) => {
        if (s === 'complete') {
          clearTimeout(t);
          resolve();
        }
      });
    });
    if (this.#state === 'closed') throw new AppError('E_CLOSED', 'session closed while answering');
    const local = this.#pc.localDescription();
    if (!local) throw new AppError('E_INTERNAL', 'no local description');
    const pub = this.#o.ingest.network.publicAddress;
    this.#timers.push(
      setTimeout(() => {
        if (this.#state !== 'connecting') return;
        this.#o.counters.connectTimeouts++;
        this.close('ICE/DTLS did not connect in time');
      }, this.#o.ingest.limits.connectTimeoutMs),
    );
    return pub ? announceAddress(local.sdp, pub) : local.sdp;
  }

  /** Trickled candidates (PATCH). Unknown mids go to the first m-section: everything is bundled. */
  addCandidates(candidates: ReadonlyArray<{ mid: string | undefined; candidate: string }>): number {
    let added = 0;
    for (const c of candidates) {
      try {
        this.#pc.addRemoteCandidate(c.candidate, c.mid ?? this.#o.negotiated.video.mid);
        added++;
      } catch (err) {
        this.#log.debug({ err, candidate: c.candidate.slice(0, 120) }, 'candidate refused');
      }
    }
    return added;
  }

  #onState(s: string): void {
    if (this.#state === 'closed') return;
    if (s === 'connected' && this.#state === 'connecting') this.#connected();
    else if (s === 'failed' || s === 'closed') this.close(`peer connection ${s}`);
    // 'disconnected' may recover (consent freshness); the idle timeout ends it if media stays away.
  }

  #connected(): void {
    const o = this.#o;
    this.#state = 'live';
    this.#connectedAt = this.#clock.now();
    this.#lastPacketAt = this.#clock.now();
    const pair = this.#pc.getSelectedCandidatePair();
    try {
      this.#publisher = o.ingest.hub.publish(
        o.streamId,
        { sessionId: o.id, protocol: 'whip', remoteAddress: pair?.remote.address ?? o.remoteAddress, authorizedAt: o.authorizedAt },
        (reason) => this.close(reason),
      );
    } catch (err) {
      this.#log.warn({ err }, 'whip publish refused by the hub');
      return this.close(err instanceof Error ? err.message : 'publish refused');
    }
    this.#log.info(
      { remote: pair?.remote.address, local: pair ? `${pair.local.address}:${pair.local.port}` : undefined, audio: Boolean(this.#audio) },
      'whip publish started',
    );
    if (this.#audio && o.ingest.ffmpegPath) {
      this.#aac = new AacTranscoder({
        ffmpegPath: o.ingest.ffmpegPath,
        logger: this.#log.child({ proc: 'aac' }),
        bitrateKbps: o.ingest.aacBitrateKbps ?? 128,
        onFrame: (f, rtp) => this.#onAac(f.data, rtp),
      });
      this.#aac.start();
    } else if (this.#audio) {
      this.#log.warn('no FFmpeg: the Opus audio of this WHIP session is not published (video only)');
    }
    this.#timers.push(
      setInterval(() => this.#poll(), POLL_MS),
      setInterval(() => this.#report(), REPORT_MS),
    );
    // A sender starts with a keyframe, but ask anyway: its first one may have been lost before ICE settled.
    this.#lastKeyframeAt = this.#clock.now();
    this.#requestKeyframe('start');
  }

  #onMessage(r: Receiver, m: Buffer): void {
    if (this.#state === 'closed') return;
    const now = this.#clock.now();
    if (isRtcp(m)) return this.#onRtcp(m, now);
    const p = parseRtp(m);
    if (!p || p.payloadType !== r.pt) {
      // RTX, FEC or padding-only probes on a type we did not accept, or garbage: not ours to use.
      if (!p) this.#o.counters.malformed++;
      return;
    }
    // Test only: deterministic loss by sequence number, so a NACKed retransmission is lost again and the
    // loss reaches the depacketizer (a picture is damaged and a keyframe asked for).
    const every = this.#o.dropEvery();
    if (every > 0 && p.sequence % every === 0) return;
    this.#lastPacketAt = now;
    r.ssrc ??= p.ssrc;
    if (p.ssrc !== r.ssrc) return; // one sender per m-section
    r.packets++;
    r.bytes += m.length;
    this.#o.counters.packets++;
    this.#o.counters.bytes += m.length;
    const ext = r.clock.unwrap.extend(p.timestamp);
    r.clock.onPacket(ext, now);
    this.#handle(r, r.jitter.push(p, now), now);
  }

  #onRtcp(m: Buffer, now: number): void {
    const info = parseRtcp(m);
    for (const sr of info.senderReports) {
      const r = sr.ssrc === this.#video.ssrc ? this.#video : sr.ssrc === this.#audio?.ssrc ? this.#audio : undefined;
      r?.clock.onSenderReport(sr.rtpTimestamp, sr.ntpMs, sr.ntpMiddle, now);
    }
  }

  #handle(r: Receiver, events: JitterEvent[], now: number): void {
    for (const ev of events) {
      if (ev.kind === 'lost') this.#o.counters.packetsLost += ev.count;
      if (r.kind === 'audio') {
        // Opus needs no repair: the AAC timeline fills a gap with silence.
        if (ev.kind === 'packet') this.#aac?.write(r.clock.unwrap.peek(ev.packet.timestamp), ev.packet.payload);
        continue;
      }
      for (const au of this.#depacketizer.push(ev)) this.#onVideo(this.#assembler.push(au), now);
    }
  }

  #onVideo(f: AssembledFrame, now: number): void {
    if (f.kind === 'dropped') {
      if (f.reason !== 'no-picture') {
        this.#video.framesDropped++;
        this.#o.counters.framesDropped++;
      }
      if (f.needKeyframe) this.#requestKeyframe('loss');
      return;
    }
    const pub = this.#publisher;
    if (!pub) return;
    const ext = this.#video.clock.unwrap.peek(f.rtpTimestamp);
    if (!this.#timeline.started)
      this.#timeline.start(this.#audio ? [this.#video.clock, this.#audio.clock] : [this.#video.clock], this.#video.clock, ext);
    if (f.configChanged || !this.#tracks) {
      const video: VideoTrackInfo = {
        kind: 'video',
        codec: 'h264',
        codecPrivate: f.config.avcC,
        width: f.config.width,
        height: f.config.height,
        frameRate: 0,
      };
      const audio: AudioTrackInfo | undefined = this.#aac
        ? { kind: 'audio', codec: 'aac', codecPrivate: AAC_ASC, sampleRate: 48_000, channels: 2 }
        : undefined;
      this.#tracks = audio ? { video, audio } : { video };
      pub.setTracks(this.#tracks);
      this.#log.info({ width: video.width, height: video.height, sync: this.#timeline.domain }, 'whip video configuration');
    }
    const ticks = this.#timeline.ticks(this.#video.clock, ext)!;
    if (f.keyframe) this.#lastKeyframeAt = now;
    pub.write({
      track: 'video',
      dts: ticks,
      pts: ticks,
      keyframe: f.keyframe,
      data: f.data,
      wallClock: this.#timeline.wallClock(ticks, now),
    });
  }

  #onAac(data: Uint8Array, rtp: number): void {
    const pub = this.#publisher;
    if (!pub || !this.#tracks?.audio || !this.#audio) return;
    const ticks = this.#timeline.ticks(this.#audio.clock, rtp);
    if (ticks === undefined) return;
    pub.write({
      track: 'audio',
      dts: ticks,
      pts: ticks,
      keyframe: true,
      data,
      wallClock: this.#timeline.wallClock(ticks, this.#clock.now()),
    });
  }

  /**
   * PLI (RFC 4585) if the sender accepts it, else FIR (RFC 5104); at most one per KEYFRAME_REQUEST_INTERVAL_MS.
   * 'loss': a picture was lost (frames are dropped until the keyframe). 'interval': keyframes for HLS segments.
   */
  #requestKeyframe(why: 'start' | 'loss' | 'interval'): void {
    const now = this.#clock.now();
    if (why !== 'start' && now - this.#lastKeyframeRequest < KEYFRAME_REQUEST_INTERVAL_MS) return;
    const ssrc = this.#video.ssrc;
    if (ssrc === undefined) return;
    this.#lastKeyframeRequest = now;
    if (why === 'loss') {
      this.#video.forLoss++;
      this.#o.counters.keyframeRequestsForLoss++;
    }
    const fb = this.#o.negotiated.video.feedback;
    if (fb.has('nack pli') || !fb.has('ccm fir')) {
      this.#send(this.#video, buildPli(ssrc));
      this.#video.plis++;
      this.#o.counters.plis++;
    } else {
      this.#send(this.#video, buildFir(ssrc, this.#firSeq++));
      this.#video.firs++;
      this.#o.counters.firs++;
    }
  }

  #send(r: Receiver, packet: Buffer): void {
    try {
      r.track.sendMessageBinary(packet);
    } catch (err) {
      this.#log.debug({ err }, 'rtcp send failed');
    }
  }

  #poll(): void {
    const now = this.#clock.now();
    if (now - this.#lastPacketAt > this.#o.ingest.limits.idleTimeoutMs) return this.close('no media received (idle timeout)');
    if (now - this.#lastKeyframeAt >= this.#o.ingest.limits.keyframeIntervalMs) this.#requestKeyframe('interval');
    for (const r of [this.#video, this.#audio]) {
      if (!r || r.ssrc === undefined) continue;
      const { events, nack } = r.jitter.poll(now);
      if (events.length) this.#handle(r, events, now);
      if (nack.length && this.#o.negotiated.video.feedback.has('nack') && r.kind === 'video') {
        const pkt = buildNack(r.ssrc, nack);
        if (pkt) {
          this.#send(r, pkt);
          r.nacks += nack.length;
          this.#o.counters.nacks += nack.length;
        }
      }
    }
  }

  #report(): void {
    const now = this.#clock.now();
    const blocks: ReportBlock[] = [];
    for (const r of [this.#video, this.#audio]) {
      if (!r || r.ssrc === undefined) continue;
      r.measure(now);
      const rep = r.jitter.report();
      const sr = r.clock.lastSr;
      blocks.push({ ssrc: r.ssrc, ...rep, lastSr: sr?.ntpMiddle ?? 0, delaySinceLastSr: sr ? ((now - sr.at) * 65536) / 1000 : 0 });
    }
    if (blocks.length > 0) this.#send(this.#video, buildReceiverReport(blocks));
    if (this.#video.ssrc !== undefined && this.#o.negotiated.video.feedback.has('goog-remb')) {
      const ssrcs = [this.#video.ssrc, ...(this.#audio?.ssrc !== undefined ? [this.#audio.ssrc] : [])];
      this.#send(this.#video, buildRemb(this.#o.ingest.limits.maxBitrateKbps * 1000, ssrcs));
    }
  }

  stats(): WhipSessionStats {
    const a = this.#audio;
    return {
      sessionId: this.id,
      streamId: this.streamId,
      state: this.#state,
      remoteAddress: this.#o.remoteAddress,
      startedAt: this.startedAt,
      connectedAt: this.#connectedAt,
      sync: this.#timeline.domain,
      video: this.#video.stats('h264'),
      audio: a ? { ...a.stats('opus'), aacFrames: this.#aac?.frames ?? 0, transcoder: this.#aac?.state ?? 'none' } : undefined,
    };
  }

  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** Ends the session: hub publisher, FFmpeg, PeerConnection. `how`: see SessionEnd. Idempotent. */
  close(reason: string, how: SessionEnd = 'dropped'): void {
    if (this.#state === 'closed') return;
    const wasLive = this.#state === 'live';
    this.#state = 'closed';
    this.#closeReason = reason;
    for (const t of this.#timers) clearTimeout(t);
    try {
      this.#publisher?.close(reason, how);
    } catch (err) {
      this.#log.error({ err }, 'whip publisher close failed');
    }
    void this.#aac?.close();
    try {
      this.#pc.close();
    } catch {
      // already closed by libdatachannel
    }
    this.#log.info(
      { reason, ...(wasLive ? { video: this.#video.stats('h264') } : {}) },
      wasLive ? 'whip publish ended' : 'whip session closed',
    );
    this.#o.onClosed(reason);
  }

  /** Waits for FFmpeg to be gone (on shutdown). */
  async drained(): Promise<void> {
    await this.#aac?.close();
  }
}
