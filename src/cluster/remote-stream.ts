/**
 * A remote stream: one live stream as an origin that does not ingest it sees it in the shared store (its
 * document and rendition states, kept fresh by announcements and, while requests are held, by a short
 * re-check timer), answering as the ingesting node's StreamPackage and LiveRendition would.
 */
import { AppError, ClosedError, monotonicNow, type Logger } from '../core/index.js';
import type { LiveWindowStore, WindowAnnouncement } from '../coord/index.js';
import type { OriginPackage, RenditionReport } from '../packager/index.js';
import { Refresh } from './refresh.js';
import { RemoteRendition } from './remote-rendition.js';
import { parseRenditionDoc, parseStreamDoc, type RenditionDoc, type StreamDoc } from './window-state.js';

export interface RemoteStreamDeps {
  readonly store: LiveWindowStore;
  readonly logger: Logger;
  readonly recheckMs: number;
  readonly maxHeldRequests: number;
  /** A file of the stream's window, through the origin's cache. */
  readonly readFile: (rendition: string, name: string) => Promise<Uint8Array | undefined>;
}

interface Waiter {
  readonly ready: () => boolean;
  readonly resolve: () => void;
  /** It waits on the stream document (a start waiter), not only on rendition states. */
  readonly doc: boolean;
}

/** Options of one held wait. */
interface Hold {
  /** The rendition it counts against (held playlist and hint requests), or none for a start waiter. */
  readonly rendition?: string;
  readonly ready: () => boolean;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export class RemoteStream implements OriginPackage {
  readonly streamId: string;
  readonly #deps: RemoteStreamDeps;
  #doc: StreamDoc | undefined;
  #docAt = 0;
  readonly #states = new Map<string, { version: number; doc: RenditionDoc }>();
  readonly #renditions = new Map<string, RemoteRendition>();
  readonly #waiters = new Set<Waiter>();
  readonly #held = new Map<string, number>();
  #startWaiters = 0;
  readonly #docRefresh: Refresh;
  readonly #stateRefresh = new Map<string, Refresh>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;
  #failing = false;
  /** The stream's document is gone from the store (deleted, expired), or the view was closed. */
  gone = false;
  lastUsed = monotonicNow();

  constructor(streamId: string, deps: RemoteStreamDeps) {
    this.streamId = streamId;
    this.#deps = deps;
    this.#docRefresh = new Refresh(() => this.#readDoc());
  }

  /** Reads the document if older than maxAgeMs (the first time, every state too); false: not in the store. */
  async load(maxAgeMs: number): Promise<boolean> {
    if (this.#doc && monotonicNow() - this.#docAt < maxAgeMs) return !this.gone;
    const first = this.#doc === undefined;
    await this.#docRefresh.run();
    if (!this.#doc || this.gone) return false;
    if (first) {
      // Subscribed before the states are read: no change falls between the two.
      this.#unsubscribe ??= this.#deps.store.subscribe(this.streamId, (a) => this.#announced(a));
      await this.refreshAll();
    }
    return !this.gone;
  }

  /** Requests held on the stream: blocking reloads, hinted parts, start waiters. */
  get held(): number {
    return this.#waiters.size;
  }

  state(rendition: string): RenditionDoc | undefined {
    return this.#states.get(rendition)?.doc;
  }

  /** A version that changes with the rendition's state (the render cache's key). */
  version(rendition: string): number {
    return this.#states.get(rendition)?.version ?? -1;
  }

  /** Reads every rendition's state; resolves after reads that started after the call. */
  async refreshAll(): Promise<void> {
    const names = new Set(this.#doc?.renditions ?? []);
    for (const n of this.#states.keys()) names.add(n);
    await Promise.all([...names].map((n) => this.refreshState(n)));
  }

  refreshState(rendition: string): Promise<void> {
    let r = this.#stateRefresh.get(rendition);
    if (!r) {
      r = new Refresh(() => this.#readState(rendition));
      this.#stateRefresh.set(rendition, r);
    }
    return r.run();
  }

  // ---- OriginPackage ----

  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const doc = this.#doc;
    if (signal?.aborted || !doc || doc.playable || doc.closing) return Promise.resolve();
    // As the packager's start waiters: past the limit, answer at once with what there is.
    if (this.#startWaiters >= this.#deps.maxHeldRequests) return Promise.resolve();
    this.#startWaiters++;
    const ready = () => this.#doc === undefined || this.#doc.playable || this.#doc.closing;
    return this.#wait({ ready, timeoutMs, signal }, true).finally(() => this.#startWaiters--);
  }

  multivariant(): string | undefined {
    return this.#doc?.multivariant;
  }

  rendition(name: string): RemoteRendition | undefined {
    if (!this.#doc?.renditions.includes(name)) return undefined;
    let r = this.#renditions.get(name);
    if (!r) {
      r = new RemoteRendition(this, name, this.#deps);
      this.#renditions.set(name, r);
    }
    return r;
  }

  reportsFor(name: string): RenditionReport[] {
    const out: RenditionReport[] = [];
    for (const r of this.#doc?.renditions ?? []) {
      const st = this.state(r);
      if (r === name || !st || st.playlist.segments.length === 0) continue;
      // A rung whose last segment is a gap has no part to report: LAST-PART is then left out.
      out.push({ uri: `../${r}/index.m3u8`, lastMsn: st.last.msn, lastPart: st.last.part >= 0 ? st.last.part : undefined });
    }
    return out;
  }

  /**
   * Holds a request until `ready` says the state has what it waits for (after an announcement or a
   * re-check), the stream goes, or timeoutMs; rejects with ClosedError when `signal` aborts. Counted against
   * the rendition's limit of held requests, as on the ingesting node.
   */
  hold(h: Hold & { rendition: string }): Promise<void> {
    const n = this.#held.get(h.rendition) ?? 0;
    if (n >= this.#deps.maxHeldRequests) {
      throw new AppError('E_LIMIT_EXCEEDED', `too many requests held on rendition ${h.rendition} (${this.#deps.maxHeldRequests})`);
    }
    this.#held.set(h.rendition, n + 1);
    return this.#wait(h, false).finally(() => this.#held.set(h.rendition, (this.#held.get(h.rendition) ?? 1) - 1));
  }

  /** Forget the stream (unsubscribe, stop re-checking); held requests are answered. Idempotent. */
  close(): void {
    this.gone = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#check();
  }

  #wait(h: Hold, doc: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (h.signal?.aborted) return doc ? resolve() : reject(new ClosedError('client request'));
      const done = () => {
        clearTimeout(timer);
        h.signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
        if (this.#waiters.size === 0) this.#stopTimer();
      };
      const waiter: Waiter = { ready: h.ready, resolve: () => (done(), resolve()), doc };
      // A request the stream does not satisfy in time is answered with what there is; the client asks again.
      const timer = setTimeout(waiter.resolve, h.timeoutMs);
      const onAbort = () => {
        done();
        if (doc) resolve();
        else reject(new ClosedError('client request'));
      };
      h.signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      this.#startTimer();
    });
  }

  #check(): void {
    for (const w of [...this.#waiters]) if (this.gone || w.ready()) w.resolve();
  }

  /** Pub/sub is fire-and-forget: while a request is held, the store is read again on a short timer too. */
  #startTimer(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick(), this.#deps.recheckMs);
    this.#timer.unref();
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.gone) return;
    this.#ticking = true;
    try {
      if ([...this.#waiters].some((w) => w.doc)) await this.#docRefresh.run();
      await this.refreshAll();
    } catch (err) {
      this.#failed(err);
    } finally {
      this.#ticking = false;
      this.#check();
    }
  }

  #announced(a: WindowAnnouncement): void {
    const cur = this.#states.get(a.rendition);
    if (this.gone || (cur && cur.version >= a.version)) return;
    this.refreshState(a.rendition).then(
      () => this.#check(),
      (err: unknown) => this.#failed(err),
    );
  }

  async #readDoc(): Promise<void> {
    const json = await this.#deps.store.getStream(this.streamId);
    const doc = json === undefined ? undefined : parseStreamDoc(json);
    this.#failing = false;
    if (!doc) {
      // Deleted (the run ended and its retention is over) or expired (its node is gone).
      if (this.#doc) this.close();
      this.#doc = undefined;
      return;
    }
    this.#doc = doc;
    this.#docAt = monotonicNow();
  }

  async #readState(rendition: string): Promise<void> {
    const stored = await this.#deps.store.getState(this.streamId, rendition);
    this.#failing = false;
    if (!stored) {
      this.#states.delete(rendition);
      return;
    }
    if (this.#states.get(rendition)?.version !== stored.version) {
      const doc = parseRenditionDoc(stored.json);
      if (!doc) return;
      this.#states.set(rendition, { version: stored.version, doc });
      // Written after a newer stream document (a rendition added, the multivariant playlist changed).
      if (this.#doc && doc.doc > this.#doc.version) await this.#docRefresh.run();
    }
    this.#check();
  }

  #failed(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#deps.logger.warn({ err, stream: this.streamId }, 'live window store read failed; held requests re-check on their timer');
  }
}
