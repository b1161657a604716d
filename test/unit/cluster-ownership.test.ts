import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger, type TrackSet } from '../../src/core/index.js';
import { MemoryCoordination } from '../../src/coord/index.js';
import { StreamOwnership } from '../../src/cluster/ownership.js';
import { StreamHub, type PublishInfo } from '../../src/stream/index.js';

const TRACKS: TrackSet = {
  video: { kind: 'video', codec: 'h264', codecPrivate: Uint8Array.of(1, 0x42, 0xc0, 0x1e), width: 640, height: 360, frameRate: 30 },
};
const info = (sessionId: string): PublishInfo => ({ sessionId, protocol: 'rtmp', remoteAddress: '127.0.0.1' });
const LEASE_MS = 300;

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('stream ownership across two ingest nodes', () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  function node(coord: MemoryCoordination, nodeId: string) {
    const hub = new StreamHub({ graceMs: 5000, readerQueueFrames: 100, logger: silentLogger });
    const ownership = new StreamOwnership({ coord, hub, nodeId, leaseMs: LEASE_MS, logger: silentLogger });
    ownership.start();
    closers.push(
      () => hub.close(),
      () => ownership.close(),
    );
    return { hub, ownership };
  }

  it('takes the lease when a publisher starts, renews it past its TTL, and releases it when the stream ends', async () => {
    const coord = new MemoryCoordination({ logger: silentLogger });
    const a = node(coord, 'A');
    const pub = a.hub.publish('s1', info('a1'), () => {});
    pub.setTracks(TRACKS);
    await until('the lease', async () => (await coord.leaseOf('s1'))?.nodeId === 'A');
    const epoch = a.ownership.epochOf('s1');
    expect(epoch).toBeDefined();
    expect((await coord.liveStatus('s1'))?.nodeId).toBe('A');
    // Three lease lifetimes later it is still A's, under the same epoch: renewed, not re-acquired.
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS));
    expect(await coord.leaseOf('s1')).toMatchObject({ nodeId: 'A', epoch });

    a.hub.end('s1', 'test over');
    await until('the release', async () => (await coord.leaseOf('s1')) === undefined);
    expect(await coord.liveStatus('s1')).toBeUndefined();
    expect(a.ownership.owns('s1')).toBe(false);
  });

  it('a publisher on another node takes the stream over with a higher epoch, and the first node ends its publisher', async () => {
    const coord = new MemoryCoordination({ logger: silentLogger });
    const a = node(coord, 'A');
    const b = node(coord, 'B');
    let kickedOnA = false;
    const pubA = a.hub.publish('s1', info('a1'), () => (kickedOnA = true));
    pubA.setTracks(TRACKS);
    await until('A to own s1', () => a.ownership.epochOf('s1') !== undefined);
    const epochA = a.ownership.epochOf('s1')!;

    const ended: string[] = [];
    a.hub.on('stream-end', (id, reason) => ended.push(`${id}: ${reason}`));
    b.hub.publish('s1', info('b1'), () => {}).setTracks(TRACKS);
    await until('B to own s1', () => b.ownership.epochOf('s1') !== undefined);
    expect(b.ownership.epochOf('s1')!).toBeGreaterThan(epochA);
    await until('A to end s1', () => ended.length > 0);
    expect(ended[0]).toContain('node B took the stream over');
    expect(kickedOnA || a.hub.status('s1') === undefined).toBe(true);
    expect(a.ownership.owns('s1')).toBe(false);
    // B keeps it; A's old epoch is fenced out of the window.
    await new Promise((r) => setTimeout(r, 2 * LEASE_MS));
    expect(await coord.leaseOf('s1')).toMatchObject({ nodeId: 'B' });
  });

  it('a node that cannot renew (the coordination lost its lease) ends the stream there', async () => {
    const coord = new MemoryCoordination({ logger: silentLogger });
    const a = node(coord, 'A');
    a.hub.publish('s1', info('a1'), () => {}).setTracks(TRACKS);
    await until('A to own s1', () => a.ownership.epochOf('s1') !== undefined);
    const ended: string[] = [];
    a.hub.on('stream-end', (id, reason) => ended.push(reason));
    // Another node takes the lease without A being told (its command was lost): A learns at its next renewal.
    await coord.acquireLease('s1', 'C', 10_000, { takeover: true });
    await until('A to end s1', () => ended.length > 0);
    expect(ended[0]).toContain('lease was lost');
  });

  it('a lease that ran out with nobody else holding it (a Redis outage or restart) is taken again, and the stream goes on', async () => {
    const coord = new MemoryCoordination({ logger: silentLogger });
    const a = node(coord, 'A');
    a.hub.publish('s1', info('a1'), () => {}).setTracks(TRACKS);
    await until('A to own s1', () => a.ownership.epochOf('s1') !== undefined);
    const first = a.ownership.epochOf('s1')!;
    const ended: string[] = [];
    a.hub.on('stream-end', (id, reason) => ended.push(reason));
    // As a restarted Redis would: the lease is gone, nobody else has it.
    await coord.releaseLease((await coord.leaseOf('s1'))!);
    await until('A to hold s1 again', () => (a.ownership.epochOf('s1') ?? 0) > first && a.ownership.owns('s1'));
    expect(ended).toEqual([]);
    expect(a.hub.status('s1')).toBeDefined();
    expect(await coord.leaseOf('s1')).toMatchObject({ nodeId: 'A' });
  });
});
