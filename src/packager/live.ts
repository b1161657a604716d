import { randomBytes } from 'node:crypto';
import { codecString, type Logger } from '../core/index.js';
import type { Reader, StreamHub } from '../stream/index.js';
import { renderMultivariantPlaylist, type RenditionReport, type VariantEntry } from './playlist.js';
import { LiveRendition } from './rendition.js';
import { Segmenter } from './segmenter.js';

export interface LivePackagerOptions {
  readonly hub: StreamHub;
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

export interface PackagerCounters {
  parts: number;
  segments: number;
  oversizedParts: number;
  forcedCuts: number;
  errors: number;
}

interface Rung {
  readonly rendition: LiveRendition;
  readonly segmenter: Segmenter;
}

/** Every rendition of one live stream run, fed from hub readers. */
export class StreamPackage {
  readonly streamId: string;
  readonly runId = randomBytes(4).toString('hex');
  readonly #rungs = new Map<string, Rung>();
  readonly #opts: LivePackagerOptions;
  readonly #counters: PackagerCounters;
  readonly #log: Logger;
  #readers: Reader[] = [];
  #ready = new Set<() => void>();
  #closing = false;
  endedAt: number | undefined;

  constructor(streamId: string, opts: LivePackagerOptions, counters: PackagerCounters) {
    this.streamId = streamId;
    this.#opts = opts;
    this.#counters = counters;
    this.#log = opts.logger.child({ stream: streamId });
  }

  get renditions(): LiveRendition[] {
    return [...this.#rungs.values()].map((r) => r.rendition);
  }

  rendition(name: string): LiveRendition | undefined {
    return this.#rungs.get(name)?.rendition;
  }

  /** Package the events of `reader` as rendition `name`. */
  addRendition(name: string, reader: Reader): void {
    const segOpts = { partTargetMs: this.#opts.partTargetMs, segmentTargetMs: this.#opts.segmentTargetMs };
    let segmenter: Segmenter | undefined;
    const rendition = new LiveRendition(name, this.runId, {
      windowSegments: Math.max(3, Math.ceil((this.#opts.windowSeconds * 1000) / this.#opts.segmentTargetMs)),
      retainSegments: 3,
      segmentTargetMs: this.#opts.segmentTargetMs,
      partTarget: () => segmenter?.partTargetSeconds ?? this.#opts.partTargetMs / 1000,
      targetDuration: () => segmenter?.targetDurationSeconds ?? Math.ceil(this.#opts.segmentTargetMs / 1000),
      maxHeldRequests: this.#opts.maxHeldRequests,
    });
    const counters = this.#counters;
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
    };
    segmenter = new Segmenter(segOpts, sink);
    this.#rungs.set(name, { rendition, segmenter });
    this.#readers.push(reader);
    void this.#pump(name, reader, segmenter, rendition);
  }

  async #pump(name: string, reader: Reader, segmenter: Segmenter, rendition: LiveRendition): Promise<void> {
    const log = this.#log.child({ rendition: name });
    let forcedLogged = false;
    for await (const ev of reader) {
      try {
        switch (ev.type) {
          case 'session-start':
            segmenter.startSession(ev.tracks);
            forcedLogged = false;
            break;
          case 'frame': {
            const oversized = segmenter.oversizedParts;
            const forced = segmenter.forcedCuts;
            segmenter.push(ev.frame);
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
            rendition.end();
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
    if (!this.#closing) rendition.end();
    this.endedAt ??= Date.now();
    this.#notifyReady();
  }

  /** Resolves once the first rendition has a complete segment (or the stream ended), or after timeoutMs. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closing || signal?.aborted || this.renditions.some((r) => r.hasSegments || r.ended)) return Promise.resolve();
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

  #notifyReady(): void {
    for (const f of [...this.#ready]) f();
  }

  reportsFor(name: string): RenditionReport[] {
    const out: RenditionReport[] = [];
    for (const r of this.renditions) {
      if (r.name === name || !r.hasSegments) continue;
      const last = r.lastMsnPart();
      out.push({ uri: `../${r.name}/index.m3u8`, lastMsn: last.msn, lastPart: last.part });
    }
    return out;
  }

  multivariant(): string | undefined {
    const variants: VariantEntry[] = [];
    for (const r of this.renditions) {
      if (!r.hasSegments) continue;
      const { video, audio } = r.tracks;
      const codecs = [video, audio].filter((t) => t !== undefined).map((t) => codecString(t!));
      variants.push({
        uri: `${r.name}/index.m3u8`,
        bandwidth: Math.max(r.peakBandwidth, 1),
        averageBandwidth: r.averageBandwidth || undefined,
        codecs: codecs.join(','),
        width: video?.width || undefined,
        height: video?.height || undefined,
        frameRate: video?.frameRate || undefined,
        name: r.name,
      });
    }
    if (variants.length === 0) return undefined;
    variants.sort((a, b) => b.bandwidth - a.bandwidth);
    const independent = [...this.#rungs.values()].every((r) => r.segmenter.forcedCuts === 0);
    return renderMultivariantPlaylist(variants, { independentSegments: independent });
  }

  /** Stop packaging (server shutdown or run replaced): answer held requests, but do not end the playlists. */
  close(): void {
    this.#closing = true;
    for (const r of this.#readers) r.close();
    for (const { rendition } of this.#rungs.values()) rendition.close();
    this.#notifyReady();
  }
}

/**
 * Packages every live stream of the hub: a StreamPackage per stream run with its source rendition.
 * Ended runs stay (with EXT-X-ENDLIST) for endedRetentionMs, then their memory is released.
 */
export class LivePackager {
  readonly counters: PackagerCounters = { parts: 0, segments: 0, oversizedParts: 0, forcedCuts: 0, errors: 0 };
  readonly #opts: LivePackagerOptions;
  readonly #packages = new Map<string, StreamPackage>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #onStart = (streamId: string) => this.#startStream(streamId);
  readonly #onEnd = (streamId: string) => this.#scheduleRemoval(streamId);
  #closed = false;

  constructor(opts: LivePackagerOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#opts.hub.on('stream-start', this.#onStart);
    this.#opts.hub.on('stream-end', this.#onEnd);
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
    const pkg = new StreamPackage(streamId, this.#opts, this.counters);
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
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const p of this.#packages.values()) p.close();
    this.#packages.clear();
  }
}
