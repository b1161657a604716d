import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hiddenStreamLabel } from '../../src/api/metrics.js';
import { loadConfig } from '../../src/config/index.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { startTestServer, until, type TestServer } from '../helpers/server.js';

/** A raw HTTP exchange: sends `text`, returns what the server wrote before it closed (or `waitMs` passed). */
function raw(port: number, text: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), waitMs);
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    s.write(text);
  });
}

/** The status and JSON body of a raw HTTP answer. */
function parse(answer: string): { status: number; json: unknown } {
  const [head, body] = answer.split('\r\n\r\n', 2);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), json: body ? JSON.parse(body) : undefined };
}

const ERROR_SHAPE = { error: { code: expect.stringMatching(/^E_[A-Z_]+$/), message: expect.any(String) } };

describe('HTTP details: one error shape, no prototype lookups, strict JSON bodies', () => {
  let srv: TestServer;
  const port = () => srv.httpPort;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(async () => srv?.stop());

  it('answers 404 for player files named after Object.prototype members', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const res = await fetch(`${srv.base}/player/${name}`);
      expect(res.status, name).toBe(404);
      expect(await res.json()).toEqual({ error: { code: 'E_NOT_FOUND', message: 'no such player file' } });
    }
    expect((await fetch(`${srv.base}/player/player.js`)).status).toBe(200);
  });

  it("answers the framework's errors in our shape, without echoing the URL", async () => {
    const badUrl = parse(await raw(port(), 'GET /live/%E0%A4%A/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'));
    expect(badUrl).toEqual({ status: 400, json: { error: { code: 'E_BAD_REQUEST', message: 'bad request' } } });
    const bigHeader = await raw(port(), `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    expect(parse(bigHeader)).toEqual({
      status: 431,
      json: { error: { code: 'E_HEADERS_TOO_LARGE', message: 'request header fields too large' } },
    });
    const longUrl = await raw(port(), `GET /watch/${'u'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    expect(parse(longUrl).status).toBe(431);
    expect(longUrl).not.toContain('uuuu');
    const garbageAnswer = await raw(port(), 'HELLO\r\n\r\n');
    const garbage = parse(garbageAnswer);
    expect(garbage).toEqual({ status: 400, json: { error: { code: 'E_BAD_REQUEST', message: 'bad request' } } });
    // Node's parser answers these before there is a request, on the raw socket: the security headers too.
    for (const answer of [bigHeader, garbageAnswer]) {
      const head = answer.split('\r\n\r\n', 1)[0].toLowerCase();
      expect(head).toContain("content-security-policy: default-src 'none'; frame-ancestors 'none'");
      expect(head).toContain('x-content-type-options: nosniff');
      expect(head).toContain('referrer-policy: no-referrer');
    }
    const tooLarge = await fetch(`${srv.base}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toEqual({ error: { code: 'E_BODY_TOO_LARGE', message: 'payload too large' } });
    const wrongType = await fetch(`${srv.base}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'text/x-nothing; evil=<script>' },
      body: 'x',
    });
    expect(wrongType.status).toBe(415);
    const body = await wrongType.text();
    expect(JSON.parse(body)).toMatchObject(ERROR_SHAPE);
    expect(body).not.toContain('script');
  });

  it('refuses a JSON body that is not UTF-8 (E_BAD_JSON) and stores nothing', async () => {
    const before = (await srv.api('GET', '/api/v1/streams?limit=1000')).json.items.length;
    const bytes = Buffer.concat([Buffer.from('{"name":"caf'), Buffer.from([0xe9, 0xff]), Buffer.from('"}')]);
    const res = await fetch(`${srv.base}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
      body: bytes,
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('E_BAD_JSON');
    const syntax = await srv.api('POST', '/api/v1/streams', undefined);
    expect(syntax.status).toBe(400);
    const notJson = await fetch(`${srv.base}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${srv.apiToken}`, 'content-type': 'application/json' },
      body: '{"name": ',
    });
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.code).toBe('E_BAD_JSON');
    expect((await srv.api('GET', '/api/v1/streams?limit=1000')).json.items.length).toBe(before);
    // Well-formed UTF-8 still goes through.
    const ok = await srv.api('POST', '/api/v1/streams', { name: 'café ☕' });
    expect(ok.status).toBe(201);
    expect(ok.json.name).toBe('café ☕');
  });

  it('does not coerce body types, but still coerces querystrings', async () => {
    for (const body of [{ name: 123 }, { name: 'n', record: 'false' }, { name: 'n', record: 1 }, { name: ['n'] }]) {
      const res = await srv.api('POST', '/api/v1/streams', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.code).toBe('E_VALIDATION');
    }
    const listed = await srv.api('GET', '/api/v1/streams?limit=1');
    expect(listed.status).toBe(200);
    expect(listed.json.items.length).toBe(1);
    expect((await srv.api('GET', '/api/v1/streams?limit=abc')).status).toBe(400);
  });

  it('checks the token of the stream routes before reading a body: 2 MB without a token is 401, not 413', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }] as Record<string, string>[]) {
      const res = await fetch(`${srv.base}/api/v1/streams`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
      });
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('E_UNAUTHORIZED');
    }
  });
});

describe('failed API tokens are limited per address', () => {
  let srv: RunningServer;
  let base = '';
  let dataDir = '';
  const lines: Array<{ msg?: string; surface?: string }> = [];
  const LIMIT = 4;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'livepack-test-'));
    const config = loadConfig({
      HOST: '127.0.0.1',
      HTTP_PORT: '0',
      RTMP_PORT: '0',
      DATA_DIR: dataDir,
      API_TOKEN: 'test-token-0123456789abcdef',
      METRICS_TOKEN: 'metrics-token-0123456789',
      CREATE_DEFAULT_STREAM: 'false',
      AUTH_FAILURE_LIMIT: String(LIMIT),
      AUTH_FAILURE_WINDOW_SECONDS: '60',
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    srv = await startServer(config, pino({ level: 'info' }, sink));
    base = `http://127.0.0.1:${srv.httpPort}`;
  });
  afterAll(async () => {
    await srv?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const get = (token: string, path = '/api/v1/streams') => fetch(base + path, { headers: { authorization: `Bearer ${token}` } });

  it('answers 429 E_RATE_LIMITED with Retry-After once an address made AUTH_FAILURE_LIMIT failures, even with the right token', async () => {
    expect((await get(srv.apiToken)).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) statuses.push((await get(`wrong-token-${i}-0123456789`)).status);
    expect(statuses.slice(0, LIMIT - 1)).toEqual(Array(LIMIT - 1).fill(401));
    expect(new Set(statuses.slice(LIMIT - 1))).toEqual(new Set([429]));
    const right = await get(srv.apiToken);
    expect(right.status).toBe(429);
    const retryAfter = Number(right.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(50);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await right.json()).error.code).toBe('E_RATE_LIMITED');
    // Viewers' routes without a token are not part of it.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('logs the refusal once per window, not each attempt', async () => {
    const refusals = lines.filter((l) => l.msg?.startsWith('too many wrong API tokens'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0].surface).toBe('api');
    // Each refused request unlogged: at most the attempts before the limit write request lines.
    const requestLines = lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed');
    expect(requestLines.length).toBeLessThan(2 * (LIMIT + 2));
  });

  it('counts failures and refusals in /metrics by surface, behind METRICS_TOKEN', async () => {
    // The metrics token is another token: asked from the same (refused) address it is refused as well.
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await get('metrics-token-0123456789', '/metrics')).status).toBe(429);
  });
});

describe('/metrics without METRICS_TOKEN hides the ids of streams that are not public', () => {
  let srv: TestServer;
  const publishers: ChildProcess[] = [];
  beforeAll(async () => {
    srv = await startTestServer({ LIVE_THUMBNAIL_INTERVAL_MS: '0' });
  });
  afterAll(async () => {
    for (const p of publishers) p.kill('SIGKILL');
    await srv?.stop();
  });

  function publish(key: string): void {
    const args = ['-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=10', '-c:v', 'libx264', '-preset', 'ultrafast'];
    publishers.push(spawn('ffmpeg', [...args, '-g', '10', '-t', '30', '-f', 'flv', srv.rtmpUrl(key)], { stdio: 'ignore' }));
  }

  it('labels private and unlisted streams by a hash; public ones by id', async () => {
    const made = await Promise.all(
      (['public', 'private', 'unlisted'] as const).map(async (visibility) => {
        const r = await srv.api('POST', '/api/v1/streams', { name: visibility, visibility, profile: 'passthrough' });
        expect(r.status).toBe(201);
        return r.json as { id: string; streamKey: string };
      }),
    );
    for (const s of made) publish(s.streamKey);
    const [open, hidden, unlisted] = made.map((s) => s.id);
    const text = await until(
      async () => {
        const t = await (await fetch(`${srv.base}/metrics`)).text();
        return (t.match(/^livepack_ingest_fps\{/gm) ?? []).length === 3 ? t : undefined;
      },
      20_000,
      250,
    );
    expect(text).toContain(`livepack_ingest_fps{stream="${open}"}`);
    expect(text).toContain(`livepack_ingest_fps{stream="${hiddenStreamLabel(hidden)}"}`);
    expect(text).toContain(`livepack_ingest_bitrate_kbps{stream="${hiddenStreamLabel(unlisted)}"}`);
    expect(text).not.toContain(hidden);
    expect(text).not.toContain(unlisted);
  });
});

describe('HTTP timeouts and the connection cap', () => {
  /** Resolves with the time the socket took to be closed by the server. */
  const closedAfter = (s: Socket, started: number) =>
    new Promise<number>((resolve) => {
      s.on('error', () => {});
      s.on('close', () => resolve(Date.now() - started));
    });

  it('closes slowloris connections (headers never finished) within the headers timeout', async () => {
    const srv = await startTestServer({ HTTP_HEADERS_TIMEOUT_MS: '1000' });
    try {
      const started = Date.now();
      const sockets = Array.from({ length: 50 }, () => connect(srv.httpPort, '127.0.0.1'));
      const closed = sockets.map((s) => closedAfter(s, started));
      const answers = sockets.map((s) => {
        let got = '';
        s.on('data', (c) => (got += c.toString()));
        return () => got;
      });
      // Half send an unfinished request and keep trickling headers; half send nothing at all.
      const trickle = setInterval(() => sockets.slice(0, 25).forEach((s, i) => s.writable && s.write(`X-${i}: y\r\n`)), 200);
      sockets.slice(0, 25).forEach((s) => s.write('GET / HTTP/1.1\r\nHost: a\r\n'));
      const times = await Promise.all(closed);
      clearInterval(trickle);
      expect(Math.max(...times)).toBeLessThan(3000);
      expect(parse(answers[0]())).toEqual({ status: 408, json: { error: { code: 'E_TIMEOUT', message: 'request timeout' } } });
      // The server still serves.
      expect((await fetch(`${srv.base}/healthz`)).status).toBe(200);
    } finally {
      await srv.stop();
    }
  });

  it('refuses connections over HTTP_MAX_CONNECTIONS while the open ones keep working', async () => {
    const srv = await startTestServer({ HTTP_MAX_CONNECTIONS: '5' });
    const sockets: Socket[] = [];
    try {
      /** One keep-alive GET /healthz on `s`; the status line. */
      const ask = (s: Socket) =>
        new Promise<string>((resolve, reject) => {
          s.once('data', (c) => resolve(c.toString().split('\r\n')[0]));
          s.once('error', reject);
          s.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n');
        });
      for (let i = 0; i < 5; i++) {
        const s = connect(srv.httpPort, '127.0.0.1');
        sockets.push(s);
        expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      }
      const extra = connect(srv.httpPort, '127.0.0.1');
      const extraClosed = closedAfter(extra, Date.now());
      let extraGot = '';
      extra.on('data', (c) => (extraGot += c.toString()));
      extra.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n');
      expect(await extraClosed).toBeLessThan(1000);
      expect(extraGot).toBe('');
      for (const s of sockets) expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      // One closed frees its place.
      sockets.pop()!.destroy();
      const metrics = await until(async () => {
        const res = await fetch(`${srv.base}/metrics`).catch(() => undefined);
        return res?.status === 200 ? res.text() : undefined;
      }, 5000);
      expect(Number(/^livepack_http_connections_refused_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    } finally {
      for (const s of sockets) s.destroy();
      await srv.stop();
    }
  });
});
