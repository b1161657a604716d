/**
 * The file cache of an origin: the immutable files of live windows (inits, parts, segments) read from the
 * shared store, kept in an LRU bounded by bytes, with one read in flight per file however many viewers ask,
 * so a popular stream costs the store one read per file per origin.
 */

export interface FileCacheCounters {
  hits: number;
  misses: number;
  /** Reads that found nothing (a file not made yet, or gone). */
  absent: number;
  evicted: number;
}

export class FileCache {
  readonly counters: FileCacheCounters = { hits: 0, misses: 0, absent: 0, evicted: 0 };
  readonly #maxBytes: number;
  /** In use order: the least recently used first. */
  readonly #files = new Map<string, Uint8Array>();
  readonly #reading = new Map<string, Promise<Uint8Array | undefined>>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The file's bytes from the cache, or from `read` (shared by every caller while it runs). */
  async get(key: string, read: () => Promise<Uint8Array | undefined>): Promise<Uint8Array | undefined> {
    const hit = this.#files.get(key);
    if (hit) {
      this.counters.hits++;
      this.#files.delete(key);
      this.#files.set(key, hit);
      return hit;
    }
    let reading = this.#reading.get(key);
    if (!reading) {
      this.counters.misses++;
      reading = read().finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
      const bytes = await reading;
      // Nothing is cached for a file not there: it may be made a moment later.
      if (bytes) this.#add(key, bytes);
      else this.counters.absent++;
      return bytes;
    }
    return reading;
  }

  /** Forget the files whose key starts with `prefix` (a stream whose window was deleted). */
  dropPrefix(prefix: string): void {
    for (const [k, v] of this.#files) {
      if (!k.startsWith(prefix)) continue;
      this.#files.delete(k);
      this.#bytes -= v.byteLength;
    }
  }

  #add(key: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.#maxBytes || this.#files.has(key)) return;
    this.#files.set(key, bytes);
    this.#bytes += bytes.byteLength;
    for (const [k, v] of this.#files) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#files.delete(k);
      this.#bytes -= v.byteLength;
      this.counters.evicted++;
    }
  }
}
