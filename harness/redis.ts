/**
 * Redis servers of the tests: one throwaway `redis-server` (no persistence) on a free loopback port, which a
 * test may stop and start again on the same port (an outage), and a Redis Cluster of N masters created with
 * `redis-cli --cluster create`. Processes are tracked (processes.ts), so nothing outlives the run; temp dirs
 * are removed on stop. Also: listing and deleting keys by prefix on a server or on every master of a cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { freePort, run, spawnLogged, terminate, type LoggedChild } from './processes.js';

/** Whether the server on `port` answers PING (one short TCP exchange). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: LoggedChild): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what}: exited\n${child.stderrText()}`);
    if (Date.now() > end) throw new Error(`${what}: not ready in ${timeoutMs} ms\n${child?.stderrText() ?? ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Start it (again) on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stop it (SIGKILL: an abrupt outage) and wait for the exit. */
  stop(): Promise<void>;
  /** Stop it and remove its directory. */
  dispose(): Promise<void>;
}

export async function startRedisServer(extraArgs: readonly string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'livepack-redis-'));
  let child: LoggedChild | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs];
      child = spawnLogged('redis-server', args);
      await waitFor(`redis-server :${port}`, () => pings(port), 10_000, child);
    },
    async stop() {
      await terminate(child, 2000, 'SIGKILL');
      child = undefined;
    },
    async dispose() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

export interface RedisClusterHandle {
  readonly ports: readonly number[];
  /** redis+cluster://127.0.0.1:p1,127.0.0.1:p2,... */
  readonly url: string;
  stop(): Promise<void>;
}

/** N masters, no replicas, all slots covered; resolves once every node says cluster_state:ok. */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'livepack-redis-cluster-'));
  const children: LoggedChild[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => terminate(c, 2000, 'SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const busPort = await freePort();
      ports.push(port);
      const args = [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', dir,
      ]; // prettier-ignore
      children.push(spawnLogged('redis-server', args));
    }
    await Promise.all(ports.map((p, i) => waitFor(`redis-server :${p}`, () => pings(p), 10_000, children[i])));
    const create = await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      30_000,
    );
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    await waitFor('cluster_state:ok', async () => (await Promise.all(ports.map(clusterOk))).every(Boolean), 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, stop };
}

async function clusterOk(port: number): Promise<boolean> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await c.connect();
    return /cluster_state:ok/.test(String(await c.cluster('INFO')));
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/** Every key matching `prefix*` (SCAN, on every master of a cluster). `url` is redis://h:p or redis+cluster://... */
export async function keysWithPrefix(url: string, prefix: string): Promise<string[]> {
  return withMasters(url, async (nodes) => {
    const out: string[] = [];
    for (const n of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await n.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 1000);
        out.push(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
    return out;
  });
}

/** Delete every key matching `prefix*`; returns how many went. */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<number> {
  const keys = await keysWithPrefix(url, prefix);
  await withMasters(url, async (nodes, cluster) => {
    // One DEL per key: on a cluster each key goes to its own slot's master.
    for (const k of keys) await (cluster ?? nodes[0]).del(k);
  });
  return keys.length;
}

async function withMasters<T>(url: string, fn: (nodes: Redis[], cluster?: Cluster) => Promise<T>): Promise<T> {
  const m = /^redis(?:\+cluster)?:\/\/([^/]+)/.exec(url);
  if (!m) throw new Error(`bad redis url ${url}`);
  const hosts = m[1].split(',').map((h) => ({ host: h.split(':')[0], port: Number(h.split(':')[1] ?? 6379) }));
  if (!url.startsWith('redis+cluster://') && hosts.length === 1) {
    const c = new Redis({ ...hosts[0], maxRetriesPerRequest: 1 });
    try {
      return await fn([c]);
    } finally {
      c.disconnect();
    }
  }
  const cluster = new Cluster(hosts, { redisOptions: { maxRetriesPerRequest: 1 } });
  try {
    await new Promise<void>((resolve, reject) => {
      cluster.once('ready', () => resolve());
      cluster.once('error', reject);
    });
    return await fn(cluster.nodes('master'), cluster);
  } finally {
    cluster.disconnect();
  }
}

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
