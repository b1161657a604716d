/**
 * Coordination over Redis (ioredis): node registry, stream leases with fencing epochs, live status, commands
 * and events. Key layout in redis-keys.ts, the Lua scripts in redis-scripts.ts, connections and outage
 * behaviour in redis-link.ts. The instance owns its RedisLink: close() closes it (and so the window store
 * built on the same link).
 */
import type { Logger } from '../core/index.js';
import { RedisLink } from './redis-link.js';
import { commandChannel, eventChannel, nodeKeys, streamKeys } from './redis-keys.js';
import { ACQUIRE, CLEAR_STATUS, HEARTBEAT, LIST_NODES, NODE_GONE, RELEASE, RENEW, SET_STATUS } from './redis-scripts.js';
import type { Coordination, Lease, NodeCommand, NodeInfo, SharedLiveStatus, StreamEvent } from './types.js';

/** The epoch counter outlives leases by this much (refreshed by every acquire and renew). */
const EPOCH_TTL_MS = 24 * 3600_000;

function leaseValue(lease: Lease): string {
  return `${lease.epoch}:${lease.nodeId}`;
}

function parseLease(streamId: string, value: string | null): Lease | undefined {
  if (value === null) return undefined;
  const i = value.indexOf(':');
  return { streamId, nodeId: value.slice(i + 1), epoch: Number(value.slice(0, i)) };
}

export class RedisCoordination implements Coordination {
  readonly kind = 'redis' as const;
  readonly link: RedisLink;
  readonly #logger: Logger;
  readonly #heartbeats = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(link: RedisLink, logger: Logger) {
    this.link = link;
    this.#logger = logger;
  }

  async registerNode(info: NodeInfo, ttlMs: number): Promise<void> {
    const keys = nodeKeys(this.link.prefix);
    const beat = () => this.link.eval(HEARTBEAT, [keys.info, keys.seen], [info.nodeId, JSON.stringify(info), ttlMs]);
    clearInterval(this.#heartbeats.get(info.nodeId));
    const timer = setInterval(
      () => {
        // An outage is logged once by the link; a heartbeat that fails is retried by the next one.
        beat().catch((err: unknown) => this.#logger.debug({ err, node: info.nodeId }, 'node heartbeat failed'));
      },
      Math.max(50, Math.floor(ttlMs / 3)),
    );
    timer.unref();
    this.#heartbeats.set(info.nodeId, timer);
    await beat();
  }

  async listNodes(): Promise<NodeInfo[]> {
    const keys = nodeKeys(this.link.prefix);
    const rows = (await this.link.eval(LIST_NODES, [keys.info, keys.seen], [])) as string[];
    return rows.map((r) => JSON.parse(r) as NodeInfo);
  }

  async acquireLease(streamId: string, nodeId: string, ttlMs: number, opts: { takeover?: boolean } = {}): Promise<Lease | undefined> {
    const k = streamKeys(this.link.prefix, streamId);
    const epoch = (await this.link.eval(ACQUIRE, [k.lease, k.epoch], [nodeId, ttlMs, opts.takeover ? '1' : '0', EPOCH_TTL_MS])) as
      number | null;
    return epoch === null ? undefined : { streamId, nodeId, epoch };
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<boolean> {
    const k = streamKeys(this.link.prefix, lease.streamId);
    return (await this.link.eval(RENEW, [k.lease, k.epoch], [leaseValue(lease), ttlMs, EPOCH_TTL_MS])) === 1;
  }

  async releaseLease(lease: Lease): Promise<void> {
    const k = streamKeys(this.link.prefix, lease.streamId);
    await this.link.eval(RELEASE, [k.lease], [leaseValue(lease)]);
  }

  async leaseOf(streamId: string): Promise<Lease | undefined> {
    const k = streamKeys(this.link.prefix, streamId);
    return parseLease(streamId, await this.link.call('leaseOf', (c) => c.get(k.lease)));
  }

  async setLiveStatus(lease: Lease, status: SharedLiveStatus, ttlMs: number): Promise<boolean> {
    const k = streamKeys(this.link.prefix, lease.streamId);
    return (await this.link.eval(SET_STATUS, [k.lease, k.status], [leaseValue(lease), ttlMs, JSON.stringify(status)])) === 1;
  }

  async clearLiveStatus(lease: Lease): Promise<void> {
    const k = streamKeys(this.link.prefix, lease.streamId);
    await this.link.eval(CLEAR_STATUS, [k.epoch, k.status], [lease.epoch]);
  }

  async liveStatus(streamId: string): Promise<SharedLiveStatus | undefined> {
    const k = streamKeys(this.link.prefix, streamId);
    const v = await this.link.call('liveStatus', (c) => c.get(k.status));
    return v === null ? undefined : (JSON.parse(v) as SharedLiveStatus);
  }

  async sendCommand(nodeId: string, command: NodeCommand): Promise<void> {
    await this.link.publish(commandChannel(this.link.prefix, nodeId), JSON.stringify(command));
  }

  onCommand(nodeId: string, handler: (command: NodeCommand) => void): () => void {
    return this.link.subscribe(commandChannel(this.link.prefix, nodeId), (m) => handler(JSON.parse(m) as NodeCommand));
  }

  async publishEvent(event: StreamEvent): Promise<void> {
    await this.link.publish(eventChannel(this.link.prefix), JSON.stringify(event));
  }

  onEvent(handler: (event: StreamEvent) => void): () => void {
    return this.link.subscribe(eventChannel(this.link.prefix), (m) => handler(JSON.parse(m) as StreamEvent));
  }

  ping(): Promise<boolean> {
    return this.link.ping();
  }

  /** Stop the heartbeats, take this process's nodes off the registry (best effort) and close the link. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const keys = nodeKeys(this.link.prefix);
    const nodes = [...this.#heartbeats.keys()];
    for (const t of this.#heartbeats.values()) clearInterval(t);
    this.#heartbeats.clear();
    await Promise.all(nodes.map((id) => this.link.eval(NODE_GONE, [keys.info, keys.seen], [id]).catch(() => undefined)));
    await this.link.close();
  }
}
