/**
 * Remote packages: the live streams of the shared store as an origin serves them (the packager's
 * OriginPackages interface), for a node that does not ingest them. One view per stream in use, forgotten
 * when nobody asked for it for a while; one LRU of immutable files for all of them.
 */
import { monotonicNow, type Logger } from '../core/index.js';
import type { LiveWindowStore } from '../coord/index.js';
import type { OriginPackage, OriginPackages } from '../packager/index.js';
import { FileCache, type FileCacheCounters } from './file-cache.js';
import { unavailableOnFailure } from './remote-rendition.js';
import { RemoteStream } from './remote-stream.js';

export interface RemotePackagesOptions {
  readonly store: LiveWindowStore;
  readonly logger: Logger;
  /** Requests held at once per rendition (the packager's maxHeldRequests, HLS_MAX_HELD_REQUESTS). */
  readonly maxHeldRequests: number;
  /** While a request is held, the store is read again this often (announcements may be lost), ms. Default 100. */
  readonly recheckMs?: number;
  /** Bytes of immutable files (inits, parts, segments) kept in memory. Default 64 MiB. */
  readonly cacheBytes?: number;
  /** The stream document is read again when older than this, ms (a deleted stream is a 404 after it). Default 1000. */
  readonly docMaxAgeMs?: number;
  /** A stream nobody asked for this long is forgotten (unsubscribed), ms. Default 10000. */
  readonly idleMs?: number;
}

export class RemotePackages implements OriginPackages {
  readonly #opts: RemotePackagesOptions;
  readonly #views = new Map<string, RemoteStream>();
  readonly #cache: FileCache;
  readonly #sweep: NodeJS.Timeout;
  readonly #idleMs: number;
  #closed = false;

  constructor(opts: RemotePackagesOptions) {
    this.#opts = opts;
    this.#cache = new FileCache(opts.cacheBytes ?? 64 * 1024 * 1024);
    this.#idleMs = opts.idleMs ?? 10_000;
    this.#sweep = setInterval(() => this.#forgetIdle(), Math.max(100, this.#idleMs / 2));
    this.#sweep.unref();
  }

  /** Hits, misses and evictions of the file cache. */
  get cache(): FileCacheCounters & { bytes: number } {
    return { ...this.#cache.counters, bytes: this.#cache.bytes };
  }

  /** Streams this origin follows now. */
  get size(): number {
    return this.#views.size;
  }

  heldRequests(): number {
    let n = 0;
    for (const v of this.#views.values()) n += v.held;
    return n;
  }

  async get(streamId: string): Promise<OriginPackage | undefined> {
    if (this.#closed) return undefined;
    let view = this.#views.get(streamId);
    if (view?.gone) {
      this.#forget(view);
      view = undefined;
    }
    if (!view) {
      view = this.#view(streamId);
      this.#views.set(streamId, view);
    }
    view.lastUsed = monotonicNow();
    const found = await unavailableOnFailure(view.load(this.#opts.docMaxAgeMs ?? 1000));
    if (found) return view;
    if (this.#views.get(streamId) === view) this.#forget(view);
    return undefined;
  }

  /** Forget every stream; held requests are answered. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const v of [...this.#views.values()]) this.#forget(v);
  }

  #view(streamId: string): RemoteStream {
    const { store, logger, maxHeldRequests } = this.#opts;
    const prefix = `${streamId}\n`;
    return new RemoteStream(streamId, {
      store,
      logger,
      maxHeldRequests,
      recheckMs: this.#opts.recheckMs ?? 100,
      readFile: (rendition, name) => this.#cache.get(`${prefix}${rendition}\n${name}`, () => store.getFile(streamId, rendition, name)),
    });
  }

  #forget(view: RemoteStream): void {
    view.close();
    if (this.#views.get(view.streamId) === view) this.#views.delete(view.streamId);
    // A stream that is gone from the store takes its files from the cache with it.
    this.#cache.dropPrefix(`${view.streamId}\n`);
  }

  #forgetIdle(): void {
    const cutoff = monotonicNow() - this.#idleMs;
    for (const v of [...this.#views.values()]) if (v.gone || (v.held === 0 && v.lastUsed < cutoff)) this.#forget(v);
  }
}
