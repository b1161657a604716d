/**
 * The window mirror: on the node that ingests a stream, every init, part and segment the packager makes,
 * and after each change the rendition's playlist state and the stream document, written to the shared
 * store for the other origins. Writes run behind the packager and never slow it: a bounded queue per
 * stream, dropped and counted when the store is slow or down, one log line per outage.
 */
import type { Logger } from '../core/index.js';
import type { LiveWindowStore } from '../coord/index.js';
import { partsListed, type LiveRendition, type WatchedPackage, type WindowChange, type WindowWatcher } from '../packager/index.js';
import { renditionDoc, streamDoc } from './window-state.js';

/** How often writes that wait for this node's lease on a stream look again, ms. */
const LEASE_WAIT_RETRY_MS = 100;

export interface WindowMirrorOptions {
  readonly store: LiveWindowStore;
  readonly logger: Logger;
  /**
   * The lease epoch a stream's writes carry; undefined while this node does not own the stream (nothing is
   * written then).
   */
  readonly epochOf: (streamId: string) => number | undefined;
  /**
   * How long what is written stays in the store, ms: a little past how long a file stays listed (the
   * window, and the reconnect grace and ended retention during which an idle playlist still lists it).
   * The stream document and states are written again every third of it while the stream lasts.
   */
  readonly ttlMs: number;
  /** Bytes of files queued per stream; past it new files are dropped (and counted). Default 16 MiB. */
  readonly maxQueuedBytes?: number;
  /** A store call that has not answered after this long counts as failed, ms. Default 5000. */
  readonly writeTimeoutMs?: number;
}

/** What the mirror counts (the metrics). */
export interface MirrorCounters {
  files: number;
  bytes: number;
  states: number;
  docs: number;
  /** Bytes of the states and documents written (JSON). */
  stateBytes: number;
  /** Files not written: the stream's queue was full (the store slow or down). */
  dropped: number;
  /** Store calls that failed or timed out. */
  failed: number;
  /** Writes the store refused: this node's epoch is no longer the stream's. */
  fenced: number;
  deleted: number;
  /** Whole windows written again (after an outage, or the lease taken again). */
  resyncs: number;
}

interface QueuedFile {
  readonly rendition: string;
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** One stream's writes, in order: files before the states that list them, the document before the states. */
interface StreamQueue {
  readonly streamId: string;
  pkg: WatchedPackage;
  readonly files: QueuedFile[];
  queuedBytes: number;
  /** The latest state per rendition not yet written (a newer one replaces it). */
  readonly states: Map<string, string>;
  /** The last state written or queued per rendition, written again by the keep-alive. */
  readonly lastStates: Map<string, string>;
  readonly versions: Map<string, number>;
  readonly releases: Map<string, number>;
  docVersion: number;
  /** The document's text (without its version) and the document queued or last written. */
  docText: string;
  docJson: string;
  docDirty: boolean;
  deleteRequested: boolean;
  draining: Promise<void> | undefined;
  keepAlive: NodeJS.Timeout | undefined;
  fencedLogged: boolean;
  /** The lease epoch of the last write: a new one (the lease taken again) means the store may have lost it all. */
  epoch: number | undefined;
  /** Set while the whole window is being queued again. */
  resyncing: boolean;
}

const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
const DEFAULT_WRITE_TIMEOUT_MS = 5000;

/** Follows the packager (its WindowWatcher) and writes every live window to the store. */
export class WindowMirror implements WindowWatcher {
  readonly counters: MirrorCounters = {
    files: 0,
    bytes: 0,
    states: 0,
    docs: 0,
    stateBytes: 0,
    dropped: 0,
    failed: 0,
    fenced: 0,
    deleted: 0,
    resyncs: 0,
  };
  readonly #opts: WindowMirrorOptions;
  readonly #log: Logger;
  readonly #maxQueuedBytes: number;
  readonly #streams = new Map<string, StreamQueue>();
  /** Packages replaced by a new run or closed: what they still say is not written. */
  readonly #retired = new WeakSet<WatchedPackage>();
  #outage = false;
  #closed = false;

  constructor(opts: WindowMirrorOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  }

  changed(pkg: WatchedPackage, rendition: LiveRendition, change: WindowChange): void {
    if (this.#closed || this.#retired.has(pkg)) return;
    const q = this.#queue(pkg);
    const name = rendition.name;
    if (change.file) {
      const bytes = change.file.bytes;
      if (q.queuedBytes + bytes.byteLength > this.#maxQueuedBytes) {
        this.counters.dropped++;
      } else {
        q.files.push({ rendition: name, name: change.file.name, bytes });
        q.queuedBytes += bytes.byteLength;
      }
    }
    if (change.kind === 'session-end' || change.kind === 'end' || change.kind === 'close') {
      q.releases.set(name, (q.releases.get(name) ?? 0) + 1);
    }
    // The document first: a rendition's state names the document version it goes with.
    const doc = streamDoc(pkg, 0);
    const docText = JSON.stringify(doc);
    if (docText !== q.docText) {
      q.docText = docText;
      q.docVersion = nextVersion(q.docVersion);
      q.docJson = JSON.stringify({ ...doc, version: q.docVersion });
      q.docDirty = true;
    }
    const state = JSON.stringify(renditionDoc(pkg, rendition, q.docVersion, q.releases.get(name) ?? 0));
    q.states.set(name, state);
    q.lastStates.set(name, state);
    this.#drain(q);
  }

  released(pkg: WatchedPackage, why: 'expired' | 'replaced' | 'closed'): void {
    if (why !== 'expired') {
      this.#retired.add(pkg);
      return;
    }
    const q = this.#streams.get(pkg.streamId);
    if (!q || q.pkg !== pkg) return;
    // The run ended and its retention is over: its window goes from the store, after what is queued.
    this.#retired.add(pkg);
    q.deleteRequested = true;
    this.#drain(q);
  }

  /** Streams with writes queued or in flight. */
  get pending(): number {
    let n = 0;
    for (const q of this.#streams.values()) if (q.draining) n++;
    return n;
  }

  /** Resolves once every write queued so far is done (or failed). */
  async flush(): Promise<void> {
    for (;;) {
      const busy = [...this.#streams.values()].map((q) => q.draining).filter((d) => d !== undefined);
      if (busy.length === 0) return;
      await Promise.all(busy);
    }
  }

  /** Stop taking changes; wait up to timeoutMs for the queued writes. Idempotent. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const q of this.#streams.values()) clearInterval(q.keepAlive);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.flush(), timeout]);
    clearTimeout(timer);
  }

  #queue(pkg: WatchedPackage): StreamQueue {
    let q = this.#streams.get(pkg.streamId);
    if (!q) {
      q = {
        streamId: pkg.streamId,
        pkg,
        files: [],
        queuedBytes: 0,
        states: new Map(),
        lastStates: new Map(),
        versions: new Map(),
        releases: new Map(),
        docVersion: 0,
        docText: '',
        docJson: '',
        docDirty: false,
        deleteRequested: false,
        draining: undefined,
        keepAlive: undefined,
        fencedLogged: false,
        epoch: undefined,
        resyncing: false,
      };
      this.#streams.set(pkg.streamId, q);
      const every = Math.max(1000, Math.floor(this.#opts.ttlMs / 3));
      const queue = q;
      q.keepAlive = setInterval(() => this.#keepAlive(queue), every);
      q.keepAlive.unref();
    } else if (q.pkg !== pkg) {
      // A new run of the stream: it writes over the same keys, so the old run's window is not deleted.
      q.pkg = pkg;
      q.deleteRequested = false;
      q.lastStates.clear();
    }
    return q;
  }

  /** An idle stream (between sessions, ended) writes nothing: its document and states must not expire. */
  #keepAlive(q: StreamQueue): void {
    if (q.deleteRequested || q.draining) return;
    q.docDirty = q.docJson !== '';
    for (const [name, state] of q.lastStates) q.states.set(name, state);
    this.#drain(q);
  }

  #drain(q: StreamQueue): void {
    if (q.draining) return;
    let waiting = false;
    q.draining = this.#run(q)
      .then((w) => {
        waiting = w;
      })
      .finally(() => {
        q.draining = undefined;
        if (!(q.files.length > 0 || q.states.size > 0 || q.docDirty)) return;
        // Before this node holds the stream's lease nothing can be written: what is queued waits for it
        // (bounded by maxQueuedBytes), so the init and first parts of a session are not lost.
        if (waiting) setTimeout(() => this.#drain(q), LEASE_WAIT_RETRY_MS).unref();
        else this.#drain(q);
      });
  }

  /** Writes what is queued; true when it stopped because this node holds no lease for the stream yet. */
  async #run(q: StreamQueue): Promise<boolean> {
    const { store, ttlMs } = this.#opts;
    const id = q.streamId;
    for (;;) {
      const epoch = this.#opts.epochOf(id);
      // The lease was taken again (it ran out in an outage, or a restarted Redis lost it): what the store
      // held of this window may be gone, so all of it is written again under the new epoch.
      if (epoch !== undefined && q.epoch !== undefined && epoch !== q.epoch) void this.#resync(q);
      if (epoch !== undefined) q.epoch = epoch;
      if (epoch === undefined && !q.deleteRequested) {
        if (!this.#closed) return true;
        // Closing without ever holding the lease: nothing of it can be written.
        q.files.length = 0;
        q.queuedBytes = 0;
        q.states.clear();
        q.docDirty = false;
        return false;
      }
      const file = q.files.shift();
      if (file) {
        q.queuedBytes -= file.bytes.byteLength;
        if (epoch === undefined) continue;
        if (await this.#call(q, () => store.putFile(id, file.rendition, file.name, file.bytes, epoch, ttlMs))) {
          this.counters.files++;
          this.counters.bytes += file.bytes.byteLength;
        }
        continue;
      }
      if (q.docDirty) {
        q.docDirty = false;
        const json = q.docJson;
        if (epoch !== undefined && (await this.#call(q, () => store.putStream(id, json, epoch, ttlMs)))) {
          this.counters.docs++;
          this.counters.stateBytes += json.length;
        }
        continue;
      }
      const next = q.states.entries().next();
      if (!next.done) {
        const [rendition, json] = next.value;
        q.states.delete(rendition);
        if (epoch === undefined) continue;
        const version = nextVersion(q.versions.get(rendition) ?? 0);
        q.versions.set(rendition, version);
        if (await this.#call(q, () => store.putState(id, rendition, { epoch, version, json }, ttlMs))) {
          this.counters.states++;
          this.counters.stateBytes += json.length;
        }
        continue;
      }
      if (q.deleteRequested) {
        q.deleteRequested = false;
        clearInterval(q.keepAlive);
        if (this.#streams.get(id) === q) this.#streams.delete(id);
        if (await this.#call(q, () => store.deleteStream(id))) this.counters.deleted++;
      }
      return false;
    }
  }

  /** Queue again everything the window lists now, then its document and states. */
  async #resync(q: StreamQueue): Promise<void> {
    if (q.resyncing || q.deleteRequested || this.#closed) return;
    q.resyncing = true;
    try {
      const files: QueuedFile[] = [];
      for (const r of q.pkg.renditions) {
        const state = r.state([]);
        const listed = partsListed(state);
        const names = new Set<string>();
        state.segments.forEach((s, i) => {
          names.add(s.initUri).add(s.uri);
          if (listed[i]) for (const p of s.parts) names.add(p.uri);
        });
        if (state.pending) {
          names.add(state.pending.initUri);
          for (const p of state.pending.parts) names.add(p.uri);
        }
        for (const name of names) {
          const found = await r.file(name, 0);
          if (found) files.push({ rendition: r.name, name, bytes: found.bytes });
        }
      }
      for (const f of files) {
        if (q.queuedBytes + f.bytes.byteLength > this.#maxQueuedBytes) {
          this.counters.dropped++;
          continue;
        }
        q.files.push(f);
        q.queuedBytes += f.bytes.byteLength;
      }
      q.docDirty = q.docJson !== '';
      for (const [name, state] of q.lastStates) if (!q.states.has(name)) q.states.set(name, state);
      this.counters.resyncs++;
      this.#drain(q);
    } finally {
      q.resyncing = false;
    }
  }

  /** One store call: false when it failed, timed out or was refused (each counted, an outage logged once). */
  async #call(q: StreamQueue, call: () => Promise<boolean | void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = this.#opts.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the live window store in ${timeoutMs} ms`)), timeoutMs);
      });
      const ok = await Promise.race([call(), timeout]);
      if (this.#outage) {
        this.#outage = false;
        this.#log.info({ dropped: this.counters.dropped, failed: this.counters.failed }, 'live window store answers again');
        // What failed during the outage was dropped, and a restarted store may hold nothing: every window
        // is written again (its inits, listed segments and parts, the document, the states).
        for (const other of this.#streams.values()) void this.#resync(other);
      }
      if (ok === false) {
        this.counters.fenced++;
        if (!q.fencedLogged) {
          q.fencedLogged = true;
          this.#log.warn({ stream: q.streamId }, 'live window store refused a write: this node no longer owns the stream');
        }
        return false;
      }
      return true;
    } catch (err) {
      this.counters.failed++;
      if (!this.#outage) {
        this.#outage = true;
        this.#log.warn({ err, stream: q.streamId }, 'live window store failed: other origins fall behind until it answers');
      }
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Versions grow by one per write and never fall behind the clock (µs), so a newer run of the stream, or
 * a node that takes it over, writes versions above those already stored.
 */
function nextVersion(prev: number): number {
  return Math.max(prev + 1, Date.now() * 1000);
}
