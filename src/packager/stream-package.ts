/**
 * The stream package: every rendition of one live stream run (the source and its transcoded rungs), each
 * fed from a hub reader through its segmenter into its live window, and the multivariant playlist over them.
 */
import { randomBytes } from 'node:crypto';
import { describeTracks, monotonicNow, type Logger } from '../core/index.js';
import type { Reader } from '../stream/index.js';
import { Alignment, type AlignmentRole } from './alignment.js';
import { feedSink, type PackagerCounters, type Pump, type RenditionFeed } from './feed.js';
import { renderMultivariantPlaylist, type RenditionReport, type VariantEntry } from './playlist.js';
import { LiveRendition, type WindowChange } from './rendition.js';
import { RunObserver, type PackageObserver, type WindowWatcher } from './run-observer.js';
import type { StreamSeed } from './seed.js';
import { Segmenter } from './segmenter.js';
import { StartWaiters } from './start-waiters.js';
import type { SegmentTimeline } from './timeline.js';

export interface StreamPackageOptions {
  readonly logger: Logger;
  readonly partTargetMs: number;
  /** PART-HOLD-BACK in parts (HLS_PART_HOLD_BACK_PARTS); absent: 3, the spec's SHOULD. */
  readonly partHoldBackParts?: number;
  readonly segmentTargetMs: number;
  /** Seconds of complete segments in each media playlist. */
  readonly windowSeconds: number;
  /** Blocking requests held at once per rendition. */
  readonly maxHeldRequests: number;
}

/** A rung that has produced nothing this long after it appeared no longer holds back the multivariant playlist. */
const RUNG_STARTUP_MS = 10_000;

/** Every rendition of one live stream run, fed from hub readers. */
export class StreamPackage {
  readonly streamId: string;
  readonly runId: string;
  readonly #alignment: Alignment;
  readonly #feeds = new Map<string, RenditionFeed>();
  #source: RenditionFeed | undefined;
  readonly #opts: StreamPackageOptions;
  readonly #counters: PackagerCounters;
  readonly #log: Logger;
  #readers: Reader[] = [];
  readonly #startWaiters: StartWaiters;
  #closing = false;
  readonly #observer: RunObserver | undefined;
  readonly #watcher: WindowWatcher | undefined;
  /** The window of the run another node began, which this package continues (seed.ts). */
  readonly #seed: StreamSeed | undefined;
  endedAt: number | undefined;

  constructor(
    streamId: string,
    opts: StreamPackageOptions,
    counters: PackagerCounters,
    observer?: PackageObserver,
    watcher?: WindowWatcher,
    seed?: StreamSeed,
  ) {
    this.streamId = streamId;
    this.runId = seed?.runId ?? randomBytes(4).toString('hex');
    this.#seed = seed;
    this.#opts = opts;
    this.#counters = counters;
    this.#log = opts.logger.child({ stream: streamId });
    this.#alignment = new Alignment(counters);
    this.#startWaiters = new StartWaiters(opts.maxHeldRequests);
    this.#observer = observer && new RunObserver(observer, streamId, this.runId, this.#log);
    this.#watcher = watcher;
  }

  /** The source's segment boundaries and clocks, which the rungs follow. */
  get timeline(): SegmentTimeline {
    return this.#alignment.timeline;
  }

  get renditions(): LiveRendition[] {
    return [...this.#feeds.values()].map((r) => r.rendition);
  }

  rendition(name: string): LiveRendition | undefined {
    return this.#feeds.get(name)?.rendition;
  }

  /**
   * Package the events of `reader` as rendition `name`. The first rendition is the source: it decides
   * where segments start. A later one with `follow` is a transcoded rung of it: its segments start where
   * the source's do and take their media sequence numbers and PDTs. Adding a name that exists attaches
   * a new reader to it (a rung that was dropped and comes back continues its playlist).
   */
  addRendition(name: string, reader: Reader, opts: { follow?: boolean } = {}): void {
    const existing = this.#feeds.get(name);
    if (existing) {
      existing.reader?.close();
      existing.reader = reader;
      existing.retired = false;
      this.#readers.push(reader);
      void this.#pump(name, reader, existing);
      return;
    }
    const source = this.#source;
    const follower = opts.follow === true && source !== undefined;
    // Built below, after the rendition whose callbacks read it (undefined until then).
    // eslint-disable-next-line prefer-const -- declared ahead of the closures that use it
    let segmenter: Segmenter | undefined;
    const observer = this.#observer;
    const watcher = this.#watcher;
    const rendition: LiveRendition = new LiveRendition(name, this.runId, {
      windowSegments: Math.max(3, Math.ceil((this.#opts.windowSeconds * 1000) / this.#opts.segmentTargetMs)),
      retainSegments: 3,
      segmentTargetMs: this.#opts.segmentTargetMs,
      partTarget: () => segmenter?.partTargetSeconds ?? this.#opts.partTargetMs / 1000,
      partHoldBackParts: this.#opts.partHoldBackParts ?? 3,
      // Every rung of a stream has the source's TARGETDURATION: their segments are the source's.
      targetDuration: () => (source ?? { segmenter }).segmenter?.targetDurationSeconds ?? Math.ceil(this.#opts.segmentTargetMs / 1000),
      maxHeldRequests: this.#opts.maxHeldRequests,
      onSegment: observer ? (seg) => observer.segment(name, seg) : undefined,
      onChange: watcher ? (change) => this.#tell(watcher, rendition, change) : undefined,
    });
    const seeded = this.#seed?.renditions.get(name);
    if (seeded) {
      const readFile = this.#seed!.file;
      rendition.seed(seeded, (file) => readFile(name, file));
    }
    const role: AlignmentRole = follower
      ? {
          kind: 'follower',
          alignment: this.#alignment,
          minMsn: () => rendition.nextMsn,
          targetDuration: () => source.segmenter.targetDurationSeconds,
        }
      : { kind: 'leader', alignment: this.#alignment };
    const pushing = { pump: undefined };
    const segOpts = { partTargetMs: this.#opts.partTargetMs, segmentTargetMs: this.#opts.segmentTargetMs };
    const sink = feedSink(rendition, {
      follower,
      alignment: this.#alignment,
      counters: this.#counters,
      pushing,
      wake: () => this.#wakeStartWaiters(),
    });
    segmenter = new Segmenter(segOpts, sink, role);
    const feed: RenditionFeed = { rendition, segmenter, follower, reader, addedAt: monotonicNow(), retired: false, pushing };
    if (follower) this.#alignment.follow(rendition);
    else this.#source = feed;
    this.#feeds.set(name, feed);
    this.#readers.push(reader);
    if (watcher) this.#tell(watcher, rendition, { kind: 'added' });
    void this.#pump(name, reader, feed);
  }

  /** Tells the window watcher of a change; its failure is its own (logged), never the stream's. */
  #tell(watcher: WindowWatcher, rendition: LiveRendition, change: WindowChange): void {
    try {
      watcher.changed(this, rendition, change);
    } catch (err) {
      this.#log.error({ err, rendition: rendition.name }, 'window watcher failed');
    }
  }

  async #pump(name: string, reader: Reader, feed: RenditionFeed): Promise<void> {
    const { segmenter, rendition, follower } = feed;
    const log = this.#log.child({ rendition: name });
    const pump: Pump = { log, forcedLogged: false };
    for await (const ev of reader) {
      // A rung's frames that come after the source ended have no playlist to go to.
      if (follower && rendition.ended) continue;
      try {
        switch (ev.type) {
          case 'session-start':
            segmenter.startSession(ev.tracks, follower ? (ev.sourceSessionId ?? '') : ev.sessionId);
            pump.forcedLogged = false;
            break;
          case 'frame': {
            if (follower) {
              const wait = this.#alignment.waitForSource(segmenter.followerTimelineDts(ev.frame));
              if (wait) await wait;
            }
            feed.pushing.pump = pump;
            try {
              segmenter.push(ev.frame);
            } finally {
              feed.pushing.pump = undefined;
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
              feed.retired = true;
              this.#wakeStartWaiters();
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
    if (feed.reader !== reader) return; // replaced by a new reader (a rung re-added)
    if (follower) {
      if (!this.#closing) rendition.sessionEnd();
      return;
    }
    if (!this.#closing) this.#endAll();
    this.endedAt ??= Date.now();
    this.#wakeStartWaiters();
  }

  /** The source ended: every rendition's playlist ends with it (a rung's last segment completed first). */
  #endAll(): void {
    for (const r of this.#feeds.values()) {
      if (r.rendition.ended) continue;
      if (r.follower) r.segmenter.endSession();
      r.rendition.end();
    }
    this.#alignment.close();
    this.#observer?.end('ended');
  }

  /** Resolves once the stream can be played (#playable), or it ended, or after timeoutMs. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closing || signal?.aborted || this.#playable()) return Promise.resolve();
    return this.#startWaiters.wait(timeoutMs, signal);
  }

  /** The multivariant playlist can be given out (#playable). */
  get playable(): boolean {
    return this.#playable();
  }

  /** The package was closed (server shutdown or run replaced): requests are answered at once. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Requests waiting for the stream's first segment. */
  get waitingForStart(): number {
    return this.#startWaiters.size;
  }

  /**
   * The multivariant playlist can be given out: the source has a segment, and so has every rung that is
   * running (a player reads the multivariant playlist once; a rung missing from it stays unused).
   */
  #playable(): boolean {
    const source = this.#source?.rendition;
    if (!source) return false;
    if (source.ended) return true;
    if (!source.offerable) return false;
    const now = monotonicNow();
    return [...this.#feeds.values()].every(
      (r) => !r.follower || r.rendition.offerable || r.rendition.ended || r.retired || now - r.addedAt > RUNG_STARTUP_MS,
    );
  }

  #wakeStartWaiters(): void {
    if (!this.#playable() && !this.#closing && !this.#source?.rendition.ended) return;
    this.#startWaiters.release();
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
    for (const { rendition: r, follower } of this.#feeds.values()) {
      // A rung that is not running (restarting, or dropped for lack of CPU) is not offered to new players.
      if (!r.offerable || (follower && !r.live && !r.ended)) continue;
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
    const independent = [...this.#feeds.values()].every((r) => r.segmenter.forcedCuts === 0 && r.segmenter.unalignedCuts === 0);
    return renderMultivariantPlaylist(variants, { independentSegments: independent });
  }

  /** Stop packaging (server shutdown or run replaced): answer held requests, but do not end the playlists. */
  close(): void {
    this.#closing = true;
    this.#alignment.close();
    for (const r of this.#readers) r.close();
    // A server shutting down keeps what was received: the segment in progress is completed (and recorded)
    // rather than lost, as it would be in a crash.
    if (this.#observer && !this.#observer.ended) {
      for (const r of this.#feeds.values()) {
        if (r.rendition.ended || !r.rendition.live) continue;
        try {
          r.segmenter.endSession();
        } catch (err) {
          this.#log.warn({ err, rendition: r.rendition.name }, 'could not complete the segment in progress at close');
        }
      }
    }
    this.#observer?.end('closed');
    for (const { rendition } of this.#feeds.values()) rendition.close();
    this.#wakeStartWaiters();
  }
}
