/**
 * The coordination contract, run against every implementation: in-process, the machine's Redis
 * (127.0.0.1:6379, a prefix of its own, its keys deleted after) and a 3-master Redis Cluster started here.
 * Then what only a real server can show: an outage (our own redis-server, stopped mid-test) and recovery.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, type Logger } from '../../src/core/index.js';
import {
  CoordinationUnavailableError,
  type RedisCoordination,
  createCoordination,
  waitForState,
  type Coordination,
  type LiveWindowStore,
  type NodeCommand,
  type StreamEvent,
  type WindowAnnouncement,
} from '../../src/coord/index.js';
import { deleteKeysWithPrefix, keysWithPrefix, startRedisCluster, startRedisServer, type RedisClusterHandle } from '../../harness/redis.js';

type Pair = { coord: Coordination; window: LiveWindowStore };

interface Backend {
  name: string;
  /** The coordination under test, and a second node's view of the same deployment. */
  setup(): Promise<{ a: Pair; b: Pair; url?: string; prefix: string; teardown: () => Promise<void> }>;
}

function redisBackend(name: string, url: () => string, before?: () => Promise<void>, after?: () => Promise<void>): Backend {
  return {
    name,
    async setup() {
      await before?.();
      const prefix = `livepack-test:${randomUUID().slice(0, 8)}:`;
      const a = createCoordination({ redisUrl: url(), prefix, logger: silentLogger });
      const b = createCoordination({ redisUrl: url(), prefix, logger: silentLogger });
      return {
        a,
        b,
        url: url(),
        prefix,
        async teardown() {
          await a.coord.close();
          await b.coord.close();
          await deleteKeysWithPrefix(url(), prefix);
          await after?.();
        },
      };
    },
  };
}

let cluster: RedisClusterHandle | undefined;
const backends: Backend[] = [
  {
    name: 'memory',
    async setup() {
      const a = createCoordination({ prefix: 'unused:', logger: silentLogger });
      return { a, b: a, prefix: 'unused:', teardown: () => a.coord.close() };
    },
  },
  redisBackend('redis', () => 'redis://127.0.0.1:6379'),
  redisBackend(
    'redis cluster',
    () => cluster?.url ?? '',
    async () => {
      cluster = await startRedisCluster(3);
    },
    async () => cluster?.stop(),
  ),
];

/** Poll until `check` holds (expiry is a matter of time, not of an event). */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The first message a subscription gets while `send` is repeated: pub/sub is fire-and-forget and a fresh
 * subscription takes a round trip to be in place, so the sender repeats, as a re-checking reader would.
 */
async function firstMessage<T>(subscribe: (h: (m: T) => void) => () => void, send: () => Promise<unknown>, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe = () => {};
  try {
    return await new Promise<T>((resolve, reject) => {
      unsubscribe = subscribe(resolve);
      const end = Date.now() + timeoutMs;
      const tick = () => {
        if (Date.now() > end) return reject(new Error('no message'));
        send().catch(reject);
        timer = setTimeout(tick, 50);
      };
      tick();
    });
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
const state = (epoch: number, version: number) => ({ epoch, version, json: JSON.stringify({ v: version }) });

describe.each(backends)('coordination contract: $name', (backend) => {
  let a: Pair;
  let b: Pair;
  let url: string | undefined;
  let prefix: string;
  let teardown: (() => Promise<void>) | undefined;
  const sid = () => `s-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    ({ a, b, url, prefix, teardown } = await backend.setup());
  });
  afterAll(async () => {
    await teardown?.();
  });

  it('acquires, renews and releases a lease', async () => {
    const s = sid();
    const lease = await a.coord.acquireLease(s, 'n1', 5000);
    expect(lease).toMatchObject({ streamId: s, nodeId: 'n1' });
    expect(lease!.epoch).toBeGreaterThan(0);
    expect(await b.coord.leaseOf(s)).toEqual(lease);
    expect(await a.coord.renewLease(lease!, 5000)).toBe(true);
    await a.coord.releaseLease(lease!);
    expect(await b.coord.leaseOf(s)).toBeUndefined();
    expect(await a.coord.renewLease(lease!, 5000)).toBe(false);
    const again = await b.coord.acquireLease(s, 'n2', 5000);
    expect(again!.epoch).toBeGreaterThan(lease!.epoch);
  });

  it('refuses a second owner while held; takeover moves the lease with a higher epoch and fences the old one', async () => {
    const s = sid();
    const old = (await a.coord.acquireLease(s, 'n1', 5000))!;
    expect(await b.coord.acquireLease(s, 'n2', 5000)).toBeUndefined();
    // The failed attempt did not move the epoch: the owner still writes.
    expect(await a.window.putFile(s, 'r0', 'p1.m4s', bytes('old-1'), old.epoch, 5000)).toBe(true);
    const now = (await b.coord.acquireLease(s, 'n2', 5000, { takeover: true }))!;
    expect(now.nodeId).toBe('n2');
    expect(now.epoch).toBeGreaterThan(old.epoch);
    expect(await a.coord.leaseOf(s)).toEqual(now);

    expect(await a.coord.renewLease(old, 5000)).toBe(false);
    await a.coord.releaseLease(old);
    expect(await a.coord.leaseOf(s)).toEqual(now);
    expect(await a.window.putFile(s, 'r0', 'p2.m4s', bytes('old-2'), old.epoch, 5000)).toBe(false);
    expect(await a.window.putState(s, 'r0', state(old.epoch, 9), 5000)).toBe(false);
    expect(await a.window.putStream(s, '{"old":true}', old.epoch, 5000)).toBe(false);
    expect(await b.window.getFile(s, 'r0', 'p2.m4s')).toBeUndefined();
    expect(await b.window.getState(s, 'r0')).toBeUndefined();
    expect(await b.window.getStream(s)).toBeUndefined();

    expect(await b.window.putFile(s, 'r0', 'p2.m4s', bytes('new-2'), now.epoch, 5000)).toBe(true);
    expect(await b.window.putState(s, 'r0', state(now.epoch, 1), 5000)).toBe(true);
    expect(await b.window.putStream(s, '{"new":true}', now.epoch, 5000)).toBe(true);
    expect(text(await a.window.getFile(s, 'r0', 'p2.m4s'))).toBe('new-2');
    expect(await a.window.getState(s, 'r0')).toEqual(state(now.epoch, 1));
    expect(await a.window.getStream(s)).toBe('{"new":true}');
  });

  it('keeps binary files byte for byte', async () => {
    const s = sid();
    const lease = (await a.coord.acquireLease(s, 'n1', 5000))!;
    const data = new Uint8Array(70_000).map((_, i) => (i * 7919) & 0xff);
    expect(await a.window.putFile(s, 'video', 'init.mp4', data.subarray(10), lease.epoch, 5000)).toBe(true);
    const got = await b.window.getFile(s, 'video', 'init.mp4');
    expect(Buffer.from(got!).equals(Buffer.from(data.subarray(10)))).toBe(true);
  });

  it('expires leases, files and states after their TTL; epochs never go back', async () => {
    const s = sid();
    const lease = (await a.coord.acquireLease(s, 'n1', 300))!;
    await a.window.putFile(s, 'r0', 'p.m4s', bytes('x'), lease.epoch, 300);
    await a.window.putState(s, 'r0', state(lease.epoch, 1), 300);
    await a.window.putStream(s, '{}', lease.epoch, 300);
    expect(await b.coord.leaseOf(s)).toBeDefined();
    await until('lease expiry', async () => (await b.coord.leaseOf(s)) === undefined, 3000);
    await until('file expiry', async () => (await b.window.getFile(s, 'r0', 'p.m4s')) === undefined, 3000);
    // Written one after the other, so each expires a little after the one before it (more so on a busy machine).
    await until('state expiry', async () => (await b.window.getState(s, 'r0')) === undefined, 3000);
    await until('document expiry', async () => (await b.window.getStream(s)) === undefined, 3000);
    expect(await a.coord.renewLease(lease, 300)).toBe(false);
    // Without takeover: the expired lease blocks nobody.
    const next = (await b.coord.acquireLease(s, 'n2', 5000))!;
    expect(next.epoch).toBeGreaterThan(lease.epoch);
    expect(await a.window.putFile(s, 'r0', 'late.m4s', bytes('late'), lease.epoch, 5000)).toBe(false);
  });

  it('announces state changes to subscribers', async () => {
    const s = sid();
    const lease = (await a.coord.acquireLease(s, 'n1', 5000))!;
    let version = 0;
    const got = await firstMessage<WindowAnnouncement>(
      (h) => b.window.subscribe(s, h),
      () => a.window.putState(s, 'video', state(lease.epoch, ++version), 5000),
    );
    expect(got).toMatchObject({ streamId: s, rendition: 'video' });
    expect(got.version).toBeGreaterThanOrEqual(1);
    // Subscribed now: the next write's announcement arrives, and the state is already readable when it does.
    const next = new Promise<StoredAnnouncementCheck>((resolve) => {
      const off = b.window.subscribe(s, (an) => {
        off();
        void b.window.getState(s, 'video').then((st) => resolve({ an, st }));
      });
    });
    await a.window.putState(s, 'video', state(lease.epoch, 100), 5000);
    const { an, st } = await next;
    expect(an.version).toBe(100);
    expect(st?.version).toBe(100);
  });

  it('a reader that re-checks does not depend on announcements (one lost costs a re-check)', async () => {
    const s = sid();
    const lease = (await a.coord.acquireLease(s, 'n1', 5000))!;
    await a.window.putState(s, 'r0', state(lease.epoch, 1), 5000);
    // A store whose announcements are all lost.
    const deaf: LiveWindowStore = {
      putFile: (...args) => b.window.putFile(...args),
      getFile: (...args) => b.window.getFile(...args),
      putState: (...args) => b.window.putState(...args),
      getState: (...args) => b.window.getState(...args),
      putStream: (...args) => b.window.putStream(...args),
      getStream: (...args) => b.window.getStream(...args),
      deleteStream: (...args) => b.window.deleteStream(...args),
      subscribe: () => () => {},
    };
    expect((await waitForState(deaf, s, 'r0', 1, { timeoutMs: 1000 }))?.version).toBe(1);
    const waiting = waitForState(deaf, s, 'r0', 2, { timeoutMs: 3000, recheckMs: 50 });
    setTimeout(() => void a.window.putState(s, 'r0', state(lease.epoch, 2), 5000), 100);
    const t0 = Date.now();
    expect((await waiting)?.version).toBe(2);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await waitForState(deaf, s, 'r0', 3, { timeoutMs: 200, recheckMs: 50 })).toBeUndefined();
    const ac = new AbortController();
    const aborted = waitForState(b.window, s, 'r0', 3, { timeoutMs: 5000, signal: ac.signal });
    ac.abort();
    expect(await aborted).toBeUndefined();
  });

  it('delivers a command to its node only', async () => {
    const toN1: NodeCommand[] = [];
    const toN2: NodeCommand[] = [];
    const off1 = a.coord.onCommand('n1', (c) => toN1.push(c));
    try {
      const cmd = await firstMessage<NodeCommand>(
        (h) => b.coord.onCommand('n2', (c) => (toN2.push(c), h(c))),
        () => a.coord.sendCommand('n2', { type: 'disconnect', streamId: 's', reason: 'test' }),
      );
      expect(cmd).toEqual({ type: 'disconnect', streamId: 's', reason: 'test' });
      const back = await firstMessage<NodeCommand>(
        (h) => a.coord.onCommand('n1', h),
        () => b.coord.sendCommand('n1', { type: 'takeover', streamId: 's', epoch: 7, byNode: 'n2' }),
      );
      expect(back).toEqual({ type: 'takeover', streamId: 's', epoch: 7, byNode: 'n2' });
      expect(toN1.every((c) => c.type === 'takeover')).toBe(true);
      expect(toN2.every((c) => c.type === 'disconnect')).toBe(true);
    } finally {
      off1();
    }
  });

  it('delivers stream events to subscribers', async () => {
    const ev: StreamEvent = { type: 'run-finalized', streamId: sid(), nodeId: 'n1', at: Date.now(), runId: 'run-1' };
    expect(
      await firstMessage<StreamEvent>(
        (h) => b.coord.onEvent(h),
        () => a.coord.publishEvent(ev),
      ),
    ).toEqual(ev);
  });

  it('fences the live status', async () => {
    const s = sid();
    const old = (await a.coord.acquireLease(s, 'n1', 5000))!;
    const status = { streamId: s, nodeId: 'n1', protocol: 'rtmp', startedAt: 1, videoCodec: 'avc1.64001f', bitrateKbps: 2500 };
    expect(await a.coord.setLiveStatus(old, status, 5000)).toBe(true);
    expect(await b.coord.liveStatus(s)).toEqual(status);
    const now = (await b.coord.acquireLease(s, 'n2', 5000, { takeover: true }))!;
    expect(await a.coord.setLiveStatus(old, { ...status, viewers: 1 }, 5000)).toBe(false);
    await a.coord.clearLiveStatus(old);
    expect(await b.coord.liveStatus(s)).toEqual(status);
    expect(await b.coord.setLiveStatus(now, { ...status, nodeId: 'n2' }, 300)).toBe(true);
    expect((await a.coord.liveStatus(s))?.nodeId).toBe('n2');
    await until('status expiry', async () => (await a.coord.liveStatus(s)) === undefined, 3000);
    expect(await b.coord.setLiveStatus(now, status, 5000)).toBe(true);
    // After the end of its run (release) the owner still clears its status.
    await b.coord.releaseLease(now);
    await b.coord.clearLiveStatus(now);
    expect(await a.coord.liveStatus(s)).toBeUndefined();
  });

  it('deleteStream removes every key of the stream, not while a node holds it again; epochs still grow', async () => {
    const s = sid();
    const lease = (await a.coord.acquireLease(s, 'n1', 5000))!;
    for (const r of ['r0', 'r1']) {
      await a.window.putFile(s, r, 'init.mp4', bytes('init'), lease.epoch, 5000);
      await a.window.putFile(s, r, 'p1.m4s', bytes('p1'), lease.epoch, 5000);
      await a.window.putState(s, r, state(lease.epoch, 1), 5000);
    }
    await a.window.putStream(s, '{}', lease.epoch, 5000);
    await a.coord.setLiveStatus(lease, { streamId: s, nodeId: 'n1', protocol: 'rtmp', startedAt: 1 }, 5000);
    const streamPrefix = `${prefix}{${s}}`;
    if (url) expect((await keysWithPrefix(url, streamPrefix)).length).toBeGreaterThanOrEqual(9);

    await b.window.deleteStream(s); // held: nothing goes
    expect(text(await b.window.getFile(s, 'r1', 'p1.m4s'))).toBe('p1');

    await a.coord.releaseLease(lease);
    await b.window.deleteStream(s);
    for (const r of ['r0', 'r1']) {
      expect(await b.window.getFile(s, r, 'init.mp4')).toBeUndefined();
      expect(await b.window.getState(s, r)).toBeUndefined();
    }
    expect(await b.window.getStream(s)).toBeUndefined();
    expect(await b.coord.liveStatus(s)).toBeUndefined();
    if (url) expect(await keysWithPrefix(url, streamPrefix)).toEqual([]);
    const next = (await b.coord.acquireLease(s, 'n2', 5000))!;
    expect(next.epoch).toBeGreaterThan(lease.epoch);
    await b.coord.releaseLease(next);
    await b.window.deleteStream(s);
    if (url) expect(await keysWithPrefix(url, streamPrefix)).toEqual([]);
  });

  it('registers nodes until they leave', async () => {
    const info = { nodeId: `node-${randomUUID().slice(0, 6)}`, roles: ['ingest', 'origin'], httpUrl: 'http://127.0.0.1:1', startedAt: 5 };
    await a.coord.registerNode(info, 2000);
    expect(await b.coord.listNodes()).toContainEqual(info);
  });

  it('answers ping', async () => {
    expect(await a.coord.ping()).toBe(true);
  });
});

interface StoredAnnouncementCheck {
  an: WindowAnnouncement;
  st: { version: number } | undefined;
}

describe('redis: node heartbeats', () => {
  it('a node whose heartbeats stop is gone after its TTL; close() removes one at once', async () => {
    const prefix = `livepack-test:${randomUUID().slice(0, 8)}:`;
    const url = 'redis://127.0.0.1:6379';
    const nodes = ['a', 'b', 'c'].map(() => createCoordination({ redisUrl: url, prefix, logger: silentLogger }).coord);
    const [a, b, c] = nodes as [RedisCoordination, RedisCoordination, RedisCoordination];
    const ids = async () => (await b.listNodes()).map((n) => n.nodeId).sort();
    try {
      await a.registerNode({ nodeId: 'a', roles: ['ingest'], startedAt: 1 }, 300);
      await b.registerNode({ nodeId: 'b', roles: ['origin'], startedAt: 1 }, 300);
      await c.registerNode({ nodeId: 'c', roles: ['worker'], startedAt: 1 }, 300);
      await new Promise((r) => setTimeout(r, 600)); // heartbeats (every 100 ms) keep them alive past one TTL
      expect(await ids()).toEqual(['a', 'b', 'c']);
      await a.close();
      expect(await ids()).toEqual(['b', 'c']);
      await c.link.close(); // c's process "dies": its heartbeats stop, nobody removes it
      expect(await ids()).toEqual(['b', 'c']);
      await until('c expired', async () => !(await ids()).includes('c'), 2000);
      expect(await ids()).toEqual(['b']);
    } finally {
      for (const n of nodes) await n.close();
      await deleteKeysWithPrefix(url, prefix);
    }
  });
});

describe('redis outage', () => {
  it('fails fast while Redis is down, logs once, and recovers without a new client', async () => {
    const server = await startRedisServer();
    const warnings: unknown[] = [];
    const infos: unknown[] = [];
    const logger: Logger = {
      ...silentLogger,
      child: () => logger,
      warn: (o) => void warnings.push(o),
      info: (o) => void infos.push(o),
    };
    const { coord, window } = createCoordination({ redisUrl: server.url, prefix: 'outage:', logger });
    try {
      expect(await coord.ping()).toBe(true);
      const events: StreamEvent[] = [];
      coord.onEvent((e) => events.push(e));
      const ev = (n: number): StreamEvent => ({ type: 'started', streamId: `s${n}`, nodeId: 'n', at: n });
      let n = 0;
      await until('subscribed', async () => (await coord.publishEvent(ev(++n)), events.length > 0));
      const lease = (await coord.acquireLease('s', 'n1', 60_000))!;

      await server.stop();
      await until('outage seen', async () => !(await coord.ping()), 3000);
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) {
        await expect(coord.acquireLease('s2', 'n1', 1000)).rejects.toBeInstanceOf(CoordinationUnavailableError);
        await expect(window.putFile('s', 'r', 'p', bytes('x'), lease.epoch, 1000)).rejects.toBeInstanceOf(CoordinationUnavailableError);
        expect(await coord.ping()).toBe(false);
      }
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(warnings).toHaveLength(1);

      await server.start();
      await until('reconnected', () => coord.ping(), 10_000);
      expect(infos.length).toBeGreaterThanOrEqual(1);
      // The data went with the server (no persistence); the client works again as it was.
      const again = await coord.acquireLease('s', 'n1', 60_000);
      expect(again).toBeDefined();
      expect(await window.putFile('s', 'r', 'p', bytes('x'), again!.epoch, 1000)).toBe(true);
      // The subscription made before the outage is renewed.
      const before = events.length;
      await until('events after recovery', async () => (await coord.publishEvent(ev(++n)), events.length > before), 10_000);
      expect(warnings).toHaveLength(1);
    } finally {
      await coord.close();
      await server.dispose();
    }
  });
});
