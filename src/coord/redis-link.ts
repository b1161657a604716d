/**
 * The connections to Redis that RedisCoordination and RedisWindowStore share: one for commands and one in
 * subscriber mode (a connection that subscribed can run nothing else), standalone or Cluster.
 *
 * Outages: both connections reconnect forever with a capped backoff. While the command connection is down
 * every call fails at once with CoordinationUnavailableError (no offline queue of writes that would land late);
 * commands issued before the first connection wait for it, at most one retry. The subscriber connection queues
 * its (un)subscriptions and ioredis renews them after a reconnect. One warning per outage, one info on return.
 */
import { Cluster, Redis, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseRedisUrl, type Logger, type RedisTarget } from '../core/index.js';
import { CoordinationUnavailableError } from './errors.js';
import type { LuaScript } from './redis-scripts.js';

type Client = Redis | Cluster;
type Arg = string | number | Buffer;

/** Reconnect after 100 ms, 200 ms... at most every 2 s, forever. */
const retryStrategy = (attempt: number): number => Math.min(attempt * 100, 2000);

function build(target: RedisTarget, subscriber: boolean): Client {
  const common: RedisOptions = {
    username: target.username,
    password: target.password,
    tls: target.tls ? {} : undefined,
    connectTimeout: 2000,
    retryStrategy,
    lazyConnect: false,
    // Commands: fail fast (one retry covers the first connection); subscriptions: wait for Redis to return.
    maxRetriesPerRequest: subscriber ? null : 1,
    commandTimeout: subscriber ? undefined : 2000,
    enableOfflineQueue: true,
    connectionName: subscriber ? 'livepack-sub' : 'livepack',
  };
  if (!target.cluster) return new Redis({ ...common, host: target.nodes[0].host, port: target.nodes[0].port, db: target.db });
  const opts: ClusterOptions = {
    redisOptions: common,
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue: true,
    maxRedirections: 8,
    shardedSubscribers: subscriber,
  };
  return new Cluster(
    target.nodes.map((n) => ({ ...n })),
    opts,
  );
}

export class RedisLink {
  readonly prefix: string;
  readonly #logger: Logger;
  readonly #client: Client;
  readonly #sub: Client;
  readonly #handlers = new Map<string, Set<(message: string) => void>>();
  #down = false;
  #warned = false;
  #sharded: boolean | undefined;
  #subMode: Promise<boolean> | undefined;
  #closed = false;

  constructor(opts: { url: string; prefix: string; logger: Logger }) {
    this.prefix = opts.prefix;
    this.#logger = opts.logger;
    const target = parseRedisUrl(opts.url);
    this.#client = build(target, false);
    this.#sub = build(target, true);
    this.#watch(this.#client, 'commands');
    this.#watch(this.#sub, 'subscriber');
    const deliver = (channel: string, message: string) => {
      for (const h of this.#handlers.get(channel) ?? []) {
        try {
          h(message);
        } catch (err) {
          this.#logger.error({ err, channel }, 'coordination handler threw');
        }
      }
    };
    this.#sub.on('message', deliver);
    this.#sub.on('smessage', deliver);
  }

  get isCluster(): boolean {
    return this.#client instanceof Cluster;
  }

  /** Whether Redis answers a PING now; false (never a throw) during an outage. */
  async ping(): Promise<boolean> {
    if (this.#down || this.#closed) return false;
    try {
      await this.#client.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** Run a command; during an outage it fails at once with CoordinationUnavailableError. */
  async call<T>(what: string, fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new CoordinationUnavailableError(`coordination closed (${what})`);
    if (this.#down) throw new CoordinationUnavailableError(`redis unreachable (${what})`);
    try {
      return await fn(this.#client);
    } catch (err) {
      if (err instanceof ReplyError) throw err;
      throw new CoordinationUnavailableError(`redis unreachable (${what}): ${String(err)}`, { cause: err });
    }
  }

  /** Run a Lua script by its SHA, loading it on the node that lacks it. */
  async eval(script: LuaScript, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return this.call(script.name, async (c) => {
      try {
        return await c.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return c.eval(script.lua, keys.length, ...keys, ...args);
      }
    });
  }

  /** The publish command for this server: sharded pub/sub (Redis 7, the Cluster-friendly one) or plain. */
  async publishCommand(): Promise<'SPUBLISH' | 'PUBLISH'> {
    this.#sharded ??= await this.call('info', (c) => isSharded(c));
    return this.#sharded ? 'SPUBLISH' : 'PUBLISH';
  }

  async publish(channel: string, message: string): Promise<void> {
    const cmd = await this.publishCommand();
    await this.call('publish', (c) => (cmd === 'SPUBLISH' ? c.spublish(channel, message) : c.publish(channel, message)));
  }

  /** Receive a channel's messages; returns the function that stops receiving. Fire-and-forget like pub/sub. */
  subscribe(channel: string, handler: (message: string) => void): () => void {
    let set = this.#handlers.get(channel);
    if (!set) {
      set = new Set();
      this.#handlers.set(channel, set);
      this.#subscribeChannel(channel, true);
    }
    const fn = (m: string) => handler(m);
    set.add(fn);
    return () => {
      const s = this.#handlers.get(channel);
      if (!s?.delete(fn) || s.size > 0) return;
      this.#handlers.delete(channel);
      this.#subscribeChannel(channel, false);
    };
  }

  /** Close both connections (idempotent); calls after it fail with CoordinationUnavailableError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers.clear();
    this.#sub.disconnect();
    if (this.#down) {
      this.#client.disconnect();
      return;
    }
    await Promise.race([this.#client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
    this.#client.disconnect();
  }

  #subscribeChannel(channel: string, on: boolean, attempt = 0): void {
    // The mode is read on the subscriber connection itself (before it enters subscriber mode) when the command
    // connection has not read it yet: it queues until Redis answers, so a subscription made during an outage
    // still happens when Redis returns.
    const sub = this.#sub;
    const mode = (this.#subMode ??= this.#sharded !== undefined ? Promise.resolve(this.#sharded) : isSharded(sub));
    mode
      .then(
        async (sharded) => {
          this.#sharded ??= sharded;
          if (this.#closed) return;
          if (on) await (sharded ? sub.ssubscribe(channel) : sub.subscribe(channel));
          else await (sharded ? sub.sunsubscribe(channel) : sub.unsubscribe(channel));
        },
        (err: unknown) => {
          this.#subMode = undefined;
          throw err;
        },
      )
      .catch((err: unknown) => {
        if (this.#closed) return;
        const log = attempt === 0 ? this.#logger.warn.bind(this.#logger) : this.#logger.debug.bind(this.#logger);
        log({ err, channel }, on ? 'redis subscribe failed (retrying)' : 'redis unsubscribe failed');
        // A subscription still wanted is retried; ioredis renews the ones in place after a reconnect.
        if (on && this.#handlers.has(channel)) setTimeout(() => this.#subscribeChannel(channel, true, attempt + 1), 1000).unref();
      });
  }

  #watch(client: Client, role: string): void {
    const lost = (err: unknown, closed: boolean) => {
      if (this.#closed) return;
      // 'close' marks the outage (a Cluster's one failing node only errors; its slots' commands fail on their own).
      if (closed && role === 'commands') this.#down = true;
      if (this.#warned) return;
      this.#warned = true;
      this.#logger.warn({ err, role }, 'redis unreachable: coordination calls fail until it returns (reconnecting)');
    };
    client.on('error', (err: unknown) => lost(err, false));
    client.on('close', () => lost(undefined, true));
    client.on('node error', (err: unknown) => lost(err, false));
    client.on('ready', () => {
      if (role !== 'commands') return;
      this.#down = false;
      if (this.#warned) this.#logger.info({ role }, 'redis reachable again');
      this.#warned = false;
    });
  }
}

async function isSharded(c: Client): Promise<boolean> {
  const info = await c.info('server');
  const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? '0');
  return major >= 7;
}
