/**
 * In-process coordination: one node, nothing leaves the process. Same semantics as the Redis one (leases with
 * fencing epochs, TTLs, fire-and-forget announcements), so the contract suite runs against both. Expiry is
 * lazy, read against an injectable clock (a fake clock makes TTL tests instant); the window's files are
 * also swept on writes so a stream that nobody reads does not grow.
 */
import { EventEmitter } from 'node:events';
import { monotonicClock, type Clock, type Logger } from '../core/index.js';
import type {
  Coordination,
  Lease,
  LiveWindowStore,
  NodeCommand,
  NodeInfo,
  SharedLiveStatus,
  StoredRenditionState,
  StreamEvent,
  WindowAnnouncement,
} from './types.js';

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** Deliver to listeners on a later microtask, as a pub/sub message would arrive: never inside the sender's call. */
function emitLater(emitter: EventEmitter, channel: string, payload: unknown, logger: Logger | undefined): void {
  queueMicrotask(() => {
    try {
      emitter.emit(channel, payload);
    } catch (err) {
      logger?.error({ err, channel }, 'coordination handler threw');
    }
  });
}

function listen<T>(emitter: EventEmitter, channel: string, handler: (payload: T) => void): () => void {
  const fn = (payload: T) => handler(payload);
  emitter.on(channel, fn);
  return () => emitter.off(channel, fn);
}

export interface MemoryCoordinationOptions {
  clock?: Clock;
  logger?: Logger;
}

/** The value under `key` unless it expired at `now` (an expired entry is removed as it is found). */
function unexpired<T>(map: Map<string, Expiring<T>>, key: string, now: number): T | undefined {
  const e = map.get(key);
  if (!e) return undefined;
  if (now >= e.expiresAt) {
    map.delete(key);
    return undefined;
  }
  return e.value;
}

export class MemoryCoordination implements Coordination {
  readonly kind = 'memory' as const;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #nodes = new Map<string, NodeInfo>();
  readonly #leases = new Map<string, Expiring<Lease>>();
  /** Last epoch handed out per stream; survives the lease (epochs never go back). */
  readonly #epochs = new Map<string, number>();
  #highest = 0;
  readonly #status = new Map<string, Expiring<SharedLiveStatus>>();
  readonly #bus = new EventEmitter();

  constructor(opts: MemoryCoordinationOptions = {}) {
    this.#clock = opts.clock ?? monotonicClock;
    this.#logger = opts.logger;
    this.#bus.setMaxListeners(0);
  }

  /** The stream's current fencing epoch (0 when it has none); MemoryWindowStore fences against it. */
  currentEpoch(streamId: string): number {
    return this.#epochs.get(streamId) ?? 0;
  }

  /** Forget a stream's ownership history, unless a node holds its lease (MemoryWindowStore.deleteStream). */
  forgetStream(streamId: string): boolean {
    if (this.#live(this.#leases, streamId)) return false;
    this.#leases.delete(streamId);
    this.#status.delete(streamId);
    this.#epochs.delete(streamId);
    return true;
  }

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    // In-process the node lives as long as the process: its heartbeat is implicit until close().
    this.#nodes.set(info.nodeId, info);
  }

  async listNodes(): Promise<NodeInfo[]> {
    return [...this.#nodes.values()];
  }

  async acquireLease(streamId: string, nodeId: string, ttlMs: number, opts: { takeover?: boolean } = {}): Promise<Lease | undefined> {
    const held = this.#live(this.#leases, streamId);
    if (held && held.nodeId !== nodeId && !opts.takeover) return undefined;
    const lease: Lease = { streamId, nodeId, epoch: this.#nextEpoch(streamId) };
    this.#leases.set(streamId, { value: lease, expiresAt: this.#clock.now() + ttlMs });
    return lease;
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<boolean> {
    if (!this.#holds(lease)) return false;
    this.#leases.set(lease.streamId, { value: lease, expiresAt: this.#clock.now() + ttlMs });
    return true;
  }

  async releaseLease(lease: Lease): Promise<void> {
    if (this.#holds(lease)) this.#leases.delete(lease.streamId);
  }

  async leaseOf(streamId: string): Promise<Lease | undefined> {
    return this.#live(this.#leases, streamId);
  }

  async setLiveStatus(lease: Lease, status: SharedLiveStatus, ttlMs: number): Promise<boolean> {
    if (!this.#holds(lease)) return false;
    this.#status.set(lease.streamId, { value: status, expiresAt: this.#clock.now() + ttlMs });
    return true;
  }

  async clearLiveStatus(lease: Lease): Promise<void> {
    // Works after the lease was released (end of a run), never for a node that lost the stream to a newer epoch.
    if (lease.epoch >= this.currentEpoch(lease.streamId)) this.#status.delete(lease.streamId);
  }

  async liveStatus(streamId: string): Promise<SharedLiveStatus | undefined> {
    return this.#live(this.#status, streamId);
  }

  async sendCommand(nodeId: string, command: NodeCommand): Promise<void> {
    emitLater(this.#bus, `cmd:${nodeId}`, command, this.#logger);
  }

  onCommand(nodeId: string, handler: (command: NodeCommand) => void): () => void {
    return listen(this.#bus, `cmd:${nodeId}`, handler);
  }

  async publishEvent(event: StreamEvent): Promise<void> {
    emitLater(this.#bus, 'event', event, this.#logger);
  }

  onEvent(handler: (event: StreamEvent) => void): () => void {
    return listen(this.#bus, 'event', handler);
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.#nodes.clear();
    this.#bus.removeAllListeners();
  }

  #nextEpoch(streamId: string): number {
    // A stream without history starts from the clock in µs, as the Redis store does, and never below an epoch
    // this process handed out: a node still holding an epoch from before deleteStream() can never outrank a new
    // run's lease.
    const prev = this.#epochs.get(streamId) ?? Math.max(Math.floor(this.#clock.now()) * 1000, this.#highest);
    const epoch = prev + 1;
    this.#epochs.set(streamId, epoch);
    this.#highest = Math.max(this.#highest, epoch);
    return epoch;
  }

  #holds(lease: Lease): boolean {
    const cur = this.#live(this.#leases, lease.streamId);
    return cur !== undefined && cur.nodeId === lease.nodeId && cur.epoch === lease.epoch;
  }

  #live<T>(map: Map<string, Expiring<T>>, key: string): T | undefined {
    return unexpired(map, key, this.#clock.now());
  }
}

export interface MemoryWindowStoreOptions {
  /** Where the fencing epochs come from; without one, writes are fenced against the highest epoch seen. */
  coord?: MemoryCoordination;
  clock?: Clock;
  logger?: Logger;
}

interface StreamWindow {
  files: Map<string, Expiring<Uint8Array>>;
  states: Map<string, Expiring<StoredRenditionState>>;
  doc?: Expiring<string>;
  writes: number;
}

/** Sweep a stream's expired files every this many writes (keeps memory bounded without a timer). */
const SWEEP_EVERY = 64;

export class MemoryWindowStore implements LiveWindowStore {
  readonly #coord: MemoryCoordination | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #streams = new Map<string, StreamWindow>();
  readonly #seenEpochs = new Map<string, number>();
  readonly #bus = new EventEmitter();

  constructor(opts: MemoryWindowStoreOptions = {}) {
    this.#coord = opts.coord;
    this.#clock = opts.clock ?? monotonicClock;
    this.#logger = opts.logger;
    this.#bus.setMaxListeners(0);
  }

  async putFile(streamId: string, rendition: string, name: string, bytes: Uint8Array, epoch: number, ttlMs: number): Promise<boolean> {
    if (!this.#admit(streamId, epoch)) return false;
    const w = this.#window(streamId);
    w.files.set(`${rendition}/${name}`, { value: bytes, expiresAt: this.#clock.now() + ttlMs });
    if (++w.writes % SWEEP_EVERY === 0) this.#sweep(w);
    return true;
  }

  async getFile(streamId: string, rendition: string, name: string): Promise<Uint8Array | undefined> {
    const w = this.#streams.get(streamId);
    return w && this.#live(w.files, `${rendition}/${name}`);
  }

  async putState(streamId: string, rendition: string, state: StoredRenditionState, ttlMs: number): Promise<boolean> {
    if (!this.#admit(streamId, state.epoch)) return false;
    this.#window(streamId).states.set(rendition, { value: state, expiresAt: this.#clock.now() + ttlMs });
    const a: WindowAnnouncement = { streamId, rendition, version: state.version };
    emitLater(this.#bus, streamId, a, this.#logger);
    return true;
  }

  async getState(streamId: string, rendition: string): Promise<StoredRenditionState | undefined> {
    const w = this.#streams.get(streamId);
    return w && this.#live(w.states, rendition);
  }

  async putStream(streamId: string, json: string, epoch: number, ttlMs: number): Promise<boolean> {
    if (!this.#admit(streamId, epoch)) return false;
    this.#window(streamId).doc = { value: json, expiresAt: this.#clock.now() + ttlMs };
    return true;
  }

  async getStream(streamId: string): Promise<string | undefined> {
    const doc = this.#streams.get(streamId)?.doc;
    if (!doc) return undefined;
    return this.#clock.now() < doc.expiresAt ? doc.value : undefined;
  }

  subscribe(streamId: string, handler: (a: WindowAnnouncement) => void): () => void {
    return listen(this.#bus, streamId, handler);
  }

  async deleteStream(streamId: string): Promise<void> {
    // A publisher that came back holds the lease again: the window is its run's, not ours to delete.
    if (this.#coord && !this.#coord.forgetStream(streamId)) return;
    this.#streams.delete(streamId);
    this.#seenEpochs.delete(streamId);
  }

  #admit(streamId: string, epoch: number): boolean {
    const current = this.#coord ? this.#coord.currentEpoch(streamId) : (this.#seenEpochs.get(streamId) ?? 0);
    if (epoch < current) return false;
    if (!this.#coord) this.#seenEpochs.set(streamId, epoch);
    return true;
  }

  #window(streamId: string): StreamWindow {
    let w = this.#streams.get(streamId);
    if (!w) {
      w = { files: new Map(), states: new Map(), writes: 0 };
      this.#streams.set(streamId, w);
    }
    return w;
  }

  #sweep(w: StreamWindow): void {
    const now = this.#clock.now();
    for (const [k, e] of w.files) if (now >= e.expiresAt) w.files.delete(k);
  }

  #live<T>(map: Map<string, Expiring<T>>, key: string): T | undefined {
    return unexpired(map, key, this.#clock.now());
  }
}
