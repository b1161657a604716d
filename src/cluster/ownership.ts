/**
 * Stream ownership on an ingest node: while a stream's publisher is connected here, this node holds the
 * stream's lease in the coordination (a fencing epoch that grows at every acquisition), renews it, and
 * publishes the stream's live status under it. A publisher that arrives here for a stream another node
 * holds takes the lease over (as on one node, the newer publisher wins) and tells that node to let go;
 * a node whose lease was taken over, or could not be renewed before it ran out, ends its publisher, so two
 * nodes never both write one stream's window. Whatever this node writes to the shared window carries the
 * epoch from `epochOf`, and the store refuses writes under an epoch that lost.
 *
 * A coordination that is down (Redis outage) is survived: the publisher goes on and this node keeps
 * serving its own viewers; acquisition and renewal are retried on the renew timer, logged once per outage.
 */
import type { Logger } from '../core/index.js';
import type { Coordination, Lease, NodeCommand } from '../coord/index.js';

/** What ownership uses of the stream hub. */
export interface OwnedHub {
  on(event: 'session-start', listener: (streamId: string) => void): unknown;
  on(event: 'stream-end', listener: (streamId: string) => void): unknown;
  off(event: 'session-start', listener: (streamId: string) => void): unknown;
  off(event: 'stream-end', listener: (streamId: string) => void): unknown;
  /** End a live stream now (its publisher is closed, its playlists end). */
  end(streamId: string, reason: string): void;
  kick(streamId: string, reason: string): boolean;
  status(streamId: string): { protocol: string; liveSince: number; bitrateKbps: number } | undefined;
}

export interface OwnershipOptions {
  readonly coord: Coordination;
  readonly hub: OwnedHub;
  readonly nodeId: string;
  /** How long a lease lives without a renewal; renewed every third of it. */
  readonly leaseMs: number;
  readonly logger: Logger;
}

interface Held {
  lease: Lease | undefined;
  /** Set while an acquisition is in flight, so one session start makes one. */
  acquiring: Promise<void> | undefined;
}

export class StreamOwnership {
  readonly #o: OwnershipOptions;
  readonly #held = new Map<string, Held>();
  /**
   * The epoch of each stream's last lease here, kept after it was released or lost: the window's last
   * writes (its ENDLIST, its final states) come after the stream ended. Writes under an epoch that lost
   * are refused by the store, so keeping it lets nothing through that fencing would not stop.
   */
  readonly #lastEpoch = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #stopCommands: (() => void) | undefined;
  #failing = false;
  #closed = false;
  readonly #onSession = (streamId: string) => this.#claim(streamId);
  readonly #onEnd = (streamId: string) => void this.#let(streamId);

  constructor(opts: OwnershipOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#o.hub.on('session-start', this.#onSession);
    this.#o.hub.on('stream-end', this.#onEnd);
    this.#stopCommands = this.#o.coord.onCommand(this.#o.nodeId, (c) => this.#command(c));
    this.#timer = setInterval(() => void this.#renewAll(), Math.max(50, Math.floor(this.#o.leaseMs / 3)));
    this.#timer.unref();
  }

  /** The epoch this node writes a stream's window under (its last lease's); undefined if it never held one. */
  epochOf(streamId: string): number | undefined {
    return this.#held.get(streamId)?.lease?.epoch ?? this.#lastEpoch.get(streamId);
  }

  /**
   * Resolves once the session start of `streamId` here (announced right after its stream start) has taken
   * the stream's lease, or failed to: true if this node holds it then.
   */
  async whenLeased(streamId: string): Promise<boolean> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.#held.get(streamId)?.acquiring;
    return this.owns(streamId);
  }

  /** Whether this node holds the stream's lease now. */
  owns(streamId: string): boolean {
    return this.#held.get(streamId)?.lease !== undefined;
  }

  /** The streams this node holds a lease for. */
  get owned(): number {
    let n = 0;
    for (const h of this.#held.values()) if (h.lease) n++;
    return n;
  }

  /** Releases every lease (a clean shutdown hands the streams back at once rather than at their expiry). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#stopCommands?.();
    this.#o.hub.off('session-start', this.#onSession);
    this.#o.hub.off('stream-end', this.#onEnd);
    await Promise.all([...this.#held.keys()].map((id) => this.#let(id)));
  }

  #claim(streamId: string): void {
    if (this.#closed) return;
    const h = this.#held.get(streamId) ?? { lease: undefined, acquiring: undefined };
    this.#held.set(streamId, h);
    // A new session of a stream this node already owns keeps its lease (a reconnect to the same node).
    if (h.lease || h.acquiring) return;
    h.acquiring = this.#acquire(streamId, h).finally(() => (h.acquiring = undefined));
  }

  async #acquire(streamId: string, h: Held): Promise<void> {
    const { coord, nodeId, leaseMs } = this.#o;
    try {
      const before = await coord.leaseOf(streamId);
      const lease = await coord.acquireLease(streamId, nodeId, leaseMs, { takeover: true });
      if (!lease) return;
      if (this.#held.get(streamId) !== h || this.#closed) {
        // The stream ended (or this node closed) while acquiring: hand it straight back.
        await coord.releaseLease(lease);
        return;
      }
      h.lease = lease;
      this.#lastEpoch.delete(streamId);
      this.#lastEpoch.set(streamId, lease.epoch);
      // Bounded: the oldest streams' last epochs go first (their windows were long deleted).
      if (this.#lastEpoch.size > 10_000) this.#lastEpoch.delete(this.#lastEpoch.keys().next().value!);
      this.#recovered();
      this.#o.logger.info({ stream: streamId, epoch: lease.epoch, from: before?.nodeId }, 'cluster: took the stream lease');
      if (before && before.nodeId !== nodeId) {
        await coord.sendCommand(before.nodeId, { type: 'takeover', streamId, epoch: lease.epoch, byNode: nodeId });
      }
      await this.#publishStatus(streamId, lease);
    } catch (err) {
      this.#failed(err);
    }
  }

  async #let(streamId: string): Promise<void> {
    const h = this.#held.get(streamId);
    this.#held.delete(streamId);
    if (!h) return;
    await h.acquiring;
    const lease = h.lease;
    if (!lease) return;
    try {
      await this.#o.coord.clearLiveStatus(lease);
      await this.#o.coord.releaseLease(lease);
    } catch (err) {
      // The lease runs out by itself; nobody is fenced out by a lease that is not renewed.
      this.#failed(err);
    }
  }

  async #renewAll(): Promise<void> {
    for (const [streamId, h] of this.#held) {
      if (h.acquiring) continue;
      if (!h.lease) {
        // No lease yet (the coordination was down at the session's start): try again.
        this.#claim(streamId);
        continue;
      }
      const lease = h.lease;
      try {
        const kept = await this.#o.coord.renewLease(lease, this.#o.leaseMs);
        this.#recovered();
        if (!kept) {
          // Gone without another owner (it ran out during a Redis outage, or a restarted Redis lost it): the
          // publisher is still here, so the stream is taken again, under a new epoch. Held by another node: lost.
          const now = await this.#o.coord.leaseOf(streamId);
          if (now && now.nodeId !== this.#o.nodeId) {
            this.#lost(streamId, 'the stream lease was lost (another node holds it)');
            continue;
          }
          h.lease = undefined;
          this.#claim(streamId);
          continue;
        }
        await this.#publishStatus(streamId, lease);
      } catch (err) {
        this.#failed(err);
      }
    }
  }

  #command(c: NodeCommand): void {
    if (c.type === 'disconnect') {
      this.#o.hub.kick(c.streamId, c.reason);
      return;
    }
    const mine = this.#held.get(c.streamId)?.lease;
    if (mine && mine.epoch < c.epoch) this.#lost(c.streamId, `node ${c.byNode} took the stream over`);
  }

  /** This node may no longer write the stream: its publisher goes, the stream ends here. */
  #lost(streamId: string, reason: string): void {
    const h = this.#held.get(streamId);
    if (h) h.lease = undefined;
    this.#held.delete(streamId);
    this.#o.logger.warn({ stream: streamId, reason }, 'cluster: ending the stream here');
    this.#o.hub.end(streamId, reason);
  }

  async #publishStatus(streamId: string, lease: Lease): Promise<void> {
    const s = this.#o.hub.status(streamId);
    if (!s) return;
    const status = { streamId, nodeId: this.#o.nodeId, protocol: s.protocol, startedAt: s.liveSince, bitrateKbps: s.bitrateKbps };
    await this.#o.coord.setLiveStatus(lease, status, this.#o.leaseMs);
  }

  #failed(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#o.logger.warn({ err }, 'cluster: coordination unavailable; streams go on here, leases are retried');
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#o.logger.info('cluster: coordination reachable again');
  }
}
