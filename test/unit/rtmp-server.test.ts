import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError, silentLogger } from '../../src/core/index.js';
import { DEFAULT_RTMP_LIMITS, RtmpServer, type RtmpLimits } from '../../src/ingest/rtmp/index.js';
import { StreamHub } from '../../src/stream/index.js';

const servers: RtmpServer[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(limits: Partial<RtmpLimits> = {}): Promise<{ server: RtmpServer; port: number }> {
  const hub = new StreamHub({ graceMs: 1000, readerQueueFrames: 100, logger: silentLogger });
  const server = new RtmpServer({
    host: '127.0.0.1',
    port: 0,
    limits: { ...DEFAULT_RTMP_LIMITS, ...limits },
    hub,
    logger: silentLogger,
    authorize: async () => {
      throw new AppError('E_STREAM_KEY_INVALID', 'no keys here');
    },
  });
  servers.push(server);
  const { port } = await server.start();
  return { server, port };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
    s.resume();
    sockets.push(s);
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

/** Resolves once `cond` holds, polling the server counters on the event loop. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

describe('RtmpServer', () => {
  it('refuses connections over maxConnections at once', async () => {
    const { server, port } = await start({ maxConnections: 2 });
    await connect(port);
    await connect(port);
    await until(() => server.counters.activeConnections === 2);
    const third = await connect(port);
    await closed(third);
    expect(server.counters).toMatchObject({ connections: 3, activeConnections: 2 });
  });

  it('closes a connection that does not finish the handshake in time', async () => {
    const { server, port } = await start({ handshakeTimeoutMs: 150 });
    const s = await connect(port);
    s.write(Buffer.of(3)); // C0 only
    const t0 = Date.now();
    await closed(s);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(server.counters.timeouts).toBe(1);
    await until(() => server.counters.activeConnections === 0);
  });

  it('closes a connection that goes quiet after the handshake', async () => {
    const { server, port } = await start({ handshakeTimeoutMs: 5000, idleTimeoutMs: 200 });
    const s = await connect(port);
    s.write(Buffer.concat([Buffer.of(3), randomBytes(3072)]));
    await closed(s);
    expect(server.counters.timeouts).toBe(1);
    expect(server.counters.bytesIn).toBe(3073);
  });

  it('counts bad input and keeps serving', async () => {
    const { server, port } = await start();
    const s = await connect(port);
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(s);
    expect(server.counters.badInput).toBe(1);
    const again = await connect(port);
    again.write(Buffer.of(3));
    await until(() => server.counters.bytesIn > 0 && server.counters.activeConnections === 1);
  });

  it('close() is idempotent and closes every connection', async () => {
    const { server, port } = await start();
    const a = await connect(port);
    const b = await connect(port);
    await until(() => server.counters.activeConnections === 2);
    await Promise.all([server.close(), server.close()]);
    await Promise.all([closed(a), closed(b)]);
    expect(server.counters.activeConnections).toBe(0);
    await expect(server.start()).rejects.toMatchObject({ code: 'E_CONFIG_INVALID' });
  });

  it('validates limits and reports a busy port', async () => {
    const opts = {
      host: '127.0.0.1',
      port: 0,
      hub: {
        publish: () => {
          throw new Error('unused');
        },
      },
      logger: silentLogger,
      authorize: async () => ({ streamId: 'x' }),
    };
    expect(() => new RtmpServer({ ...opts, limits: { ...DEFAULT_RTMP_LIMITS, maxMessageSize: 0 } })).toThrow(/maxMessageSize/);
    const { port } = await start();
    const clash = new RtmpServer({ ...opts, port, limits: DEFAULT_RTMP_LIMITS });
    await expect(clash.start()).rejects.toMatchObject({ code: 'E_CONFIG_INVALID' });
    await clash.close();
  });
});
