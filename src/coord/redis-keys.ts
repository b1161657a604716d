/**
 * Where everything lives in Redis. Every key and channel starts with the prefix (REDIS_PREFIX, default
 * 'livepack:'); every key of one stream carries the hash tag `{<streamId>}`, so on Redis Cluster one stream's
 * keys share a slot and one Lua script can touch them all; the node registry has its own tag.
 *
 *   <p>{<sid>}:epoch                 INCR counter of lease epochs, seeded from Redis's clock in µs
 *                                    (PX a day, refreshed by the lease)
 *   <p>{<sid>}:lease                 "<epoch>:<nodeId>", PX the lease TTL
 *   <p>{<sid>}:status                SharedLiveStatus JSON, PX its TTL
 *   <p>{<sid>}:doc                   the stream's document (putStream), PX
 *   <p>{<sid>}:state:<rendition>     StoredRenditionState JSON, PX
 *   <p>{<sid>}:file:<rendition>/<name>  bytes of an init, part or segment, PX
 *   <p>{<sid>}:index                 ZSET of the doc/state/file keys above, scored by expiry (ms), for deleteStream
 *   <p>{<sid>}:ann                   channel: WindowAnnouncement JSON after every putState
 *   <p>{nodes}:info                  HASH nodeId -> NodeInfo JSON
 *   <p>{nodes}:seen                  ZSET nodeId scored by heartbeat expiry (ms, Redis clock)
 *   <p>{node:<nodeId>}:cmd           channel: NodeCommand JSON for that node
 *   <p>{events}                      channel: StreamEvent JSON
 */
export const DEFAULT_PREFIX = 'livepack:';

export interface StreamKeys {
  readonly epoch: string;
  readonly lease: string;
  readonly status: string;
  readonly doc: string;
  readonly index: string;
  readonly announce: string;
  state(rendition: string): string;
  file(rendition: string, name: string): string;
}

export function streamKeys(prefix: string, streamId: string): StreamKeys {
  const base = `${prefix}{${streamId}}:`;
  return {
    epoch: `${base}epoch`,
    lease: `${base}lease`,
    status: `${base}status`,
    doc: `${base}doc`,
    index: `${base}index`,
    announce: `${base}ann`,
    state: (rendition) => `${base}state:${rendition}`,
    file: (rendition, name) => `${base}file:${rendition}/${name}`,
  };
}

export function nodeKeys(prefix: string): { info: string; seen: string } {
  return { info: `${prefix}{nodes}:info`, seen: `${prefix}{nodes}:seen` };
}

export function commandChannel(prefix: string, nodeId: string): string {
  return `${prefix}{node:${nodeId}}:cmd`;
}

export function eventChannel(prefix: string): string {
  return `${prefix}{events}`;
}
