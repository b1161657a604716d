/**
 * coord/: what the nodes of one deployment share (see types.ts). `createCoordination` picks the in-process
 * implementation, or Redis when a URL is given (forms in redis-link.ts: redis://host:port, rediss://...,
 * redis+cluster://h1:p1,h2:p2 or a comma list for Redis Cluster).
 */
import type { Logger } from '../core/index.js';
import { MemoryCoordination, MemoryWindowStore } from './memory.js';
import { RedisCoordination } from './redis.js';
import { DEFAULT_PREFIX } from './redis-keys.js';
import { RedisLink } from './redis-link.js';
import { RedisWindowStore } from './redis-window.js';
import type { Coordination, LiveWindowStore } from './types.js';

export type * from './types.js';
export { MemoryCoordination, MemoryWindowStore } from './memory.js';
export type { MemoryCoordinationOptions, MemoryWindowStoreOptions } from './memory.js';
export { RedisCoordination } from './redis.js';
export { RedisWindowStore } from './redis-window.js';
export { RedisLink } from './redis-link.js';
export { DEFAULT_PREFIX, streamKeys } from './redis-keys.js';
export { CoordinationUnavailableError } from './errors.js';
export { waitForState, type WaitForStateOptions } from './wait.js';

export interface CoordinationOptions {
  /** REDIS_URL; without it everything stays in-process. */
  redisUrl?: string;
  /** REDIS_PREFIX: every key and channel starts with it (default 'livepack:'). */
  prefix?: string;
  logger: Logger;
}

/**
 * The coordination and the live window store of this process. With Redis both share one pair of connections,
 * owned by `coord`: coord.close() closes the window store too. Throws on a malformed REDIS_URL.
 */
export function createCoordination(opts: CoordinationOptions): { coord: Coordination; window: LiveWindowStore } {
  const logger = opts.logger.child({ module: 'coord' });
  if (opts.redisUrl) {
    const link = new RedisLink({ url: opts.redisUrl, prefix: opts.prefix ?? DEFAULT_PREFIX, logger });
    return { coord: new RedisCoordination(link, logger), window: new RedisWindowStore(link) };
  }
  const coord = new MemoryCoordination({ logger });
  return { coord, window: new MemoryWindowStore({ coord, logger }) };
}
