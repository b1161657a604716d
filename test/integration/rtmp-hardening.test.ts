/**
 * RTMP ingest against publishers that misbehave while holding a right key (a takeover that sends no media,
 * a publisher that goes quiet but keeps its connection) and sources that guess keys. A real FFmpeg is the
 * honest publisher; the others are the tiny client in test/helpers/rtmp-client.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ffmpegPublish } from '../../harness/ffmpeg-publish.js';
import { loadConfig } from '../../src/config/index.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';
import { until } from '../helpers/server.js';

interface LogLine {
  msg?: string;
  stream?: string;
  remote?: string;
}

interface LoggedServer {
  srv: RunningServer;
  lines: LogLine[];
  get(path: string): Promise<Response>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

/** A whole server on 127.0.0.1, port 0, whose log lines (JSON, level info) the test reads. */
async function startLoggedServer(env: Record<string, string>): Promise<LoggedServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'livepack-test-'));
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    RTMP_PORT: '0',
    DATA_DIR: dataDir,
    API_TOKEN: 'test-token-0123456789abcdef',
    CREATE_DEFAULT_STREAM: 'false',
    LIVE_THUMBNAIL_INTERVAL_MS: '0',
    ...env,
  });
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  const srv = await startServer(config, pino({ level: 'info' }, sink));
  const base = `http://127.0.0.1:${srv.httpPort}`;
  return {
    srv,
    lines,
    get: (path) => fetch(base + path),
    async api(method, path, body) {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${srv.apiToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await srv.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const clients: RtmpTestClient[] = [];
const publishers: ChildProcess[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of publishers.splice(0)) {
    p.kill('SIGKILL');
    await exited(p);
  }
});

function client(port: number, key: string): RtmpTestClient {
  const c = RtmpTestClient.open(port, key);
  clients.push(c);
  return c;
}

describe('RTMP publishers that send no media', () => {
  const MEDIA_TIMEOUT_MS = 1500;
  const GRACE_MS = 3000;
  let s: LoggedServer;
  beforeAll(async () => {
    s = await startLoggedServer({ RTMP_MEDIA_TIMEOUT_MS: String(MEDIA_TIMEOUT_MS), RECONNECT_GRACE_MS: String(GRACE_MS) });
  });
  afterAll(async () => {
    await s?.stop();
  });

  async function newStream(): Promise<{ id: string; streamKey: string }> {
    const created = await s.api('POST', '/api/v1/streams', { name: 'hardening' });
    expect(created.status).toBe(201);
    return created.json as { id: string; streamKey: string };
  }

  it('drops a takeover that sends no media, and the stream ends within the grace of its last media', async () => {
    const stream = await newStream();
    const playlist = async () => (await s.get(`/live/${stream.id}/source/index.m3u8`)).text();
    const ffmpeg = ffmpegPublish(`rtmp://127.0.0.1:${s.srv.rtmpPort}/live/${stream.streamKey}`, { size: '320x180', fps: 15 });
    publishers.push(ffmpeg);
    await until(async () => (await playlist()).includes('#EXTINF'), 15_000, 100);

    const silent = client(s.srv.rtmpPort, stream.streamKey);
    expect(await silent.status()).toBe('NetStream.Publish.Start');
    const takenOverAt = Date.now();
    silent.keepAlive(250); // traffic, so the idle timeout cannot be what closes it
    await exited(ffmpeg); // kicked by the takeover; FFmpeg does not reconnect

    // The silent publisher is closed once RTMP_MEDIA_TIMEOUT_MS has passed without a frame...
    await Promise.race([silent.closed, new Promise((r) => setTimeout(r, MEDIA_TIMEOUT_MS + 3000))]);
    expect(silent.closedAt, 'silent publisher still connected').toBeDefined();
    expect(silent.closedAt! - takenOverAt).toBeGreaterThanOrEqual(MEDIA_TIMEOUT_MS - 100);
    expect(silent.closedAt! - takenOverAt).toBeLessThan(MEDIA_TIMEOUT_MS + 1000);
    expect(s.lines.filter((l) => l.msg === `rtmp publish closed: no media within ${MEDIA_TIMEOUT_MS} ms of publish`)).toHaveLength(1);

    // ...and the playlist is not left stuck: it ends RECONNECT_GRACE_MS after FFmpeg's media stopped, not
    // a whole grace after the silent one left (the silent publisher does not restart the wait).
    await until(async () => (await playlist()).includes('#EXT-X-ENDLIST'), GRACE_MS + 3000, 100);
    const endedAfter = Date.now() - takenOverAt;
    expect(endedAfter).toBeLessThan(GRACE_MS + 900);
    expect((await s.api('GET', `/api/v1/streams/${stream.id}/live`)).json).toMatchObject({ error: { code: 'E_STREAM_NOT_LIVE' } });
  });

  it('drops a publisher that sent frames and then only acknowledgements, as a dropped publisher', async () => {
    const stream = await newStream();
    const quiet = client(s.srv.rtmpPort, stream.streamKey);
    expect(await quiet.status()).toBe('NetStream.Publish.Start');
    quiet.sendVideo(5);
    const lastFrameAt = Date.now();
    quiet.keepAlive(250);
    await until(async () => (await s.api('GET', `/api/v1/streams/${stream.id}/live`)).json?.video?.codec === 'h264', 5000, 50);

    await Promise.race([quiet.closed, new Promise((r) => setTimeout(r, MEDIA_TIMEOUT_MS + 3000))]);
    expect(quiet.closedAt, 'quiet publisher still connected').toBeDefined();
    expect(quiet.closedAt! - lastFrameAt).toBeGreaterThanOrEqual(MEDIA_TIMEOUT_MS - 100);
    expect(quiet.closedAt! - lastFrameAt).toBeLessThan(MEDIA_TIMEOUT_MS + 1000);
    expect(s.lines.filter((l) => l.msg === `rtmp publish closed: no media for ${MEDIA_TIMEOUT_MS} ms`)).toHaveLength(1);
    // It had sent media, so the stream waits for it to come back, as for any dropped publisher.
    const live = await s.api('GET', `/api/v1/streams/${stream.id}/live`);
    expect(live.json).toMatchObject({ state: 'reconnecting' });
  });
});

describe('RTMP failed stream keys, per source address', () => {
  const LIMIT = 3;
  const WINDOW_SECONDS = 2;
  let s: LoggedServer;
  beforeAll(async () => {
    s = await startLoggedServer({ AUTH_FAILURE_LIMIT: String(LIMIT), AUTH_FAILURE_WINDOW_SECONDS: String(WINDOW_SECONDS) });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('refuses an address after AUTH_FAILURE_LIMIT wrong keys, even with the right key, until the window ends; logged once', async () => {
    const created = await s.api('POST', '/api/v1/streams', { name: 'keys' });
    const key = (created.json as { streamKey: string }).streamKey;
    const port = s.srv.rtmpPort;
    const windowStart = Date.now();
    for (let i = 0; i < LIMIT; i++) {
      const wrong = client(port, `wrong-key-${i}`);
      expect(await wrong.status()).toBe('NetStream.Publish.BadName');
      await wrong.closed;
    }
    // The attempt past the limit, then the right key: closed before any key lookup, no status at all.
    for (const k of ['wrong-key-again', key]) {
      const refused = client(port, k);
      await refused.closed;
      expect(refused.statuses).toEqual([]);
    }
    expect(Date.now() - windowStart, 'the test ran past its window').toBeLessThan(WINDOW_SECONDS * 1000);

    expect(s.lines.filter((l) => l.msg === 'rtmp source refused: too many failed publishes')).toHaveLength(1);
    expect(s.lines.filter((l) => l.msg === 'rtmp publish refused: invalid stream key')).toHaveLength(LIMIT);
    const metrics = await (await s.get('/metrics')).text();
    expect(metrics).toContain(`livepack_auth_failures_total{surface="rtmp"} ${LIMIT}`);
    expect(metrics).toContain('livepack_auth_refused_total{surface="rtmp"} 2');

    // Once the window has ended the right key goes live.
    await new Promise((r) => setTimeout(r, Math.max(0, windowStart + WINDOW_SECONDS * 1000 + 300 - Date.now())));
    const right = client(port, key);
    expect(await right.status()).toBe('NetStream.Publish.Start');
  });
});
