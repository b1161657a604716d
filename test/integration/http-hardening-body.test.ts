import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { applyHttpLimits, serverOptions, type HttpLimitCounters } from '../../src/api/http-limits.js';

/*
 * The body rate rule on a real Node HTTP server (the one buildApp's Fastify runs on gets the same call):
 * short periods here so the test takes a second, the rule is the same as with the 10 s default.
 */
const LIMITS = { maxConnections: 100, headersTimeoutMs: 5000, minBodyBytes: 1024, bodyPeriodMs: 300 };

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

/** A server that reads each body (or holds it back `holdMs` first) and answers with its length. */
async function start(holdMs = 0): Promise<{ port: number; counters: HttpLimitCounters }> {
  const s = createServer(serverOptions(LIMITS), (req, res) => {
    let n = 0;
    req.pause();
    setTimeout(() => {
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
      req.resume();
    }, holdMs);
  });
  const counters = applyHttpLimits(s, LIMITS);
  server = s;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, counters };
}

/** Sends headers for `length` bytes, then `chunk` bytes every `everyMs`; resolves with the answer or 'closed'. */
function send(port: number, length: number, chunk: number, everyMs: number): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect(port, '127.0.0.1');
    let answer = '';
    let sent = 0;
    s.write(`POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: ${length}\r\n\r\n`);
    const timer = setInterval(() => {
      if (sent >= length || !s.writable) return clearInterval(timer);
      const n = Math.min(chunk, length - sent);
      s.write(Buffer.alloc(n, 120));
      sent += n;
    }, everyMs);
    s.on('data', (c) => {
      answer += c.toString();
      if (answer.includes('\r\n\r\n')) s.end();
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      resolve({ answer, ms: Date.now() - started });
    });
  });
}

describe('HTTP request bodies must keep arriving', () => {
  it('closes a connection whose body trickles in (1 byte every 50 ms)', async () => {
    const { port, counters } = await start();
    const r = await send(port, 100_000, 1, 50);
    expect(r.answer).toBe('');
    expect(r.ms).toBeLessThan(2000);
    expect(counters.slowBodies).toBe(1);
  });

  it('lets a body that arrives steadily through, however long it takes', async () => {
    const { port, counters } = await start();
    // 64 KiB in 4 KiB steps every 50 ms: about 1.3 s, over four periods.
    const r = await send(port, 64 * 1024, 4096, 50);
    expect(r.answer).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n65536$/);
    expect(counters.slowBodies).toBe(0);
  });
});
