import { randomBytes } from 'node:crypto';
import { describeTracks, TIMESCALE, type Logger } from '../core/index.js';
import { parseRungStreamId, type Reader, type StreamHub } from '../stream/index.js';
import { renderMultivariantPlaylist, type RenditionReport, type VariantEntry } from './playlist.js';
import { LiveRendition, type CompletedSegment } from './rendition.js';
import { Segmenter, type SegmenterRole, type SegmentStartInfo } from './segmenter.js';
import { SegmentTimeline } from './timeline.js';

export interface LivePackagerOptions {
  readonly hub: StreamHub;
  /** Where transcoded rungs are published (stream id `<source stream id>/<rung>`); absent: source only. */
  readonly rungHub?: StreamHub;
  readonly logger: Logger;
  readonly partTargetMs: number;
  readonly segmentTargetMs: number;
  /** Seconds of complete segments in each media playlist. */
  readonly windowSeconds: number;
  /** How long an ended stream's playlists (with EXT-X-ENDLIST) stay available. */
  readonly endedRetentionMs: number;
  /** Blocking requests held at once per rendition. */
  readonly maxHeldRequests: number;
}

/**
 * Told of every stream run's life (the recorder). Calls are synchronous and in order for one run: start,
 * segments (each rendition's in order), end. An observer that throws is logged; packaging goes on.
 */
export interface PackageObserver {
  runStart(streamId: string, runId: string): void;
  segment(streamId: string, runId: string, rendition: string, seg: CompletedSegment): void;
  /** 'ended': the stream ended (after the reconnect grace); 'closed': the server is shutting down. */
  runEnd(streamId: string, runId: string, why: 'ended' | 'closed'): void;
}

export interface PackagerCounters {
  parts: number;
  segments: number;
  oversizedParts: number;
  forcedCuts: number;
  errors: number;
  /** Rung segments listed as EXT-X-GAP (the rung was restarting or dropped). */
  gapSegments: number;
  /** Rung segments that could not take the source's media sequence number. */
  unalignedSegments: number;
}

interface Rung {
  readonly rendition: LiveRendition;
  readonly segmenter: Segmenter;
  readonly follower: boolean;
  reader: Reader | undefined;
  readonly addedAt: number;
  /** A rung whose stream ended (dropped, or its transcoder gave up): nothing to wait for. */
  retired: boolean;
}

/** A rung that has produced nothing this long after it appeared no longer holds back the multivariant playlist. */
const RUNG_STARTUP_MS = 10_000;

/** How long a rung waits for the source to reach the instant of its frame before deciding on a cut. */
const LEADER_WAIT_MS = 1000;

/** Every rendition of one live stream run, fed from hub readers. */
export class StreamPackage {
  readonly streamId: string;
  readonly runId = randomBytes(4).toString('hex');
  readonly timeline = new SegmentTimeline();
  readonly #rungs = new Map<string, Rung>();
  #leader: Rung | undefined;
  readonly #opts: LivePackagerOptions;
  readonly #counters: PackagerCounters;
  readonly #log: Logger;
  #readers: Reader[] = [];
  #ready = new Set<() => void>();
  #closing = false;
  #observer: PackageObserver | undefined;
  #observed = false;
  endedAt: number | undefined;

  constructor(streamId: string, opts: LivePackagerOptions, counters: PackagerCounters, observer?: PackageObserver) {
    this.streamId = streamId;
    this.#opts = opts;
    this.#counters = counters;
    this.#log = opts.logger.child({ stream: streamId });
    this.#observer = observer;
    if (observer) this.#observe(() => observer.runStart(streamId, this.runId));
  }

  /** Calls the observer; its failure is its own (logged), never the stream's. */
  #observe(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.#log.error({ err }, 'package observer failed');
    }
  }

  /** Tells the observer the run is over, once. */
  #observeEnd(why: 'ended' | 'closed'): void {
    const o = this.#observer;
    if (!o || this.#observed) return;
    this.#observed = true;
    this.#observe(() => o.runEnd(this.streamId, this.runId, why));
  }

  get renditions(): LiveRendition[] {
    return [...this.#rungs.values()].map((r) => r.rendition);
  }

  rendition(name: string): LiveRendition | undefined {
    return this.#rungs.get(name)?.rendition;
  }

  /**
   * Package the events of `reader` as rendition `name`. The first rendition is the source: it decides
   * where segments start. A later one with `follow` is a transcoded rung of it: its segments start where
   * the source's do and take their media sequence numbers and PDTs. Adding a name that exists attaches
   * a new reader to it (a rung that was dropped and comes back continues its playlist).
   */
  addRendition(name: string, reader: Reader, opts: { follow?: boolean } = {}): void {
    const existing = this.#rungs.get(name);
    if (existing) {
      existing.reader?.close();
      existing.reader = reader;
      existing.retired = false;
      this.#readers.push(reader);
      void this.#pump(name, reader, existing);
      return;
    }
    const follower = opts.follow === true && this.#leader !== undefined;
    const leader = this.#leader;
    const segOpts = { partTargetMs: this.#opts.partTargetMs, segmentTargetMs: this.#opts.segmentTargetMs };
    let segmenter: Segmenter | undefined;
    const rendition = new LiveRendition(name, this.runId, {
      windowSegments: Math.max(3, Math.ceil((this.#opts.windowSeconds * 1000) / this.#opts.segmentTargetMs)),
      retainSegments: 3,
      segmentTargetMs: this.#opts.segmentTargetMs,
      partTarget: () => segmenter?.partTargetSeconds ?? this.#opts.partTargetMs / 1000,
      // Every rung of a stream has the source's TARGETDURATION: their segments are the source's.
      targetDuration: () => (leader ?? { segmenter }).segmenter?.targetDurationSeconds ?? Math.ceil(this.#opts.segmentTargetMs / 1000),
      maxHeldRequests: this.#opts.maxHeldRequests,
      onSegment: this.#observer ? (seg) => this.#observe(() => this.#observer!.segment(this.streamId, this.runId, name, seg)) : undefined,
    });
    const counters = this.#counters;
    const timeline = this.timeline;
    const sink = {
      init: rendition.init.bind(rendition),
      part: (p: Parameters<LiveRendition['part']>[0]) => {
        counters.parts++;
        rendition.part(p);
        if (rendition.hasSegments) this.#notifyReady();
      },
      segmentEnd: (programDateTime: number) => {
        counters.segments++;
        rendition.segmentEnd(programDateTime);
        this.#notifyReady();
      },
      segmentStart: (info: SegmentStartInfo) => {
        if (!follower) {
          timeline.addBoundary({
            msn: rendition.nextMsn,
            timelineDts: info.timelineDts,
            timelinePts: info.timelinePts,
            sessionId: sessionKey,
            sessionStart: info.sessionStart,
          });
          // The segment before this one is complete, and its duration known from this boundary.
          this.#fillPausedRungs(rendition.nextMsn - 1);
        } else if (info.msn !== undefined && !rendition.alignTo(info.msn, (m) => this.#gapFor(m))) {
          counters.unalignedSegments++;
        }
      },
    };
    let sessionKey = '';
    const role: SegmenterRole = follower
      ? { kind: 'follower', timeline, minMsn: () => rendition.nextMsn, targetDuration: () => leader!.segmenter.targetDurationSeconds }
      : { kind: 'leader', timeline };
    segmenter = new Segmenter(segOpts, sink, role);
    const rung: Rung = { rendition, segmenter, follower, reader, addedAt: Date.now(), retired: false };
    if (!follower) {
      this.#leader = rung;
      // The leader's session key is its own session id; it is set before the session's first frame.
      this.#leaderSession = (id) => (sessionKey = id);
    }
    this.#rungs.set(name, rung);
    this.#readers.push(reader);
    void this.#pump(name, reader, rung);
  }

  #leaderSession: (id: string) => void = () => {};

  /** Duration and PDT of the source's segment `msn`, for a rung's EXT-X-GAP in its place. */
  #gapFor(msn: number): { duration: number; programDateTime: number; discontinuity: boolean } | undefined {
    const b = this.timeline.boundary(msn);
    const next = this.timeline.boundary(msn + 1);
    if (!b || !next) return undefined;
    const pdt = this.timeline.pdt(b.sessionId, b.timelineDts);
    if (pdt === undefined) return undefined;
    this.#counters.gapSegments++;
    // Where the source's publisher reconnected, the gap carries the source's discontinuity.
    return { duration: (next.timelineDts - b.timelineDts) / TIMESCALE, programDateTime: pdt, discontinuity: b.sessionStart };
  }

  /**
   * The source completed segment `msn`: a rung that is not running (FFmpeg restarting, or the rung
   * dropped for lack of CPU) lists it as a gap, so its playlist keeps pace and never 404s.
   */
  #fillPausedRungs(msn: number): void {
    for (const r of this.#rungs.values()) {
      if (!r.follower || r.rendition.live || r.rendition.ended || !r.rendition.hasSegments) continue;
      r.rendition.alignTo(msn + 1, (m) => this.#gapFor(m));
    }
  }

  async #pump(name: string, reader: Reader, rung: Rung): Promise<void> {
    const { segmenter, rendition, follower } = rung;
    const log = this.#log.child({ rendition: name });
    let forcedLogged = false;
    for await (const ev of reader) {
      // A rung's frames that come after the source ended have no playlist to go to.
      if (follower && rendition.ended) continue;
      try {
        switch (ev.type) {
          case 'session-start':
            if (!follower) this.#leaderSession(ev.sessionId);
            segmenter.startSession(ev.tracks, follower ? (ev.sourceSessionId ?? '') : ev.sessionId);
            forcedLogged = false;
            break;
          case 'frame': {
            if (follower) {
              // The source decides where segments start: let it reach this instant first.
              const at = segmenter.followerTimelineDts(ev.frame);
              if (at !== undefined && at > this.timeline.horizon) await this.timeline.waitFor(at, LEADER_WAIT_MS);
            }
            const oversized = segmenter.oversizedParts;
            const forced = segmenter.forcedCuts;
            const unaligned = segmenter.unalignedCuts;
            segmenter.push(ev.frame);
            if (segmenter.unalignedCuts !== unaligned) this.#counters.unalignedSegments++;
            if (segmenter.oversizedParts !== oversized) this.#counters.oversizedParts++;
            if (segmenter.forcedCuts !== forced) {
              this.#counters.forcedCuts++;
              if (!forcedLogged) {
                forcedLogged = true;
                log.warn(
                  { targetDuration: segmenter.targetDurationSeconds },
                  'no keyframe within the target duration: segment cut without one (set the encoder keyframe interval to 1-2 s)',
                );
              }
            }
            break;
          }
          case 'session-end':
            segmenter.endSession();
            rendition.sessionEnd();
            break;
          case 'stream-end':
            segmenter.endSession();
            // A rung's stream ends when it is dropped; its playlist goes on (with gaps) until the source's ends.
            if (follower) {
              rendition.sessionEnd();
              rung.retired = true;
              this.#notifyReady();
            } else this.#endAll();
            break;
        }
      } catch (err) {
        // A frame the muxer cannot take must not end the stream: log it once per kind and go on.
        this.#counters.errors++;
        log.error({ err, event: ev.type }, 'packaging failed for an event');
      }
    }
    // The reader ends after stream-end, or when the server shuts down: then viewers must not be told the
    // stream ended (they would stop), only have their held requests answered (close()).
    this.#readers = this.#readers.filter((r) => r !== reader);
    if (rung.reader !== reader) return; // replaced by a new reader (a rung re-added)
    if (follower) {
      if (!this.#closing) rendition.sessionEnd();
      return;
    }
    if (!this.#closing) this.#endAll();
    this.endedAt ??= Date.now();
    this.#notifyReady();
  }

  /** The source ended: every rendition's playlist ends with it (a rung's last segment completed first). */
  #endAll(): void {
    for (const r of this.#rungs.values()) {
      if (r.rendition.ended) continue;
      if (r.follower) r.segmenter.endSession();
      r.rendition.end();
    }
    this.timeline.close();
    this.#observeEnd('ended');
  }

  /** Resolves once the first rendition has a complete segment (or the stream ended), or after timeoutMs. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closing || signal?.aborted || this.#ready_()) return Promise.resolve();
    // Bounded like held playlist requests: past the limit, answer at once with what there is.
    if (this.#ready.size >= this.#opts.maxHeldRequests) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', finish);
        this.#ready.delete(finish);
        resolve();
      };
      const t = setTimeout(finish, timeoutMs);
      signal?.addEventListener('abort', finish, { once: true });
      this.#ready.add(finish);
    });
  }

  /** Requests waiting for the stream's first segment. */
  get waitingForStart(): number {
    return this.#ready.size;
  }

  /**
   * The multivariant playlist can be given out: the source has a segment, and so has every rung that is
   * running (a player reads the multivariant playlist once; a rung missing from it stays unused).
   */
  #ready_(): boolean {
    const leader = this.#leader?.rendition;
    if (!leader) return false;
    if (leader.ended) return true;
    if (!leader.hasSegments) return false;
    const now = Date.now();
    return [...this.#rungs.values()].every((r) => !r.follower || r.rendition.hasSegments || r.rendition.ended || r.retired || now - r.addedAt > RUNG_STARTUP_MS);
  }

  #notifyReady(): void {
    if (!this.#ready_() && !this.#closing && !this.#leader?.rendition.ended) return;
    for (const f of [...this.#ready]) f();
  }

  reportsFor(name: string): RenditionReport[] {
    const out: RenditionReport[] = [];
    for (const r of this.renditions) {
      if (r.name === name || !r.hasSegments) continue;
      const last = r.lastMsnPart();
      // A rung whose last segment is a gap has no part to report: LAST-PART is then left out.
      out.push({ uri: `../${r.name}/index.m3u8`, lastMsn: last.msn, lastPart: last.part >= 0 ? last.part : undefined });
    }
    return out;
  }

  multivariant(): string | undefined {
    const variants: VariantEntry[] = [];
    for (const { rendition: r, follower } of this.#rungs.values()) {
      // A rung that is not running (restarting, or dropped for lack of CPU) is not offered to new players.
      if (!r.hasSegments || (follower && !r.live && !r.ended)) continue;
      variants.push({
        uri: `${r.name}/index.m3u8`,
        bandwidth: Math.max(r.peakBandwidth, 1),
        averageBandwidth: r.averageBandwidth || undefined,
        ...describeTracks(r.tracks),
        name: r.name,
      });
    }
    if (variants.length === 0) return undefined;
    // Highest resolution first (the source leads), then by bandwidth.
    variants.sort((a, b) => (b.height ?? 0) - (a.height ?? 0) || b.bandwidth - a.bandwidth);
    const independent = [...this.#rungs.values()].every((r) => r.segmenter.forcedCuts === 0 && r.segmenter.unalignedCuts === 0);
    return renderMultivariantPlaylist(variants, { independentSegments: independent });
  }

  /** Stop packaging (server shutdown or run replaced): answer held requests, but do not end the playlists. */
  close(): void {
    this.#closing = true;
    this.timeline.close();
    for (const r of this.#readers) r.close();
    // A server shutting down keeps what was received: the segment in progress is completed (and recorded)
    // rather than lost, as it would be in a crash.
    if (this.#observer && !this.#observed) {
      for (const r of this.#rungs.values()) {
        if (r.rendition.ended || !r.rendition.live) continue;
        try {
          r.segmenter.endSession();
        } catch (err) {
          this.#log.warn({ err, rendition: r.rendition.name }, 'could not complete the segment in progress at close');
        }
      }
    }
    this.#observeEnd('closed');
    for (const { rendition } of this.#rungs.values()) rendition.close();
    this.#notifyReady();
  }
}

/**
 * Packages every live stream of the hub: a StreamPackage per stream run with its source rendition.
 * Ended runs stay (with EXT-X-ENDLIST) for endedRetentionMs, then their memory is released.
 */
export class LivePackager {
  readonly counters: PackagerCounters = { parts: 0, segments: 0, oversizedParts: 0, forcedCuts: 0, errors: 0, gapSegments: 0, unalignedSegments: 0 };
  readonly #opts: LivePackagerOptions;
  readonly #packages = new Map<string, StreamPackage>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #onStart = (streamId: string) => this.#startStream(streamId);
  readonly #onEnd = (streamId: string) => this.#scheduleRemoval(streamId);
  readonly #onRungStart = (id: string) => this.#startRung(id);
  #closed = false;
  #observer: PackageObserver | undefined;

  constructor(opts: LivePackagerOptions) {
    this.#opts = opts;
  }

  /** The observer of every run started from now on (one; the recorder). */
  observe(observer: PackageObserver): void {
    this.#observer = observer;
  }

  start(): void {
    this.#opts.hub.on('stream-start', this.#onStart);
    this.#opts.hub.on('stream-end', this.#onEnd);
    this.#opts.rungHub?.on('stream-start', this.#onRungStart);
  }

  #startRung(id: string): void {
    const parsed = parseRungStreamId(id);
    const pkg = parsed && this.#packages.get(parsed.streamId);
    if (!parsed || !pkg || pkg.endedAt !== undefined) return;
    pkg.addRendition(parsed.rung, this.#opts.rungHub!.subscribe(id, `packager:${parsed.rung}`), { follow: true });
  }

  get(streamId: string): StreamPackage | undefined {
    return this.#packages.get(streamId);
  }

  get size(): number {
    return this.#packages.size;
  }

  heldRequests(): number {
    let n = 0;
    for (const p of this.#packages.values()) {
      n += p.waitingForStart;
      for (const r of p.renditions) n += r.heldRequests;
    }
    return n;
  }

  #startStream(streamId: string): void {
    this.#packages.get(streamId)?.close();
    const pkg = new StreamPackage(streamId, this.#opts, this.counters, this.#observer);
    this.#packages.set(streamId, pkg);
    pkg.addRendition('source', this.#opts.hub.subscribe(streamId, 'packager:source'));
  }

  #scheduleRemoval(streamId: string): void {
    const pkg = this.#packages.get(streamId);
    if (!pkg) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (this.#packages.get(streamId) === pkg) {
        this.#packages.delete(streamId);
        pkg.close();
      }
    }, this.#opts.endedRetentionMs);
    t.unref();
    this.#timers.add(t);
  }

  /** Stop listening, answer every held request, release every window. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.hub.off('stream-start', this.#onStart);
    this.#opts.hub.off('stream-end', this.#onEnd);
    this.#opts.rungHub?.off('stream-start', this.#onRungStart);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const p of this.#packages.values()) p.close();
    this.#packages.clear();
  }
}
