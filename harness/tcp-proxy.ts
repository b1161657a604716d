/**
 * A TCP proxy on loopback that a test can cut: between the server and a real dependency (PostgreSQL, an S3
 * server), so that the dependency stops answering for the server alone while it keeps running for the
 * test. cut() destroys every connection and refuses new ones (closed port: ECONNREFUSED at once, as a
 * stopped server or a dead host's RST gives); hold() destroys every connection and accepts new ones that
 * then never answer (a hung server, or a firewall that drops: only a client's timeout ends them);
 * stall() is hold() without the reset: the open connections stay open and go silent mid-conversation (a
 * server that hangs mid-query, or a network that starts dropping everything), new ones are held; restore()
 * forwards again on the same port (a stalled connection is then reset: what was sent into it is lost).
 */
import net from 'node:net';

export interface TcpProxy {
  /** The port it listens on (the same after a restore). */
  readonly port: number;
  /** Whether it forwards now. */
  readonly up: boolean;
  /** Connections accepted since it started. */
  readonly accepted: number;
  cut(): Promise<void>;
  hold(): Promise<void>;
  stall(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** Forwards 127.0.0.1:<port> (port 0: the OS picks one) to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let holding = false;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const onConnection = (client: net.Socket) => {
    accepted++;
    if (holding) {
      // Read and drop whatever comes; never answer, never close.
      sockets.add(client);
      client.once('close', () => sockets.delete(client));
      client.on('error', () => client.destroy());
      client.resume();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      // Either side failing ends both: what the other side sees is a connection reset, as in an outage.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    const pair = { client, upstream };
    pairs.add(pair);
    client.once('close', () => pairs.delete(pair));
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  };
  let server: net.Server | undefined = net.createServer(onConnection);
  const port = await listen(server, 0);

  const cut = async () => {
    const s = server;
    if (!s) return;
    server = undefined;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of sockets) sock.destroy();
    await closed;
  };
  return {
    port,
    get up() {
      return server !== undefined && !holding;
    },
    get accepted() {
      return accepted;
    },
    cut,
    async hold() {
      await cut();
      holding = true;
      const s = net.createServer(onConnection);
      await listen(s, port);
      server = s;
    },
    async stall() {
      if (!server) {
        server = net.createServer(onConnection);
        await listen(server, port);
      }
      holding = true;
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Read nothing more either way: what each side sends waits in the kernel, unanswered.
        client.pause();
        upstream.pause();
      }
    },
    async restore() {
      if (holding) await cut();
      holding = false;
      if (server) return;
      const s = net.createServer(onConnection);
      await listen(s, port);
      server = s;
    },
    close: cut,
  };
}
