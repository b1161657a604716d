/**
 * Cross-node coordination: what the nodes of one deployment share. In-process by default (one node, nothing
 * leaves the process); Redis through ioredis when REDIS_URL is set, every key under REDIS_PREFIX, and every
 * key of one stream in one hash slot (`{<streamId>}`), so the same code runs on Redis Cluster.
 *
 * Two faces: `Coordination` (nodes, stream ownership with fencing epochs, live status, commands to the node
 * that holds a publisher, stream events) and `LiveWindowStore` (the live window that stateless origins
 * read: files, playlist state, announcements of new parts).
 */

/** A node of the deployment, as it announces itself. */
export interface NodeInfo {
  readonly nodeId: string;
  /** What the node does: any of 'ingest', 'origin', 'worker'. */
  readonly roles: readonly string[];
  /** Where other nodes reach its HTTP server (for diagnostics; URLs handed to viewers never name a node). */
  readonly httpUrl?: string;
  readonly startedAt: number;
}

/** The owner of a live stream: the node whose ingest holds its publisher, and the lease's fencing epoch. */
export interface Lease {
  readonly streamId: string;
  readonly nodeId: string;
  /**
   * Grows by one at every acquisition of the stream's lease (never reused, even after the lease expired or
   * deleteStream). A stream with no history starts from the clock in µs (about 1.8e15, still an exact JS
   * number), so compare epochs, never assume they start at 1.
   */
  readonly epoch: number;
}

/** A live stream as every node sees it (the API's live status, wherever the publisher is). */
export interface SharedLiveStatus {
  readonly streamId: string;
  readonly nodeId: string;
  readonly protocol: string;
  readonly startedAt: number;
  readonly videoCodec?: string;
  readonly audioCodec?: string;
  readonly bitrateKbps?: number;
  readonly viewers?: number;
}

/** An order for the node that holds a stream's publisher. */
export type NodeCommand =
  | { readonly type: 'disconnect'; readonly streamId: string; readonly reason: string }
  /** Another node took the stream over (a higher epoch): drop the publisher, keep nothing live. */
  | { readonly type: 'takeover'; readonly streamId: string; readonly epoch: number; readonly byNode: string };

export type StreamEventType = 'started' | 'ended' | 'run-finalized';

export interface StreamEvent {
  readonly type: StreamEventType;
  readonly streamId: string;
  readonly nodeId: string;
  readonly at: number;
  readonly runId?: string;
}

export interface Coordination {
  /** 'memory' (in-process) or 'redis'. */
  readonly kind: 'memory' | 'redis';

  /** Announce this node, kept alive by heartbeats until close(); it is gone from listNodes() after ttlMs without one. */
  registerNode(info: NodeInfo, ttlMs: number): Promise<void>;
  listNodes(): Promise<NodeInfo[]>;

  /**
   * Take a stream's lease for `nodeId` for `ttlMs`, with a new, higher epoch. Without `takeover` it fails
   * (undefined) while another node holds an unexpired lease; with it, the lease moves to this node (a
   * publisher that came back here takes its stream over, as on one node).
   */
  acquireLease(streamId: string, nodeId: string, ttlMs: number, opts?: { takeover?: boolean }): Promise<Lease | undefined>;
  /** Extend the lease if `lease` still holds it (same node and epoch); false once it was lost. */
  renewLease(lease: Lease, ttlMs: number): Promise<boolean>;
  /** Give the lease up if `lease` still holds it; a no-op for a lease already lost. */
  releaseLease(lease: Lease): Promise<void>;
  /** The stream's current owner, or undefined when no unexpired lease exists. */
  leaseOf(streamId: string): Promise<Lease | undefined>;

  /** Publish a stream's live status for ttlMs (refreshed by its owner); only the lease holder's write counts. */
  setLiveStatus(lease: Lease, status: SharedLiveStatus, ttlMs: number): Promise<boolean>;
  clearLiveStatus(lease: Lease): Promise<void>;
  liveStatus(streamId: string): Promise<SharedLiveStatus | undefined>;

  /** Send an order to one node; delivered at most once, to a node subscribed at that moment. */
  sendCommand(nodeId: string, command: NodeCommand): Promise<void>;
  /** Receive this node's orders; returns the function that stops receiving. */
  onCommand(nodeId: string, handler: (command: NodeCommand) => void): () => void;

  publishEvent(event: StreamEvent): Promise<void>;
  onEvent(handler: (event: StreamEvent) => void): () => void;

  /** Whether the backing service answers (always true in-process). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** A rendition's playlist state as the ingesting node last wrote it (JSON; what the playlist renderer reads). */
export interface StoredRenditionState {
  /** The lease epoch it was written under. */
  readonly epoch: number;
  /** Grows with every write of this rendition's state. */
  readonly version: number;
  readonly json: string;
}

/** What was announced: a rendition's state changed (a part, a segment, an end). */
export interface WindowAnnouncement {
  readonly streamId: string;
  readonly rendition: string;
  readonly version: number;
}

export interface LiveWindowStore {
  /**
   * Write a file of a stream's live window (init, part, segment) under its name, for ttlMs. Refused (false)
   * when `epoch` is below the stream's current lease epoch: a node that lost the stream writes nothing.
   */
  putFile(streamId: string, rendition: string, name: string, bytes: Uint8Array, epoch: number, ttlMs: number): Promise<boolean>;
  getFile(streamId: string, rendition: string, name: string): Promise<Uint8Array | undefined>;
  /** Write a rendition's playlist state, then announce it; fenced like putFile. */
  putState(streamId: string, rendition: string, state: StoredRenditionState, ttlMs: number): Promise<boolean>;
  getState(streamId: string, rendition: string): Promise<StoredRenditionState | undefined>;
  /** The stream's own document (its renditions, multivariant text...), fenced like putFile. */
  putStream(streamId: string, json: string, epoch: number, ttlMs: number): Promise<boolean>;
  getStream(streamId: string): Promise<string | undefined>;
  /** Announcements of a stream's changes; fire-and-forget, so a reader re-checks on a timer as well. */
  subscribe(streamId: string, handler: (a: WindowAnnouncement) => void): () => void;
  /**
   * Remove every key of a stream (its run ended and the grace is over): window files, states, document, live
   * status and epoch. Does nothing while a node holds the stream's lease (a publisher came back: the window is
   * the new run's), so release the lease first.
   */
  deleteStream(streamId: string): Promise<void>;
}
