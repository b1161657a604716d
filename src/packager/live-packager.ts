/**
 * The live packager: the registry of stream packages. It follows the hub (a package per stream run, with
 * its source rendition) and the rung hub (transcoded rungs join their stream's package), and releases an
 * ended run's package after its retention.
 */
import { parseRungStreamId, type Reader, type StreamHub } from '../stream/index.js';
import type { SeedSource, StreamSeed } from './seed.js';
import type { PackageObserver, WindowWatcher } from './run-observer.js';
import type { PackagerCounters } from './feed.js';
import { StreamPackage, type StreamPackageOptions } from './stream-package.js';

export interface LivePackagerOptions extends StreamPackageOptions {
  readonly hub: StreamHub;
  /** Where transcoded rungs are published (stream id `<source stream id>/<rung>`); absent: source only. */
  readonly rungHub?: StreamHub;
  /** How long an ended stream's playlists (with EXT-X-ENDLIST) stay available. */
  readonly endedRetentionMs: number;
}

/**
 * Packages every live stream of the hub: a StreamPackage per stream run with its source rendition.
 * Ended runs stay (with EXT-X-ENDLIST) for endedRetentionMs, then their memory is released.
 */
export class LivePackager {
  readonly counters: PackagerCounters = {
    parts: 0,
    segments: 0,
    oversizedParts: 0,
    forcedCuts: 0,
    errors: 0,
    gapSegments: 0,
    unalignedSegments: 0,
  };
  readonly #opts: LivePackagerOptions;
  readonly #packages = new Map<string, StreamPackage>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #onStart = (streamId: string) => this.#startStream(streamId);
  readonly #onEnd = (streamId: string) => this.#scheduleRemoval(streamId);
  readonly #onRungStart = (id: string) => this.#startRung(id);
  #closed = false;
  #observer: PackageObserver | undefined;
  #watcher: WindowWatcher | undefined;
  #seeds: SeedSource | undefined;
  /** Streams started whose seed is being looked for: their readers (source, rungs) queue until it is found. */
  readonly #seeding = new Map<string, { reader: Reader; rungs: Array<[string, Reader]>; ended: boolean }>();

  constructor(opts: LivePackagerOptions) {
    this.#opts = opts;
  }

  /** The observer of every run started from now on (one; the recorder). */
  observe(observer: PackageObserver): void {
    this.#observer = observer;
  }

  /** The watcher of every change of the windows of runs started from now on (one; the cluster's mirror). */
  watch(watcher: WindowWatcher): void {
    this.#watcher = watcher;
  }

  /**
   * Where a stream's new run finds the window of a run another node began and it continues (the cluster's
   * shared store); asked once at each stream's start. Without it every run starts a new window.
   */
  seedFrom(source: SeedSource): void {
    this.#seeds = source;
  }

  start(): void {
    this.#opts.hub.on('stream-start', this.#onStart);
    this.#opts.hub.on('stream-end', this.#onEnd);
    this.#opts.rungHub?.on('stream-start', this.#onRungStart);
  }

  #startRung(id: string): void {
    const parsed = parseRungStreamId(id);
    const seeding = parsed && this.#seeding.get(parsed.streamId);
    if (seeding) {
      seeding.rungs.push([parsed.rung, this.#opts.rungHub!.subscribe(id, `packager:${parsed.rung}`)]);
      return;
    }
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
    const old = this.#packages.get(streamId);
    if (old) {
      this.#released(old, 'replaced');
      old.close();
    }
    this.#dropSeeding(streamId);
    const reader = this.#opts.hub.subscribe(streamId, 'packager:source');
    if (!this.#seeds) return void this.#begin(streamId, reader, undefined);
    // Subscribed now (nothing is missed); the package is made once the seed is known.
    const seeding = { reader, rungs: [] as Array<[string, Reader]>, ended: false };
    this.#seeding.set(streamId, seeding);
    void this.#seeds(streamId)
      .catch((err: unknown) => {
        this.#opts.logger.warn({ err, stream: streamId }, 'could not read the window to continue; a new run starts');
        return undefined;
      })
      .then((seed) => {
        if (this.#seeding.get(streamId) !== seeding) return;
        this.#seeding.delete(streamId);
        const pkg = this.#begin(streamId, reader, seed);
        for (const [rung, r] of seeding.rungs) pkg.addRendition(rung, r, { follow: true });
        if (seeding.ended) this.#scheduleRemoval(streamId);
      });
  }

  #begin(streamId: string, reader: Reader, seed: StreamSeed | undefined): StreamPackage {
    const pkg = new StreamPackage(streamId, this.#opts, this.counters, this.#observer, this.#watcher, seed);
    this.#packages.set(streamId, pkg);
    pkg.addRendition('source', reader);
    if (seed) this.#opts.logger.info({ stream: streamId, run: seed.runId }, 'continuing the window of a run begun on another node');
    return pkg;
  }

  /** A stream whose seed is still looked for is replaced or the packager closes: its readers go. */
  #dropSeeding(streamId: string): void {
    const s = this.#seeding.get(streamId);
    if (!s) return;
    this.#seeding.delete(streamId);
    s.reader.close();
    for (const [, r] of s.rungs) r.close();
  }

  #scheduleRemoval(streamId: string): void {
    const seeding = this.#seeding.get(streamId);
    if (seeding) {
      seeding.ended = true;
      return;
    }
    const pkg = this.#packages.get(streamId);
    if (!pkg) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (this.#packages.get(streamId) === pkg) {
        this.#packages.delete(streamId);
        pkg.close();
        this.#released(pkg, 'expired');
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
    for (const id of [...this.#seeding.keys()]) this.#dropSeeding(id);
    for (const p of this.#packages.values()) {
      p.close();
      this.#released(p, 'closed');
    }
    this.#packages.clear();
  }

  /** Tells the window watcher a package is gone; its failure is logged, never the packager's. */
  #released(pkg: StreamPackage, why: 'expired' | 'replaced' | 'closed'): void {
    try {
      this.#watcher?.released(pkg, why);
    } catch (err) {
      this.#opts.logger.error({ err, stream: pkg.streamId }, 'window watcher failed');
    }
  }
}
