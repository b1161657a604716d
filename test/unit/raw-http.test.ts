import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawHttpConnection } from '../../harness/raw-http.js';

/** The load clients' bare HTTP/1.1 connection against a real node:http server. */
describe('RawHttpConnection', () => {
  let server: http.Server;
  let origin: URL;
  let connections = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/chunked') {
        res.write('a');
        res.end('b');
      } else if (req.url === '/slow') setTimeout(() => res.end('late'), 500);
      else if (req.url === '/missing') {
        res.statusCode = 404;
        res.end();
      } else res.end(`you asked for ${req.url}`);
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('answers requests one after another on one kept-alive connection', async () => {
    const c = new RawHttpConnection(origin);
    const before = connections;
    const a = await c.get('/one?x=1', 2000);
    const b = await c.get('/two', 2000);
    const m = await c.get('/missing', 2000);
    c.close();
    expect([a.status, a.body.toString()]).toEqual([200, 'you asked for /one?x=1']);
    expect(b.body.toString()).toBe('you asked for /two');
    expect([m.status, m.body.length]).toEqual([404, 0]);
    expect(connections - before).toBe(1);
  });

  it('refuses a response it cannot frame, and a second request while one is in flight', async () => {
    const c = new RawHttpConnection(origin);
    await expect(c.get('/chunked', 2000)).rejects.toThrow(/cannot frame/);
    const first = c.get('/slow', 2000);
    await expect(c.get('/two', 2000)).rejects.toThrow(/already in flight/);
    expect((await first).body.toString()).toBe('late');
    c.close();
  });

  it('times out, and the next request works on a new connection', async () => {
    const c = new RawHttpConnection(origin);
    await expect(c.get('/slow', 100)).rejects.toThrow(/timed out/);
    expect((await c.get('/after', 2000)).body.toString()).toBe('you asked for /after');
    c.close();
  });
});
