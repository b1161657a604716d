import { EventEmitter } from 'node:events';
import { AppError, monotonicNow, systemClock, type Clock, type Logger, type MediaFrame, type TrackSet } from '../core/index.js';
import { Reader, type StreamEvent } from './reader.js';
import { TimestampRepair } from './timestamps.js';

/** How frames reach the hub: a publisher's protocol, or 'transcode' for a rung made from another stream. */
export type IngestProtocol = 'rtmp' | 'rtmps' | 'whip' | 'transcode';

export interface PublishInfo {
  readonly sessionId: string;
  readonly protocol: IngestProtocol;
  readonly remoteAddress: string;
  /** When the stream key check for this publish began (the hub's monotonic clock, as its revocations). */
  readonly authorizedAt?: number;
  /** A transcoded rung: the source publish session its frames (and timestamps) come from. */
  readonly sourceSessionId?: string;
}

/** Revocations are remembered this long: far longer than any key check takes. */
const REVOCATION_MEMORY_MS = 5 * 60_000;

export type StreamState = 'live' | 'reconnecting';

/** What the control API shows about a stream that is live (or waiting for its publisher to return). */
export interface LiveStatus {
  readonly streamId: string;
  readonly state: StreamState;
  readonly sessionId: string;
  readonly protocol: IngestProtocol;
  readonly remoteAddress: string;
  readonly tracks: TrackSet | undefined;
  /** When the stream went live (first session), ms since epoch. */
  readonly liveSince: number;
  /** When the current (or last) publish session started. */
  readonly sessionSince: number;
  readonly fps: number;
  readonly bitrateKbps: number;
  readonly frames: number;
  readonly bytes: number;
  readonly repairedTimestamps: number;
  readonly sessions: number;
}

export interface HubOptions {
  /** How long a stream whose publisher dropped waits for it to come back before it ends. */
  readonly graceMs: number;
  /** How long a stream waits after its publisher stopped cleanly (unpublished); 0 (the default): it ends at once. */
  readonly unpublishGraceMs?: number;
  /** Frames a reader may have queued before it starts dropping. */
  readonly readerQueueFrames: number;
  readonly logger: Logger;
  /** Wall clock: session-start stamps (the PDT anchor of a transcoded rung), liveSince. */
  readonly clock?: Clock;
  /** Elapsed time (grace deadlines, revocations, rates); default monotonicNow. Tests may drive it. */
  readonly monotonic?: () => number;
}

/** What one publish session delivered. */
export interface SessionStats {
  readonly frames: number;
  readonly bytes: number;
}

export interface HubEvents {
  'stream-start': [streamId: string];
  'session-start': [streamId: string, info: PublishInfo];
  'session-end': [streamId: string, info: PublishInfo, reason: string, stats: SessionStats];
  'stream-end': [streamId: string, reason: string];
}

/**
 * How a publish session ended: the publisher said it stopped (RTMP FCUnpublish/deleteStream, WHIP
 * DELETE), or it went away without a word (connection lost, killed, timed out, kicked), and may be back.
 */
export type SessionEnd = 'unpublished' | 'dropped';

/** A publisher's handle on its stream. Every call after close() is ignored. */
export interface Publisher {
  readonly streamId: string;
  readonly sessionId: string;
  /** Announce the session's tracks; readers get a session-start. Call again if the codec config changes. */
  setTracks(tracks: TrackSet): void;
  /** Hand one frame to every reader. Never blocks. */
  write(frame: MediaFrame): void;
  /**
   * End this publish session. A dropped one (the default) leaves the stream waiting graceMs for a new
   * session; an unpublished one waits unpublishGraceMs, by default not at all. Idempotent.
   */
  close(reason: string, how?: SessionEnd): void;
  readonly closed: boolean;
}

class LiveStream {
  publisher: PublisherImpl | undefined;
  state: StreamState = 'live';
  readers = new Set<Reader>();
  graceTimer: NodeJS.Timeout | undefined;
  /**
   * When the wait that began as the last publisher that delivered frames left (dropped, stopped or taken
   * over) runs out, and what the stream ends with then. A publisher that leaves without a frame returns the
   * stream to this wait instead of starting a new one, so silent publishers cannot keep a stream alive.
   * The hub's monotonic clock.
   */
  graceDeadline: number | undefined;
  graceWhy = 'publisher did not return';
  liveSince: number;
  sessions = 0;
  info!: PublishInfo;
  sessionSince = 0;
  tracks: TrackSet | undefined;
  frames = 0;
  bytes = 0;
  videoFrames = 0;
  repaired = 0;
  // Rates measured over the last tick of the hub's 1 s timer.
  fps = 0;
  bitrateKbps = 0;
  #lastFrames = 0;
  #lastBytes = 0;
  #lastTick: number;

  constructor(
    readonly id: string,
    now: number,
    tick: number,
  ) {
    this.liveSince = now;
    this.#lastTick = tick;
  }

  broadcast(ev: StreamEvent): void {
    for (const r of this.readers) r.push(ev);
  }

  measure(now: number): void {
    const dt = (now - this.#lastTick) / 1000;
    if (dt <= 0) return;
    this.fps = Math.round(((this.videoFrames - this.#lastFrames) / dt) * 100) / 100;
    this.bitrateKbps = Math.round(((this.bytes - this.#lastBytes) * 8) / 1000 / dt);
    this.#lastFrames = this.videoFrames;
    this.#lastBytes = this.bytes;
    this.#lastTick = now;
  }
}

class PublisherImpl implements Publisher {
  closed = false;
  #frames = 0;
  #bytes = 0;
  readonly #repair: TimestampRepair;

  constructor(
    readonly streamId: string,
    readonly sessionId: string,
    readonly info: PublishInfo,
    readonly kick: (reason: string) => void,
    readonly hub: StreamHub,
    readonly stream: LiveStream,
    logger: Logger,
  ) {
    this.#repair = new TimestampRepair((kind, track, from, to) => {
      stream.repaired++;
      hub.counters.timestampRepairs++;
      // One line per repair would flood the log on a bad source; log the first few per session.
      if (stream.repaired <= 5) logger.warn({ stream: streamId, session: sessionId, kind, track, from, to }, 'timestamp repaired');
    });
  }

  stats(): SessionStats {
    return { frames: this.#frames, bytes: this.#bytes };
  }

  setTracks(tracks: TrackSet): void {
    if (this.closed) return;
    this.stream.tracks = tracks;
    this.stream.broadcast({
      type: 'session-start',
      sessionId: this.sessionId,
      sourceSessionId: this.info.sourceSessionId,
      tracks,
      wallClock: this.hub.clock.now(),
    });
  }

  write(frame: MediaFrame): void {
    if (this.closed) return;
    const fixed = this.#repair.repair(frame);
    this.#frames++;
    this.#bytes += fixed.data.byteLength;
    const s = this.stream;
    s.frames++;
    s.bytes += fixed.data.byteLength;
    if (fixed.track === 'video') s.videoFrames++;
    this.hub.counters.frames++;
    this.hub.counters.bytes += fixed.data.byteLength;
    s.broadcast({ type: 'frame', frame: fixed });
  }

  close(reason: string, how: SessionEnd = 'dropped'): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.onPublisherClosed(this, reason, how);
  }
}

/**
 * Registry of live streams: one publisher each, many readers. A second publisher on the same stream
 * takes over at once (OBS reconnects before the server notices the old socket died); a stream whose
 * publisher leaves waits `graceMs` for one to come back before it ends, so players see one continuous
 * stream across reconnects. A publisher that leaves without having sent a frame does not restart that
 * wait: the stream ends `graceMs` after its last media publisher left, however many silent ones came.
 */
export class StreamHub extends EventEmitter<HubEvents> {
  readonly clock: Clock;
  readonly monotonic: () => number;
  readonly counters = { frames: 0, bytes: 0, timestampRepairs: 0, takeovers: 0, sessions: 0, readerDrops: 0 };
  /** Drops of each reader already counted and logged. */
  readonly #reportedDrops = new WeakMap<Reader, number>();
  readonly #opts: HubOptions;
  readonly #log: Logger;
  readonly #streams = new Map<string, LiveStream>();
  /** Stream id -> when its key was last revoked (rotated, or the stream deleted), the hub's monotonic clock. */
  readonly #revoked = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor(opts: HubOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.monotonic = opts.monotonic ?? monotonicNow;
    this.#timer = setInterval(() => {
      const now = this.monotonic();
      for (const s of this.#streams.values()) {
        s.measure(now);
        for (const r of s.readers) this.#reportDrops(s.id, r);
      }
    }, 1000);
    this.#timer.unref();
  }

  /**
   * Start a publish session. `kick` is called (once) if the session is taken over or disconnected by
   * an operator; the ingest session must then close its connection.
   */
  publish(streamId: string, info: PublishInfo, kick: (reason: string) => void): Publisher {
    if (this.#closed) throw new AppError('E_CLOSED', 'stream hub closed');
    const revokedAt = this.#revoked.get(streamId);
    if (info.authorizedAt !== undefined && revokedAt !== undefined && info.authorizedAt <= revokedAt) {
      // The key was rotated (or the stream deleted) while this publisher's key was being checked.
      throw new AppError('E_STREAM_KEY_INVALID', 'the stream key was revoked while the publish was being authorized');
    }
    const now = this.clock.now();
    // Deadlines are monotonic: a jump of the wall clock neither ends a waiting stream nor keeps it waiting.
    const at = this.monotonic();
    let stream = this.#streams.get(streamId);
    let fresh = false;
    if (!stream) {
      stream = new LiveStream(streamId, now, at);
      this.#streams.set(streamId, stream);
      fresh = true;
    }
    const old = stream.publisher;
    if (old && !old.closed) {
      this.counters.takeovers++;
      this.#log.info({ stream: streamId, session: old.sessionId, by: info.sessionId }, 'publisher taken over');
      old.closed = true;
      // From here the stream waits on the newcomer as it would on a dropped publisher (see onPublisherClosed).
      if (old.stats().frames > 0) this.#remember(stream, at + this.#opts.graceMs, 'publisher did not return');
      stream.broadcast({ type: 'session-end', sessionId: old.sessionId, reason: 'takeover' });
      this.emit('session-end', streamId, old.info, 'takeover', old.stats());
      old.kick('taken over by a new publisher');
    }
    if (stream.graceTimer) clearTimeout(stream.graceTimer);
    stream.graceTimer = undefined;
    const pub = new PublisherImpl(streamId, info.sessionId, info, kick, this, stream, this.#log);
    stream.publisher = pub;
    stream.state = 'live';
    stream.info = info;
    stream.sessionSince = now;
    stream.sessions++;
    stream.tracks = undefined;
    this.counters.sessions++;
    if (fresh) this.emit('stream-start', streamId);
    this.emit('session-start', streamId, info);
    return pub;
  }

  /** @internal called by a publisher's close(). */
  onPublisherClosed(pub: PublisherImpl, reason: string, how: SessionEnd): void {
    const stream = pub.stream;
    if (stream.publisher !== pub) return; // already replaced (takeover)
    stream.broadcast({ type: 'session-end', sessionId: pub.sessionId, reason });
    this.emit('session-end', stream.id, pub.info, reason, pub.stats());
    const now = this.monotonic();
    if (pub.stats().frames === 0 && stream.graceDeadline !== undefined) {
      // It never sent a frame (a takeover that stalled, a reconnect that failed): the stream goes back to
      // the wait it was in, counted from when its media stopped, not from now.
      this.#log.info(
        { stream: stream.id, session: pub.sessionId, remainingMs: stream.graceDeadline - now },
        'publisher left without media',
      );
      return this.#wait(stream, stream.graceDeadline - now, stream.graceWhy);
    }
    // A broadcaster who pressed Stop has ended the show: only a lost connection is waited for.
    const grace = how === 'unpublished' ? (this.#opts.unpublishGraceMs ?? 0) : this.#opts.graceMs;
    if (how === 'unpublished' && grace === 0) return this.end(stream.id, 'publisher stopped');
    const why = how === 'unpublished' ? 'publisher stopped' : 'publisher did not return';
    if (pub.stats().frames > 0) this.#remember(stream, now + grace, why);
    this.#wait(stream, grace, why);
  }

  #remember(stream: LiveStream, deadline: number, why: string): void {
    stream.graceDeadline = deadline;
    stream.graceWhy = why;
  }

  /** The stream waits `ms` for a publisher, then ends with `why`; at once when no time is left. */
  #wait(stream: LiveStream, ms: number, why: string): void {
    if (ms <= 0) return this.end(stream.id, why);
    stream.state = 'reconnecting';
    stream.fps = 0;
    stream.bitrateKbps = 0;
    stream.graceTimer = setTimeout(() => this.end(stream.id, why), ms);
    stream.graceTimer.unref();
  }

  /**
   * Read a stream's events from now on. If a session is running, the reader first gets its
   * session-start (and then frames; it should wait for a keyframe). Subscribe from a 'stream-start'
   * listener to see a stream from its first event; a stream that is not live is refused.
   */
  subscribe(streamId: string, name: string): Reader {
    const stream = this.#streams.get(streamId);
    if (!stream) throw new AppError('E_STREAM_NOT_LIVE', `stream ${streamId} is not live`);
    const reader = new Reader(name, this.#opts.readerQueueFrames, (r) => {
      this.#reportDrops(streamId, r);
      stream.readers.delete(r);
    });
    stream.readers.add(reader);
    const pub = stream.publisher;
    if (pub && !pub.closed && stream.tracks) {
      reader.push({
        type: 'session-start',
        sessionId: pub.sessionId,
        sourceSessionId: pub.info.sourceSessionId,
        tracks: stream.tracks,
        wallClock: this.clock.now(),
      });
    }
    return reader;
  }

  /**
   * The stream's key no longer holds (rotated, or the stream deleted): publishes whose key check began
   * before now are refused. With `kick`, the current publisher is also disconnected.
   */
  revoke(streamId: string, opts: { kick: boolean; reason: string }): void {
    const now = this.monotonic();
    for (const [id, at] of this.#revoked) if (now - at > REVOCATION_MEMORY_MS) this.#revoked.delete(id);
    this.#revoked.set(streamId, now);
    if (opts.kick) this.kick(streamId, opts.reason);
  }

  /** Disconnect the current publisher (operator action). The stream then waits for the grace period. */
  kick(streamId: string, reason: string): boolean {
    const pub = this.#streams.get(streamId)?.publisher;
    if (!pub || pub.closed) return false;
    pub.close(reason);
    pub.kick(reason);
    return true;
  }

  /** End a stream now: kick its publisher, tell readers, forget it. */
  end(streamId: string, reason: string): void {
    const stream = this.#streams.get(streamId);
    if (!stream) return;
    if (stream.graceTimer) clearTimeout(stream.graceTimer);
    const pub = stream.publisher;
    if (pub && !pub.closed) {
      pub.closed = true;
      stream.broadcast({ type: 'session-end', sessionId: pub.sessionId, reason });
      this.emit('session-end', streamId, pub.info, reason, pub.stats());
      pub.kick(reason);
    }
    this.#streams.delete(streamId);
    stream.broadcast({ type: 'stream-end', reason });
    stream.readers.clear();
    this.#log.info({ stream: streamId, reason }, 'stream ended');
    this.emit('stream-end', streamId, reason);
  }

  status(streamId: string): LiveStatus | undefined {
    const s = this.#streams.get(streamId);
    if (!s) return undefined;
    return {
      streamId: s.id,
      state: s.state,
      sessionId: s.info.sessionId,
      protocol: s.info.protocol,
      remoteAddress: s.info.remoteAddress,
      tracks: s.tracks,
      liveSince: s.liveSince,
      sessionSince: s.sessionSince,
      fps: s.fps,
      bitrateKbps: s.bitrateKbps,
      frames: s.frames,
      bytes: s.bytes,
      repairedTimestamps: s.repaired,
      sessions: s.sessions,
    };
  }

  list(): LiveStatus[] {
    const out: LiveStatus[] = [];
    for (const id of this.#streams.keys()) {
      const st = this.status(id);
      if (st) out.push(st);
    }
    return out;
  }

  /** Count a reader's new drops and log them: once a second at most per reader, never per frame. */
  #reportDrops(streamId: string, r: Reader): void {
    const before = this.#reportedDrops.get(r) ?? 0;
    if (r.dropped === before) return;
    this.#reportedDrops.set(r, r.dropped);
    this.counters.readerDrops += r.dropped - before;
    this.#log.warn({ stream: streamId, reader: r.name, dropped: r.dropped - before, total: r.dropped }, 'slow reader dropped frames');
  }

  /** Sum of frames dropped by slow readers of a stream. */
  droppedFrames(streamId: string): number {
    let n = 0;
    for (const r of this.#streams.get(streamId)?.readers ?? []) n += r.dropped;
    return n;
  }

  /** End every stream (their publishers are kicked) and stop the timer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const id of [...this.#streams.keys()]) this.end(id, 'server shutting down');
  }
}
